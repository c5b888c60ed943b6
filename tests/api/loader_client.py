"""A small client of the loader protocol, as an ImageWorks tool would write it.

It speaks only what the original service documented (paths, bodies, ``detail``
errors), so pointing it at the console's base URL proves an unchanged client works.
"""

from __future__ import annotations

from typing import Any

import httpx


class LoaderError(Exception):
    def __init__(self, status: int, detail: Any):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class LoaderClient:
    def __init__(self, base_url: str, token: str = "", timeout: float = 30.0):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            trust_env=False,
        )

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise LoaderError(response.status_code, detail)
        return response.json()

    def root(self) -> dict:
        return self._call("GET", "/")

    def list_models(self) -> list[dict]:
        return self._call("GET", "/v1/models")

    def select(self, name: str, require_capabilities: list[str] | None = None) -> dict:
        body: dict[str, Any] = {"name": name}
        if require_capabilities is not None:
            body["require_capabilities"] = require_capabilities
        return self._call("POST", "/v1/select", body)

    def verify(self, name: str) -> dict:
        return self._call("POST", "/v1/verify", {"name": name})

    def probe_vision(self, name: str, image_path: str) -> dict:
        return self._call(
            "POST", "/v1/probe/vision", {"name": name, "image_path": image_path}
        )

    def metrics(self, name: str) -> dict:
        return self._call("GET", f"/v1/models/{name}/metrics")
