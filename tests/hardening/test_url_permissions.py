"""A permission matrix over EVERY URL of the site, discovered from the URL conf.

``POLICY`` says, for each URL name, which methods it answers and the permission
each needs (``LOGIN`` = any signed-in user, ``PUBLIC`` = anyone). A URL name that
is missing from ``POLICY`` fails the suite, so a new view cannot be forgotten.

Checked for anonymous, viewer, operator, editor, superuser and a user without a
role, with GET, POST, PUT, PATCH and DELETE:

* anonymous -> the login page for every method the URL answers (never a 2xx);
* a user without the permission -> 403, never a 2xx or a redirect elsewhere;
* a method the URL does not answer -> 405 (or 403/login before the method check);
* POST without a CSRF token -> 403;
* a user with the permission -> neither 403 nor 405 (and no 5xx). Allowed POSTs use
  harmless inputs: background jobs are never run (``on_commit`` does not fire inside
  a ``TestCase``), activation targets a non-vLLM entry (refused before any process),
  health checks are patched out.
"""

from __future__ import annotations

import json
from unittest import mock

from django.contrib.auth import get_user_model
from django.test import Client, TestCase, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from backends.models import Activation
from registry.models import EntryChange, Job, ModelEntry
from tests.base import PersonaMixin, make_user, quiet_request_log
from tests.hardening.common import TempRegistryMixin, sync_sample

PUBLIC = "public"
LOGIN = "login"
TOKEN = "token"  # any valid token

VIEW_ENTRY = "registry.view_modelentry"
VIEW_ACTIONS = "registry.view_actionlog"
VIEW_JOB = "registry.view_job"
VIEW_ACTIVATION = "backends.view_activation"
VIEW_HEALTH = "backends.view_backendendpoint"
CONTROL = "backends.control_backend"
EDIT = "registry.edit_entry"
IMPORT = "registry.import_entry"

