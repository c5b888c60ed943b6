"""Every HTTP call of the project goes through this module (httpx, explicit timeouts).

Health probes (this part): each ``probe_*`` function asks one server a few
questions and returns a :class:`ProbeResult`. Probes never raise for network or
protocol trouble; they classify it:

* connection refused / unreachable host -> ``offline`` with the reason;
* no answer within the budget -> ``offline`` "timed out after Xs";
* HTTP 5xx -> ``error`` (liveness) or ``degraded`` (a secondary question);
* a body that is not the JSON the API promises -> ``error``
  "malformed JSON from URL";
* the server answers but lists a different model -> ``degraded``
  "serves X, expected Y".

A probe has one time budget (``timeout`` seconds) shared by all its requests, so
a probe that asks two or three questions still finishes within ``timeout``.
``trust_env=False``: backends are local or LAN servers and must not be routed
through an HTTP proxy configured in the environment.
"""

from __future__ import annotations

import functools
import json
import ssl
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


class _LazyHttpx:
    """``httpx``, imported on first use: the command line's ``current-model`` reaches
    this module through the vLLM reconcile code without making a request, and
    importing httpx (with its TLS and compression dependencies) was a sixth of its
    start-up. The first use replaces this stand-in with the module itself."""

    def __getattr__(self, name: str):
        return getattr(_load_httpx(), name)


def _load_httpx():
    global httpx
    import httpx as module

    httpx = module
    return module


httpx = _LazyHttpx()

DEFAULT_TIMEOUT = 2.0

# Status values (the same strings as backends.choices.HealthStatus; kept as
# plain strings so this module does not need Django).
ONLINE = "online"
DEGRADED = "degraded"
STARTING = "starting"
OFFLINE = "offline"
ERROR = "error"


@dataclass
class ProbeResult:
    """The outcome of one health probe of one server."""

    status: str
    url: str = ""
    latency_ms: float | None = None
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.status == ONLINE

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checked_at"] = self.checked_at.isoformat()
        return data


