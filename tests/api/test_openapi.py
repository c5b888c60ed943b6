"""The OpenAPI schema validates and the Swagger page works without the internet."""

from __future__ import annotations

import re

from django.contrib.staticfiles import finders
from django.test import TestCase
from openapi_spec_validator import validate


class OpenApiTests(TestCase):
    def test_the_schema_is_valid_openapi_and_documents_both_apis(self):
        response = self.client.get("/api/v1/openapi.json")
        self.assertEqual(response.status_code, 200)
        spec = response.json()
        validate(spec)  # raises on an invalid document
        paths = spec["paths"]
        for path in (
            "/v1/models",
            "/v1/select",
            "/v1/verify",
            "/v1/probe/vision",
            "/v1/models/{name}/metrics",
            "/api/v1/entries",
            "/api/v1/entries/{pk}",
            "/api/v1/jobs/{pk}",
            "/api/v1/audit",
        ):
            self.assertIn(path, paths)
        self.assertEqual(set(paths["/api/v1/entries/{pk}"]), {"get", "patch"})
        schemes = spec["components"]["securitySchemes"]
        self.assertIn({"type": "http", "scheme": "bearer"}, schemes.values())
        select = paths["/v1/select"]["post"]
        self.assertLessEqual({"200", "404", "409"}, set(select["responses"]))

    def test_the_swagger_page_loads_its_assets_from_the_site_not_a_cdn(self):
        response = self.client.get("/api/v1/docs")
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        self.assertTrue(any("swagger-ui-bundle.js" in a for a in assets), assets)
        for asset in assets:
            self.assertFalse(asset.startswith(("http://", "https://", "//")), asset)
            if asset.startswith("/static/"):
                found = finders.find(asset.removeprefix("/static/"))
                self.assertIsNotNone(found, f"{asset} is not a local static file")
        self.assertIn("/api/v1/openapi.json", html)

    def test_schema_and_docs_answer_get_only(self):
        self.assertEqual(self.client.post("/api/v1/openapi.json").status_code, 405)
        self.assertEqual(self.client.post("/api/v1/docs").status_code, 405)