POLICY: dict[str, dict[str, str]] = {
    # the site
    "login": {"GET": PUBLIC, "POST": PUBLIC},
    "logout": {"POST": PUBLIC},
    "dashboard": {"GET": LOGIN},
    "live": {"GET": LOGIN},
    "favicon": {"GET": PUBLIC},
    # registry: reading
    "registry:modelentry_list": {"GET": VIEW_ENTRY},
    "registry:modelentry_detail": {"GET": VIEW_ENTRY},
    "registry:modelentry_json": {"GET": VIEW_ENTRY},
    "registry:registry_diff": {"GET": VIEW_ENTRY},
    "registry:backend_card": {"GET": VIEW_ENTRY},
    "registry:recent_actions": {"GET": VIEW_ACTIONS},
    "registry:actionlog_list": {"GET": VIEW_ACTIONS},
    "registry:job_detail": {"GET": VIEW_JOB},
    "registry:job_status": {"GET": VIEW_JOB},
    "registry:entry_verify_panel": {"GET": VIEW_ENTRY},
    "registry:bulk_progress": {"GET": VIEW_JOB},
    "registry:entry_compare": {"GET": VIEW_ENTRY},
    # registry: changing
    # per-row permissions are checked by the service (refused rows are reported)
    "registry:bulk_action": {"POST": VIEW_ENTRY},
    # a user's own column choice for the Models table
    "registry:table_columns": {"POST": VIEW_ENTRY},
    "registry:registry_reload": {"POST": "registry.sync_registry"},
    # the sample job is a verify job: cancelling it needs the verify permission
    "registry:job_cancel": {"POST": "registry.verify_entry"},
    "registry:entry_verify": {"POST": "registry.verify_entry"},
    "registry:entry_lock": {"POST": "registry.lock_entry"},
    "registry:entry_unlock": {"POST": "registry.lock_entry"},
    "registry:entry_edit": {"GET": EDIT},
    "registry:entry_edit_preview": {"POST": EDIT},
    "registry:entry_edit_confirm": {"POST": EDIT},
    "registry:entry_revert": {"GET": EDIT, "POST": EDIT},
    "registry:import_start": {"GET": IMPORT},
    "registry:import_fields": {"POST": IMPORT},
    "registry:import_review": {"POST": IMPORT},
    "registry:import_confirm": {"POST": IMPORT},
    # backends: vLLM
    "backends:activate": {"POST": CONTROL},
    "backends:stop": {"POST": CONTROL},
    "backends:status": {"GET": VIEW_ACTIVATION},
    "backends:slot_watch": {"GET": VIEW_ACTIVATION},
    "backends:history": {"GET": VIEW_ACTIVATION},
    "backends:log_tail": {"GET": VIEW_ACTIVATION},
    # backends: checks before activating, GPU memory (issue 13)
    "backends:preflight": {"GET": VIEW_ACTIVATION},
    "backends:fit": {"GET": VIEW_ACTIVATION},
    "backends:activate_checks": {"GET": CONTROL},
    "backends:stop_checks": {"GET": CONTROL},
    "backends:gpus": {"GET": VIEW_HEALTH},
    # backends: health
    "health:overview": {"GET": VIEW_HEALTH},
    "health:status_json": {"GET": VIEW_HEALTH},
    "health:history": {"GET": VIEW_HEALTH},
    "health:active_model": {"GET": VIEW_HEALTH},
    "health:check_all": {"POST": VIEW_HEALTH},
    "health:card": {"GET": VIEW_HEALTH},
    "health:check": {"POST": VIEW_HEALTH},
    # inventory: reconcile report, reclaim plan, trash
    "inventory:report": {"GET": "inventory.view_finding"},
    "inventory:scan_status": {"GET": "inventory.view_finding"},
    "inventory:finding_fix": {"GET": "inventory.view_finding"},
    "inventory:scan_start": {"POST": "inventory.run_scan"},
    "inventory:mark_deprecated": {"POST": EDIT},
    "inventory:reclaim": {"GET": "inventory.reclaim_space"},
    "inventory:reclaim_preview": {"POST": "inventory.reclaim_space"},
    "inventory:reclaim_execute": {"POST": "inventory.reclaim_space"},
    "inventory:trash": {"GET": "inventory.view_trashitem"},
    "inventory:trash_restore": {"POST": "inventory.restore_trash"},
    "inventory:trash_empty": {
        "GET": "inventory.empty_trash",
        "POST": "inventory.empty_trash",
    },
    # api: the user's own tokens (any signed-in user; the scope ceiling is the role)
    "tokens:token_list": {"GET": LOGIN},
    "tokens:token_create": {"POST": LOGIN},
    "tokens:token_revoke": {"POST": LOGIN},
    # api: the schema and the Swagger page hold no data
    "api:openapi-json": {"GET": PUBLIC},
    "api:openapi-view": {"GET": PUBLIC},
    # django-ninja's root of the API mount is "/", which the dashboard answers
    "api:api-root": {"GET": LOGIN},
}

#: The token-authenticated API (``api/``): URL name -> method -> permission. Checked
#: by ``ApiPermissionMatrixTests`` for every token scope of every persona.
API_POLICY: dict[str, dict[str, str]] = {
    # the original loader protocol
    "api:loader_models": {"GET": VIEW_ENTRY},
    "api:loader_select": {"POST": VIEW_ENTRY},
    "api:loader_verify": {"POST": "registry.verify_entry"},
    "api:loader_probe_vision": {"POST": "registry.verify_entry"},
    "api:loader_metrics": {"GET": VIEW_ENTRY},
    # REST: entries
    "api:entry_list": {"GET": VIEW_ENTRY},
    "api:entry_detail": {"GET": VIEW_ENTRY},
    "api:entry_edit": {"PATCH": EDIT},
    "api:entry_verify": {"POST": "registry.verify_entry"},
    "api:entry_lock": {"POST": "registry.lock_entry"},
    "api:entry_unlock": {"POST": "registry.lock_entry"},
    "api:entry_importable": {"GET": IMPORT},
    "api:entry_import": {"POST": IMPORT},
    "api:registry_reload": {"POST": "registry.sync_registry"},
    # REST: jobs (the sample job is a verify job: cancelling needs verify)
    "api:job_list": {"GET": VIEW_JOB},
    "api:job_detail": {"GET": VIEW_JOB},
    "api:job_cancel": {"POST": "registry.verify_entry"},
    # REST: vLLM, health, audit, me
    "api:vllm_current": {"GET": VIEW_ACTIVATION},
    "api:vllm_activations": {"GET": VIEW_ACTIVATION},
    "api:vllm_activate": {"POST": CONTROL},
    "api:vllm_stop": {"POST": CONTROL},
    "api:health_list": {"GET": VIEW_HEALTH},
    "api:health_check": {"POST": VIEW_HEALTH},
    "api:audit_list": {"GET": VIEW_ACTIONS},
    "api:me": {"GET": TOKEN},
}

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Namespaces we do not police here: Django's admin guards itself (staff only).
SKIPPED_NAMESPACES = {"admin"}