class ProbeFailure(Exception):
    """One request of a probe failed; ``status`` says how to classify it."""

    def __init__(self, status: str, message: str, http_status: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.http_status = http_status


class _Budget:
    """A deadline shared by the requests of one probe."""

    def __init__(self, timeout: float):
        _load_httpx()  # the import is not the server's time
        self.timeout = float(timeout)
        self.start = time.monotonic()
        self.deadline = self.start + self.timeout

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed_ms(self) -> float:
        return round((time.monotonic() - self.start) * 1000.0, 1)


def _fmt_seconds(value: float) -> str:
    return f"{value:g}s"


def root_url(url: str) -> str:
    """``http://h:p/v1/`` -> ``http://h:p``: the server root that probes append paths to."""
    url = (url or "").strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every client: building one costs ~70 ms."""
    return ssl.create_default_context()


def warm_up() -> None:
    """Build the shared SSL context and httpx's lazy imports once, before probing in threads.

    Otherwise the first concurrent probes of a process each pay ~0.2 s under the GIL.
    """
    _client().close()


def _client() -> httpx.Client:
    """A short-lived client: no environment proxies, no redirects, shared SSL context."""
    return httpx.Client(trust_env=False, follow_redirects=False, verify=_ssl_context())


def _request(
    client: httpx.Client,
    method: str,
    url: str,
    budget: _Budget,
    *,
    json_body: Any = None,
) -> httpx.Response:
    """One request within the probe's budget; network trouble becomes ProbeFailure."""
    remaining = budget.remaining()
    if remaining <= 0:
        raise ProbeFailure(OFFLINE, f"timed out after {_fmt_seconds(budget.timeout)}")
    try:
        return client.request(
            method, url, json=json_body, timeout=httpx.Timeout(remaining)
        )
    except httpx.TimeoutException:
        raise ProbeFailure(OFFLINE, f"timed out after {_fmt_seconds(budget.timeout)}")
    except httpx.ConnectError as exc:
        reason = str(exc) or exc.__class__.__name__
        if "refused" in reason.lower():
            reason = "connection refused"
        raise ProbeFailure(OFFLINE, f"{reason} ({url})")
    except httpx.TransportError as exc:  # reset, protocol errors, unsupported URL...
        raise ProbeFailure(OFFLINE, f"{exc.__class__.__name__}: {exc} ({url})")
    except httpx.InvalidURL as exc:
        raise ProbeFailure(ERROR, f"invalid URL {url!r}: {exc}")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise ProbeFailure(ERROR, f"malformed JSON from {response.request.url}")


def _http_error(response: httpx.Response, *, status_5xx: str = ERROR) -> ProbeFailure:
    text = (response.text or "").strip().replace("\n", " ")[:200]
    code = response.status_code
    status = status_5xx if code >= 500 else ERROR
    message = f"HTTP {code} from {response.request.url}"
    if text:
        message += f": {text}"
    return ProbeFailure(status, message, http_status=code)


def _get_json(
    client: httpx.Client, url: str, budget: _Budget, *, status_5xx: str = ERROR
) -> Any:
    response = _request(client, "GET", url, budget)
    if response.status_code >= 400:
        raise _http_error(response, status_5xx=status_5xx)
    return _json(response)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    return [v for v in value if v]


def _model_ids(payload: Any, url: str) -> list[dict[str, Any]]:
    """``{"data": [{"id": ...}]}`` (OpenAI ``/v1/models``) -> list of model cards."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise ProbeFailure(ERROR, f"malformed JSON from {url}: no 'data' list")
    cards = []
    for item in payload["data"]:
        if isinstance(item, dict) and item.get("id"):
            cards.append(item)
    return cards


def _expectation(
    served: list[str], expected: Iterable[str], *, normalise=lambda s: s
) -> tuple[str, str]:
    """Compare served ids against expected ones -> (status, error)."""
    expected = [e for e in expected if e]
    if not expected:
        return ONLINE, ""
    served_norm = {normalise(s) for s in served}
    missing = [e for e in expected if normalise(e) not in served_norm]
    if not missing:
        return ONLINE, ""
    serving = ", ".join(served) if served else "no model"
    return DEGRADED, f"serves {serving}, expected {', '.join(missing)}"


def _result(
    status: str, url: str, budget: _Budget, error: str = "", **details: Any
) -> ProbeResult:
    return ProbeResult(
        status=status,
        url=url,
        latency_ms=budget.elapsed_ms(),
        error=error,
        details=details,
    )


# --- vLLM -------------------------------------------------------------------


def probe_vllm(
    base_url: str,
    expected_served_id: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> ProbeResult:
    """Probe a vLLM OpenAI server: ``/health`` then ``/v1/models``.

    ``/health`` 200 and the expected served id listed -> online; 503 -> error
    "engine dead"; the server lists another model -> degraded.
    """
    root = root_url(base_url)
    budget = _Budget(timeout)
    with _client() as client:
        try:
            response = _request(client, "GET", f"{root}/health", budget)
            if response.status_code == 503:
                return _result(
                    ERROR, root, budget, f"engine dead (HTTP 503 from {root}/health)"
                )
            if response.status_code >= 400:
                failure = _http_error(response)
                return _result(failure.status, root, budget, failure.message)
            payload = _get_json(client, f"{root}/v1/models", budget)
            cards = _model_ids(payload, f"{root}/v1/models")
        except ProbeFailure as failure:
            return _result(failure.status, root, budget, failure.message)
    served = [str(c["id"]) for c in cards]
    status, error = _expectation(served, _as_list(expected_served_id))
    return _result(
        status,
        root,
        budget,
        error,
        served_models=served,
        max_model_len={str(c["id"]): c.get("max_model_len") for c in cards},
        roots={str(c["id"]): c.get("root") for c in cards},
    )


# --- LMDeploy and other OpenAI-compatible servers ---------------------------


def probe_openai_compatible(
    base_url: str,
    expected_model: str | Iterable[str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> ProbeResult:
    """Probe an OpenAI-compatible server (LMDeploy and others).

    ``/health`` is asked first; a 404 there is tolerated (not every server has
    it). ``/v1/models`` must answer 200 with a model list: a 404 there is
    unhealthy (the original counted any status below 500 as up).
    """
    root = root_url(base_url)
    budget = _Budget(timeout)
    health = None
    with _client() as client:
        try:
            response = _request(client, "GET", f"{root}/health", budget)
            health = response.status_code
            if response.status_code >= 500:
                failure = _http_error(response)
                return _result(failure.status, root, budget, failure.message)
            response = _request(client, "GET", f"{root}/v1/models", budget)
            if response.status_code >= 400:
                failure = _http_error(response, status_5xx=ERROR)
                return _result(ERROR, root, budget, failure.message, health=health)
            cards = _model_ids(_json(response), f"{root}/v1/models")
        except ProbeFailure as failure:
            return _result(failure.status, root, budget, failure.message)
    served = [str(c["id"]) for c in cards]
    status, error = _expectation(served, _as_list(expected_model))
    return _result(status, root, budget, error, served_models=served, health=health)


# --- Triton -----------------------------------------------------------------


def probe_triton(
    base_url: str,
    model_names: Iterable[str] = (),
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> ProbeResult:
    """Probe Triton: ``/v2/health/ready`` and ``/v2/models/{name}/ready`` per model.

    Server not ready -> error (HTTP 5xx/4xx from the server-ready endpoint); a
    model not ready -> degraded "model X not ready".
    """
    root = root_url(base_url)
    budget = _Budget(timeout)
    names = [n for n in model_names if n]
    ready: dict[str, bool] = {}
    with _client() as client:
        try:
            response = _request(client, "GET", f"{root}/v2/health/ready", budget)
            if response.status_code >= 400:
                failure = _http_error(response)
                return _result(failure.status, root, budget, failure.message)
            for name in names:
                path = httpx.URL(root).copy_with(
                    path=f"/v2/models/{_path_segment(name)}/ready"
                )
                response = _request(client, "GET", str(path), budget)
                ready[name] = response.status_code == 200
        except ProbeFailure as failure:
            return _result(failure.status, root, budget, failure.message, ready=ready)
    not_ready = [n for n, ok in ready.items() if not ok]
    if not_ready:
        return _result(
            DEGRADED,
            root,
            budget,
            f"model(s) not ready: {', '.join(not_ready)}",
            ready=ready,
            served_models=[n for n, ok in ready.items() if ok],
        )
    return _result(ONLINE, root, budget, ready=ready, served_models=[n for n in ready])


def _path_segment(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


# --- Ollama -----------------------------------------------------------------


def normalize_ollama_tag(tag: str | None) -> str:
    """Lower-case an Ollama tag, drop an ``ollama:`` prefix, add ``:latest`` if untagged.

    ``Qwen3`` -> ``qwen3:latest``; ``ollama:/qwen3:8b`` -> ``qwen3:8b``;
    ``host:5000/ns/model`` -> ``host:5000/ns/model:latest``.
    """
    tag = (tag or "").strip()
    if tag.lower().startswith("ollama:"):
        tag = tag[len("ollama:") :]
    tag = tag.lstrip("/").strip().lower()
    if not tag:
        return ""
    last = tag.rsplit("/", 1)[-1]
    if ":" not in last:
        tag += ":latest"
    return tag


def ollama_version(base_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """``GET /api/version`` -> the version string (raises ProbeFailure)."""
    budget = _Budget(timeout)
    with _client() as client:
        return _ollama_version(client, root_url(base_url), budget)


def ollama_tags(base_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
    """``GET /api/tags`` -> installed models ``[{name, tag, digest, size, modified_at}]``."""
    budget = _Budget(timeout)
    with _client() as client:
        return _ollama_tags(client, root_url(base_url), budget)


def ollama_ps(base_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
    """``GET /api/ps`` -> loaded models ``[{name, tag, size, size_vram, expires_at}]``."""
    budget = _Budget(timeout)
    with _client() as client:
        return _ollama_ps(client, root_url(base_url), budget)


def _ollama_version(client: httpx.Client, root: str, budget: _Budget) -> str:
    url = f"{root}/api/version"
    payload = _get_json(client, url, budget)
    if not isinstance(payload, dict) or "version" not in payload:
        raise ProbeFailure(ERROR, f"malformed JSON from {url}: no 'version'")
    return str(payload["version"])


def _ollama_models(payload: Any, url: str) -> list[dict]:
    if not isinstance(payload, dict) or not isinstance(payload.get("models"), list):
        raise ProbeFailure(ERROR, f"malformed JSON from {url}: no 'models' list")
    models = []
    for item in payload["models"]:
        if not isinstance(item, dict):
            continue
        name = str(item.get("name") or item.get("model") or "").strip()
        if name:
            models.append((name, item))
    return models


def _ollama_tags(client: httpx.Client, root: str, budget: _Budget) -> list[dict]:
    url = f"{root}/api/tags"
    return [
        {
            "name": name,
            "tag": normalize_ollama_tag(name),
            "digest": item.get("digest") or "",
            "size": item.get("size"),
            "modified_at": item.get("modified_at") or "",
            "details": item.get("details") or {},
        }
        for name, item in _ollama_models(_get_json(client, url, budget), url)
    ]


def _ollama_ps(client: httpx.Client, root: str, budget: _Budget) -> list[dict]:
    url = f"{root}/api/ps"
    return [
        {
            "name": name,
            "tag": normalize_ollama_tag(name),
            "digest": item.get("digest") or "",
            "size": item.get("size"),
            "size_vram": item.get("size_vram"),
            "expires_at": item.get("expires_at") or "",
            "context_length": item.get("context_length"),
        }
        for name, item in _ollama_models(_get_json(client, url, budget), url)
    ]


def probe_ollama(base_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> ProbeResult:
    """Probe an Ollama server: ``/api/version``, ``/api/tags``, ``/api/ps``.

    Version unreachable -> offline/error. Version fine but tags or ps failing ->
    degraded (the daemon is up, the answer is incomplete). Details:
    ``version``, ``installed`` (tags with digest and size), ``loaded`` (with
    ``size_vram`` and ``expires_at``).
    """
    root = root_url(base_url)
    budget = _Budget(timeout)
    details: dict[str, Any] = {"version": "", "installed": None, "loaded": None}
    problems = []
    with _client() as client:
        try:
            details["version"] = _ollama_version(client, root, budget)
        except ProbeFailure as failure:
            return _result(failure.status, root, budget, failure.message, **details)
        for key, fetch in (("installed", _ollama_tags), ("loaded", _ollama_ps)):
            try:
                details[key] = fetch(client, root, budget)
            except ProbeFailure as failure:
                problems.append(failure.message)
    status = DEGRADED if problems else ONLINE
    return _result(status, root, budget, "; ".join(problems), **details)


# --- vLLM readiness and remote admin service ---
# (owned by the activation work; keep this marker and add below it)


@dataclass
class ReadyCheck:
    """One readiness question to a starting vLLM: is *our* model being served?"""

    ready: bool
    reason: str = ""
    served_models: list[str] = field(default_factory=list)
    max_model_len: int | None = None
    health_status: int | None = None


def vllm_ready(base_url: str, served_id: str, *, timeout: float = 1.0) -> ReadyCheck:
    """Ready iff ``/health`` answers 200 **and** ``/v1/models`` lists ``served_id``.

    Both questions share ``timeout``. Listing the served id is what stops a foreign
    server or an orphan on the port from counting as our model (original F2).
    Never raises: the reason says what is missing.
    """
    root = root_url(base_url)
    budget = _Budget(timeout)
    with _client() as client:
        try:
            response = _request(client, "GET", f"{root}/health", budget)
            if response.status_code != 200:
                return ReadyCheck(
                    False,
                    f"/health answered HTTP {response.status_code}",
                    health_status=response.status_code,
                )
            payload = _get_json(client, f"{root}/v1/models", budget)
            cards = _model_ids(payload, f"{root}/v1/models")
        except ProbeFailure as failure:
            return ReadyCheck(False, failure.message)
    served = [str(c["id"]) for c in cards]
    if served_id not in served:
        listing = ", ".join(served) if served else "no model"
        return ReadyCheck(
            False,
            f"serves {listing}, expected {served_id}",
            served_models=served,
            health_status=200,
        )
    card = next(c for c in cards if str(c["id"]) == served_id)
    mml = card.get("max_model_len")
    return ReadyCheck(
        True,
        served_models=served,
        max_model_len=mml if isinstance(mml, int) else None,
        health_status=200,
    )


class AdminError(Exception):
    """The remote vLLM admin service refused or could not be reached."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def _admin_call(
    method: str,
    admin_url: str,
    path: str,
    *,
    token: str = "",
    body: Any = None,
    timeout: float = 10.0,
) -> Any:
    url = f"{root_url(admin_url)}{path}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with _client() as client:
            response = client.request(
                method, url, json=body, headers=headers, timeout=httpx.Timeout(timeout)
            )
    except httpx.TimeoutException:
        raise AdminError(
            f"vLLM admin service at {url} timed out after {_fmt_seconds(timeout)}"
        )
    except httpx.HTTPError as exc:
        raise AdminError(f"vLLM admin service unreachable at {url}: {exc}")
    if response.status_code >= 400:
        text = (response.text or "").strip().replace("\n", " ")[:300]
        raise AdminError(
            f"vLLM admin service {method} {path} failed ({response.status_code}): {text}",
            status_code=response.status_code,
        )
    try:
        return response.json()
    except ValueError:
        raise AdminError(f"malformed JSON from {url}")