def discover_urls() -> dict[str, URLPattern]:
    """``{"namespace:name": pattern}`` for every named URL of the site."""
    found: dict[str, URLPattern] = {}
    unnamed: list[str] = []

    def walk(patterns, namespace: str, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = p.namespace or ""
                if ns in SKIPPED_NAMESPACES:
                    continue
                full_ns = ":".join(x for x in (namespace, ns) if x)
                walk(p.url_patterns, full_ns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if route.startswith(("static/", "media/")):
                    continue
                if not p.name:
                    unnamed.append(route)
                    continue
                found[f"{namespace}:{p.name}" if namespace else p.name] = p

    walk(get_resolver().url_patterns, "", "")
    assert not unnamed, f"unnamed URL patterns cannot be policed: {unnamed}"
    return found


def _is_login_redirect(response) -> bool:
    return response.status_code == 302 and "/login/" in response.get("Location", "")


def _succeeded(response) -> bool:
    """A 2xx, or a 3xx anywhere but the login page."""
    code = response.status_code
    return 200 <= code < 300 or (300 <= code < 400 and not _is_login_redirect(response))


class UrlPermissionMatrixTests(TempRegistryMixin, PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        sync_sample(cls.registry_dir, cls.models_dir)
        cls.vllm_entry = ModelEntry.objects.filter(backend="vllm").first()
        cls.other_entry = ModelEntry.objects.exclude(backend="vllm").first()
        assert cls.vllm_entry and cls.other_entry
        cls.job = Job.objects.create(
            kind="verify",
            status="running",
            entry=cls.vllm_entry,
            entry_name=cls.vllm_entry.name,
            user_name="alice",
        )
        cls.change = EntryChange.objects.create(
            entry=cls.vllm_entry,
            entry_name=cls.vllm_entry.name,
            layer="curated",
            kind="changed",
            changes=[
                {"path": "display_name", "op": "changed", "before": "x", "after": "y"}
            ],
        )
        cls.activation = Activation.objects.create(
            entry=cls.vllm_entry,
            logical_name=cls.vllm_entry.name,
            served_model_id=cls.vllm_entry.name,
            state="stopped",
            port=24001,
            user_name="alice",
        )
        cls.nobody = get_user_model().objects.get(username="olly")

    # --- helpers ---------------------------------------------------------------

    def personas(self):
        return {
            "viewer": self.viewer,
            "operator": self.operator,
            "editor": self.editor,
            "superuser": self.admin,
            "no-role": self.outsider,
        }

    def kwargs_for(self, name: str, pattern: URLPattern) -> dict:
        kwargs = {}
        for key in pattern.pattern.converters:
            if key == "pk":
                if name.startswith("registry:job_"):
                    kwargs[key] = self.job.pk
                elif name == "backends:log_tail":
                    kwargs[key] = self.activation.pk
                elif name == "backends:activate":
                    # not vLLM: refused before anything is spawned
                    kwargs[key] = self.other_entry.pk
                else:
                    kwargs[key] = self.vllm_entry.pk
            elif key == "change_pk":
                kwargs[key] = self.change.pk
            elif key == "backend" or key == "kind":
                kwargs[key] = "vllm"
            else:
                self.fail(f"{name}: no sample value for URL parameter {key!r}")
        return kwargs

    def urls(self):
        for name, pattern in sorted(discover_urls().items()):
            if name not in POLICY:  # API_POLICY names: ApiPermissionMatrixTests
                continue
            yield name, reverse(name, kwargs=self.kwargs_for(name, pattern))

    def request(self, client: Client, method: str, url: str, data=None):
        with quiet_request_log(), mock.patch("backends.health.check.check_all"):
            return client.generic(
                method,
                url,
                data=_encode(data or {}) if method != "GET" else "",
                content_type="application/x-www-form-urlencoded",
            )

    def clients(self):
        out = {}
        for label, user in self.personas().items():
            client = Client()
            client.force_login(user)
            out[label] = (user, client)
        return out

    # --- the matrix ---------------------------------------------------------------

    def test_every_url_of_the_site_has_a_policy(self):
        discovered = set(discover_urls())
        self.assertGreater(len(discovered), 30, discovered)
        self.assertFalse(set(POLICY) & set(API_POLICY))
        policed = set(POLICY) | set(API_POLICY)
        missing = sorted(discovered - policed)
        self.assertEqual(
            missing,
            [],
            f"URL names without an entry in POLICY or API_POLICY (add them with their permissions): {missing}",
        )
        stale = sorted(policed - discovered)
        self.assertEqual(stale, [], f"POLICY names no longer in the URL conf: {stale}")

    def test_policy_permissions_exist_and_roles_match_the_docs(self):
        self.assertFalse(self.viewer.has_perm("registry.verify_entry"))
        self.assertFalse(self.viewer.has_perm(CONTROL))
        self.assertFalse(self.viewer.has_perm(EDIT))
        self.assertFalse(self.operator.has_perm(EDIT))
        self.assertFalse(self.editor.has_perm(CONTROL))
        self.assertFalse(self.editor.has_perm("registry.verify_entry"))
        for perms in [*POLICY.values(), *API_POLICY.values()]:
            for perm in perms.values():
                if perm in (PUBLIC, LOGIN, TOKEN):
                    continue
                self.assertTrue(self.admin.has_perm(perm), perm)
                self.assertTrue(
                    self.viewer.has_perm(perm)
                    or perm
                    not in {
                        VIEW_ENTRY,
                        VIEW_ACTIONS,
                        VIEW_JOB,
                        VIEW_ACTIVATION,
                        VIEW_HEALTH,
                    },
                    f"viewer should have {perm}",
                )

    def test_anonymous_is_sent_to_login_everywhere(self):
        client = Client()
        problems = []
        for name, url in self.urls():
            for method in METHODS:
                required = POLICY[name].get(method)
                response = self.request(client, method, url)
                code = response.status_code
                if required == PUBLIC:
                    if code >= 500:
                        problems.append(f"{method} {url} ({name}): {code}")
                    continue
                if required is None:
                    # a method the URL does not answer: 405 or the login page
                    if not (code == 405 or _is_login_redirect(response)):
                        problems.append(f"{method} {url} ({name}): {code}")
                elif not _is_login_redirect(response):
                    problems.append(
                        f"{method} {url} ({name}): {code} {response.get('Location', '')}"
                    )
        self.assertEqual(problems, [], "anonymous requests not sent to login")

    def test_no_request_succeeds_without_the_permission(self):
        problems = []
        checked = 0
        for label, (user, client) in self.clients().items():
            for name, url in self.urls():
                for method, required in POLICY[name].items():
                    if required in (PUBLIC, LOGIN) or user.has_perm(required):
                        continue
                    response = self.request(client, method, url)
                    checked += 1
                    if response.status_code != 403:
                        problems.append(
                            f"{label}: {method} {url} ({name}) -> {response.status_code} "
                            f"{response.get('Location', '')} without {required}"
                        )
                    if _succeeded(response):
                        problems.append(f"  ^ UNAUTHORISED SUCCESS for {label}")
        self.assertGreater(checked, 40)
        self.assertEqual(problems, [])

    def test_wrong_methods_are_refused_with_405(self):
        problems = []
        clients = self.clients()
        # the method check does not depend on the role: a reader, everything, nothing
        for label in ("viewer", "superuser", "no-role"):
            user, client = clients[label]
            for name, url in self.urls():
                for method in METHODS:
                    # signed-in users are redirected off the login page whatever the method
                    if method in POLICY[name] or name in ("logout", "login"):
                        continue
                    response = self.request(client, method, url)
                    code = response.status_code
                    allowed_any = any(
                        p in (PUBLIC, LOGIN) or user.has_perm(p)
                        for p in POLICY[name].values()
                    )
                    ok = code == 405 or (not allowed_any and code == 403)
                    if not ok:
                        problems.append(f"{label}: {method} {url} ({name}) -> {code}")
        self.maxDiff = None
        self.assertEqual(problems, [])

    def test_state_changing_posts_need_a_csrf_token(self):
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.admin)
        problems = []
        for name, url in self.urls():
            if "POST" not in POLICY[name] or name == "login":
                continue
            with quiet_request_log():
                response = client.post(url, {})
            if response.status_code != 403:
                problems.append(f"POST {url} ({name}) -> {response.status_code}")
        self.assertEqual(problems, [], "POSTs accepted without a CSRF token")

    def test_the_login_form_needs_a_csrf_token_too(self):
        client = Client(enforce_csrf_checks=True)
        with quiet_request_log():
            response = client.post(
                reverse("login"), {"username": "root", "password": "x"}
            )
        self.assertEqual(response.status_code, 403)

    def test_allowed_users_are_not_refused(self):
        problems = []
        for label, (user, client) in self.clients().items():
            for name, url in self.urls():
                if name in ("logout", "login"):
                    continue
                for method, required in POLICY[name].items():
                    if required != LOGIN and not user.has_perm(required):
                        continue
                    response = self.request(client, method, url)
                    code = response.status_code
                    if (
                        code in (403, 405)
                        or code >= 500
                        or _is_login_redirect(response)
                    ):
                        problems.append(f"{label}: {method} {url} ({name}) -> {code}")
        self.assertEqual(problems, [])

    def test_a_user_without_a_role_sees_no_registry_data_on_the_dashboard(self):
        from registry.audit import Actor, record
        from registry.choices import Action

        record(
            Actor.system("tests"),
            Action.SYNC,
            message="secret-looking-message-xyz",
            entry_name="secret/model-name",
        )
        client = Client()
        client.force_login(self.outsider)
        body = client.get(reverse("dashboard")).content.decode()
        self.assertNotIn("secret-looking-message-xyz", body)
        self.assertNotIn("secret/model-name", body)
        viewer = Client()
        viewer.force_login(self.viewer)
        self.assertIn(
            "secret-looking-message-xyz",
            viewer.get(reverse("dashboard")).content.decode(),
        )

    def test_a_deactivated_user_loses_access_at_once(self):
        user = make_user("gone", "operator")
        client = Client()
        client.force_login(user)
        url = reverse("registry:modelentry_list")
        self.assertEqual(client.get(url).status_code, 200)
        user.is_active = False
        user.save()
        self.assertTrue(_is_login_redirect(client.get(url)))


def _encode(data: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(data, doseq=True)


class ApiPermissionMatrixTests(TempRegistryMixin, PersonaMixin, TestCase):
    """Every API route x persona x token scope x method (``API_POLICY``).

    A request is allowed only when the token's scope AND the user's role grant the
    route's permission; tokens above the role are made directly in the database
    (the page refuses to create them) to prove the ceiling is checked at use time.
    Without a token: 401; a session cookie is not a token: 401; a method the route
    does not answer: 405.
    """

    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        sync_sample(cls.registry_dir, cls.models_dir)
        cls.vllm_entry = ModelEntry.objects.filter(backend="vllm").first()
        cls.other_entry = ModelEntry.objects.exclude(backend="vllm").first()
        cls.job = Job.objects.create(
            kind="verify",
            status="running",
            entry=cls.vllm_entry,
            entry_name=cls.vllm_entry.name,
            user_name="alice",
        )

    def setUp(self):
        from api.choices import TokenScope

        self.personas = {
            "viewer": self.viewer,
            "operator": self.operator,
            "editor": self.editor,
            "superuser": self.admin,
            "no-role": self.outsider,
        }
        self.secrets = {}
        for label, user in self.personas.items():
            for scope in TokenScope:
                self.secrets[(label, scope.value)] = _forced_token(user, scope.value)

    def kwargs_for(self, name: str, pattern: URLPattern) -> dict:
        kwargs = {}
        for key in pattern.pattern.converters:
            if key == "pk" and name.startswith("api:job_"):
                kwargs[key] = self.job.pk
            elif key == "pk" and name == "api:vllm_activate":
                kwargs[key] = self.other_entry.pk  # not vLLM: refused before a spawn
            elif key == "pk":
                kwargs[key] = self.vllm_entry.pk
            elif key == "name":
                kwargs[key] = self.vllm_entry.name
            else:
                self.fail(f"{name}: no sample value for URL parameter {key!r}")
        return kwargs

    def body_for(self, name: str) -> dict | None:
        """Valid, harmless bodies: permission decides, not validation."""
        return {
            "api:loader_select": {"name": self.vllm_entry.name},
            "api:loader_verify": {"name": "no-such-model"},
            "api:loader_probe_vision": {
                "name": self.vllm_entry.name,
                "image_path": "/nonexistent.jpg",
            },
            "api:entry_edit": {"fingerprint": "stale", "fields": {}},
            "api:entry_import": {"items": []},
        }.get(name)

    def routes(self) -> dict[str, dict[str, tuple[str, str]]]:
        """``{url: {method: (name, permission)}}``: names sharing a route merge."""
        found = discover_urls()
        routes: dict[str, dict[str, tuple[str, str]]] = {}
        for name, methods in sorted(API_POLICY.items()):
            url = reverse(name, kwargs=self.kwargs_for(name, found[name]))
            for method, perm in methods.items():
                routes.setdefault(url, {})[method] = (name, perm)
        return routes

    def request(self, method, url, name="", secret="", client=None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
        body = self.body_for(name)
        with (
            quiet_request_log(),
            mock.patch("backends.health.check.check_all"),
            override_settings(IMAGEWORKS_LOADER_VERIFY_TIMEOUT=0),
        ):
            return (client or Client()).generic(
                method,
                url,
                json.dumps(body) if body is not None else "",
                content_type="application/json",
                **headers,
            )

    def test_every_route_needs_a_token_and_a_session_is_not_one(self):
        signed_in = Client()
        signed_in.force_login(self.admin)
        problems = []
        for url, methods in self.routes().items():
            for method, (name, _perm) in methods.items():
                for label, client in (("anonymous", Client()), ("session", signed_in)):
                    response = self.request(method, url, name, client=client)
                    if response.status_code != 401:
                        problems.append(
                            f"{label}: {method} {url} -> {response.status_code}"
                        )
        self.assertEqual(problems, [])

    def test_every_route_x_persona_x_scope_x_method(self):
        from api.choices import SCOPE_PERMISSIONS

        problems, checked = [], 0
        for (label, scope), secret in self.secrets.items():
            user = self.personas[label]
            for url, methods in self.routes().items():
                for method, (name, perm) in methods.items():
                    allowed = perm == TOKEN or (
                        user.has_perm(perm) and perm in SCOPE_PERMISSIONS[scope]
                    )
                    code = self.request(method, url, name, secret).status_code
                    checked += 1
                    ok = (
                        code not in (401, 403, 405) and code < 500
                        if allowed
                        else code == 403
                    )
                    if not ok:
                        problems.append(
                            f"{label}/{scope}: {method} {url} ({name}) -> {code}, "
                            f"expected {'allowed' if allowed else 403} ({perm})"
                        )
        self.assertGreater(checked, 300)
        self.assertEqual(problems, [])

    def test_wrong_methods_are_refused_with_405(self):
        secret = self.secrets[("superuser", "edit")]
        problems = []
        for url, methods in self.routes().items():
            for method in METHODS:
                if method in methods:
                    continue
                code = self.request(method, url, secret=secret).status_code
                if code != 405:
                    problems.append(f"{method} {url} -> {code}")
        self.assertEqual(problems, [])

    def test_open_loader_reads_open_exactly_list_and_select(self):
        open_names = {"api:loader_models", "api:loader_select"}
        problems = []
        with override_settings(IMAGEWORKS_LOADER_OPEN_READ=True):
            for url, methods in self.routes().items():
                for method, (name, _perm) in methods.items():
                    code = self.request(method, url, name).status_code
                    expected = 200 if name in open_names else 401
                    if code != expected:
                        problems.append(f"{method} {url} ({name}) -> {code}")
        self.assertEqual(problems, [])


def _forced_token(user, scope: str) -> str:
    """A token of ``scope`` for ``user`` even above their role (the DB allows it)."""
    import secrets as pysecrets

    from api.models import ApiToken
    from api.tokens import TOKEN_PREFIX, hash_secret

    secret = TOKEN_PREFIX + pysecrets.token_urlsafe(32)
    ApiToken.objects.create(
        user=user,
        label=f"matrix-{scope}",
        prefix=secret[:12],
        key_hash=hash_secret(secret),
        scope=scope,
    )
    return secret