def admin_health(admin_url: str, *, token: str = "", timeout: float = 2.0) -> dict:
    """``GET /health`` of the admin service (the service only, not the model)."""
    return _admin_call("GET", admin_url, "/health", token=token, timeout=timeout)


def admin_state(admin_url: str, *, token: str = "", timeout: float = 2.0) -> dict:
    """``GET /admin/state`` -> ``{status, logical_name, served_model_id, pid, started_at, log_file}``."""
    data = _admin_call("GET", admin_url, "/admin/state", token=token, timeout=timeout)
    if not isinstance(data, dict):
        raise AdminError("malformed /admin/state answer: not an object")
    return data


def admin_activate(
    admin_url: str, payload: dict, *, token: str = "", timeout: float = 30.0
) -> dict:
    """``POST /admin/activate`` (reference §6.2); the answer must carry a positive pid."""
    data = _admin_call(
        "POST", admin_url, "/admin/activate", token=token, body=payload, timeout=timeout
    )
    try:
        pid = int((data or {}).get("pid") or 0)
    except (TypeError, ValueError, AttributeError):
        pid = 0
    if pid <= 0:
        raise AdminError("Remote vLLM activation did not return a valid PID")
    return data


def admin_deactivate(admin_url: str, *, token: str = "", timeout: float = 30.0) -> dict:
    """``POST /admin/deactivate`` (the original's service waits up to 10 s)."""
    return _admin_call(
        "POST", admin_url, "/admin/deactivate", token=token, timeout=timeout
    )


# --- vLLM in-flight requests (/metrics) ---


@dataclass
class InFlight:
    """Requests a vLLM server is working on, from its Prometheus ``/metrics``.

    ``running``/``waiting`` are None when they could not be read; ``error`` says why.
    """

    running: int | None = None
    waiting: int | None = None
    error: str = ""

    @property
    def known(self) -> bool:
        return self.running is not None and self.waiting is not None

    @property
    def busy(self) -> bool:
        return self.known and (self.running + self.waiting) > 0

    def describe(self) -> str:
        """``2 requests running, 1 waiting`` / ``idle`` / ``unknown (why)``."""
        if not self.known:
            return f"unknown ({self.error})"
        if not self.busy:
            return "idle"
        noun = "request" if self.running == 1 else "requests"
        return f"{self.running} {noun} running, {self.waiting} waiting"


RUNNING_METRIC = "vllm:num_requests_running"
WAITING_METRIC = "vllm:num_requests_waiting"


def vllm_in_flight(
    base_url: str, *, model_name: str | None = None, timeout: float = 1.0
) -> InFlight:
    """``GET /metrics`` and sum ``vllm:num_requests_running`` / ``_waiting``.

    Parsed with ``prometheus_client``'s text parser (imported on first use). With
    ``model_name``, only samples labelled with that ``model_name`` count. Never
    raises: network trouble, HTTP errors, malformed text or missing metrics give
    an unknown :class:`InFlight` with the reason.
    """
    root = root_url(base_url)
    budget = _Budget(timeout)
    with _client() as client:
        try:
            response = _request(client, "GET", f"{root}/metrics", budget)
        except ProbeFailure as failure:
            return InFlight(error=f"cannot read /metrics: {failure.message}")
    if response.status_code != 200:
        return InFlight(error=f"/metrics answered HTTP {response.status_code}")
    return parse_in_flight(response.text, model_name=model_name)


def parse_in_flight(text: str, *, model_name: str | None = None) -> InFlight:
    """The two gauges from Prometheus exposition text (see ``vllm_in_flight``)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name not in (RUNNING_METRIC, WAITING_METRIC):
                    continue
                totals.setdefault(sample.name, 0.0)  # present, maybe for another model
                if (
                    model_name
                    and sample.labels.get("model_name", model_name) != model_name
                ):
                    continue
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    except ValueError as exc:
        return InFlight(error=f"malformed /metrics text: {exc}")
    missing = [m for m in (RUNNING_METRIC, WAITING_METRIC) if m not in totals]
    if missing:
        return InFlight(error=f"/metrics has no {', '.join(missing)}")
    return InFlight(int(totals[RUNNING_METRIC]), int(totals[WAITING_METRIC]))
