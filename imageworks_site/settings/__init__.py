"""Settings for the ImageWorks Model Registry Console.

Everything is driven by environment variables with defaults that work on a
fresh machine: SQLite in ``var/`` and django-q2's ORM broker. Set
``DATABASE_URL`` for PostgreSQL and ``IMAGEWORKS_REDIS_URL`` for a Redis
broker. ``IMAGEWORKS_ENV=production`` turns on the production checks
(``SECRET_KEY`` required, secure cookies, HSTS). See docs/configuration.md.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from imageworks_site.client_ip import parse_networks as _parse_networks

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}")


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}")


def env_path(name: str, default: Path) -> Path:
    value = env(name)
    path = Path(value).expanduser() if value else default
    return path if path.is_absolute() else (BASE_DIR / path)


PRODUCTION = env("IMAGEWORKS_ENV", "development") == "production"
DEBUG = env_bool("DEBUG", False)

VAR_DIR = env_path("IMAGEWORKS_VAR_DIR", BASE_DIR / "var")
#: The search index of the current listing, shared by the processes of this host.
SEARCH_INDEX_DIR = VAR_DIR / "search-index"

# --- Secret key -----------------------------------------------------------
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. In production (IMAGEWORKS_ENV=production) set "
            "SECRET_KEY to a long random string, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    # Development: generate once and keep it in var/ so sessions survive restarts.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = [
    h.strip()
    for h in (
        env("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]") or ""
    ).split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in (env("CSRF_TRUSTED_ORIGINS", "") or "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tables2",
    "django_filters",
    "django_q",
    "template_partials",
    "axes",
    "ninja",
    "imageworks_site",
    "registry",
    "backends",
    "inventory",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "imageworks_site.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "imageworks_site.middleware.VaryOnHtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's, with a user's permissions read in one query instead of two.
    "imageworks_site.auth.ModelBackend",
]

ROOT_URLCONF = "imageworks_site.urls"
WSGI_APPLICATION = "imageworks_site.wsgi.application"
ASGI_APPLICATION = "imageworks_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "imageworks_site.context_processors.site",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=60, conn_health_checks=True
        )
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_path("IMAGEWORKS_SQLITE_PATH", VAR_DIR / "imageworks.sqlite3"),
            "OPTIONS": {
                # WAL lets readers (web) and a writer (worker) work at once. Writers
                # queue: IMMEDIATE takes the write lock at BEGIN (no deadlocking
                # read-then-write upgrades), and the busy timeout must outlast the
                # longest write transaction (a big sync), or a waiting request would
                # answer 503 while the database is merely busy.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": env_float("IMAGEWORKS_SQLITE_BUSY_TIMEOUT", 60.0),
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "registry:modelentry_list"
LOGOUT_REDIRECT_URL = "login"

# django-axes: lock out a username+IP pair after repeated failures.
AXES_FAILURE_LIMIT = env_int("IMAGEWORKS_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_float("IMAGEWORKS_LOGIN_COOLOFF_HOURS", 0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Behind a reverse proxy every request comes from the proxy: without this all users
# share one address and five bad passwords from anyone lock a user out for everyone.
# X-Forwarded-For is believed only from these proxies (addresses or networks,
# comma-separated); see docs/deploy.md. Empty: the peer address is the client.
try:
    IMAGEWORKS_TRUSTED_PROXIES = [
        str(net)
        for net in _parse_networks(
            (env("IMAGEWORKS_TRUSTED_PROXIES", "") or "").split(",")
        )
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"IMAGEWORKS_TRUSTED_PROXIES: {exc}") from None
AXES_CLIENT_IP_CALLABLE = "imageworks_site.client_ip.client_ip"

SESSION_COOKIE_AGE = env_int("IMAGEWORKS_SESSION_AGE", 60 * 60 * 12)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_EXPIRE_AT_BROWSER_CLOSE = True
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "staticfiles")

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

DJANGO_TABLES2_TEMPLATE = "django_tables2/table.html"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request at INFO; health checks make many.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# --- Background work (django-q2) ------------------------------------------
REDIS_URL = env("IMAGEWORKS_REDIS_URL")
Q_CLUSTER = {
    "name": env("IMAGEWORKS_Q_CLUSTER_NAME", "imageworks"),
    "workers": env_int("IMAGEWORKS_Q_WORKERS", 2),
    # Verifying a 100 GB model or waiting for a slow vLLM start takes a while.
    "timeout": env_int("IMAGEWORKS_Q_TIMEOUT", 3600),
    "retry": env_int("IMAGEWORKS_Q_TIMEOUT", 3600) + 60,
    "max_attempts": 1,
    "save_limit": 250,
    "catch_up": False,
    "poll": 0.5,
    "ack_failures": True,
    "label": "Task queue",
    # `Q_CLUSTER_NAME=<name> manage.py qcluster` starts a worker for the queue <name>
    # (django-q2 pops this key and crashes when it is missing). A named queue needs no
    # entry here: every option above applies to it, and per-process environment
    # (IMAGEWORKS_Q_WORKERS...) covers the rest; see docs/deploy.md.
    "ALT_CLUSTERS": {},
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Cache ------------------------------------------------------------------
# With Redis, every process of every host shares the cache: a search ranked by one
# web worker is not ranked again by the others (registry.search_share). Without it,
# each process keeps its own (Django's local-memory default).
SHARED_CACHE = bool(REDIS_URL)
if SHARED_CACHE:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "imageworks",
            "TIMEOUT": 3600,
        }
    }

# --- ImageWorks -----------------------------------------------------------
IMAGEWORKS_REGISTRY_DIR = env_path("IMAGEWORKS_REGISTRY_DIR", BASE_DIR / "configs")
IMAGEWORKS_STAGING_DIR = env_path("IMAGEWORKS_STAGING_DIR", BASE_DIR / "_staging")
IMAGEWORKS_LOG_DIR = env_path("IMAGEWORKS_LOG_DIR", VAR_DIR / "logs")
IMAGEWORKS_TEST_MODEL_PATTERNS = [
    p.strip()
    for p in (env("IMAGEWORKS_TEST_MODEL_PATTERNS", "") or "").split(",")
    if p.strip()
]
IMAGEWORKS_BACKUPS_KEEP = env_int("IMAGEWORKS_BACKUPS_KEEP", 20)
# Registries with more layer-file bytes than this sync in a background job (one at a
# time) instead of inside web requests; ~16 MB is about 2,000 real-sized entries.
IMAGEWORKS_INLINE_SYNC_MAX_BYTES = env_int(
    "IMAGEWORKS_INLINE_SYNC_MAX_BYTES", 16 * 1024 * 1024
)
IMAGEWORKS_ACTION_LOG_KEEP = env_int("IMAGEWORKS_ACTION_LOG_KEEP", 500)
# Verify and activation refuse model directories outside these roots.
# Empty means "no restriction" (development only); os.pathsep-separated.
IMAGEWORKS_MODEL_ROOTS = [
    Path(p).expanduser()
    for p in (env("IMAGEWORKS_MODEL_ROOTS", "") or "").split(os.pathsep)
    if p.strip()
]
# Nice value of CPU-heavy background jobs (sync, verify, bulk, disk scan) in the task
# workers, so web requests on the same host go first; 0 = the worker's own priority.
IMAGEWORKS_JOB_NICENESS = env_int("IMAGEWORKS_JOB_NICENESS", 10)
# Web processes warm up (views, templates, search index) before they serve
# (imageworks_site/warmup.py).
IMAGEWORKS_WARM_UP = env_bool("IMAGEWORKS_WARM_UP", True)
IMAGEWORKS_HASH_WORKERS = env_int(
    "IMAGEWORKS_HASH_WORKERS", max(2, os.cpu_count() or 2)
)

# vLLM activation
# The django-q2 queue (cluster name) whose worker runs on the GPU host: activate/stop
# jobs and the vLLM reconcile schedule go there; every other job stays on the site
# queue. Empty = one queue for everything (docs/deploy.md, "Per-host queues").
IMAGEWORKS_VLLM_QUEUE = env("IMAGEWORKS_VLLM_QUEUE", "") or ""
# This machine's name, recorded on every activation it launches: pids are only judged
# on the machine that owns them. Other hosts must resolve it when vLLM binds 0.0.0.0.
IMAGEWORKS_HOST_NAME = env("IMAGEWORKS_HOST_NAME", socket.gethostname()) or "localhost"
IMAGEWORKS_VLLM_LAUNCHER = env(
    "IMAGEWORKS_VLLM_LAUNCHER",
    f"{sys.executable} -m vllm.entrypoints.openai.api_server",
)
IMAGEWORKS_VLLM_PORT = env_int("IMAGEWORKS_VLLM_PORT", 24001)
IMAGEWORKS_VLLM_HOST = env("IMAGEWORKS_VLLM_HOST", "127.0.0.1")
IMAGEWORKS_VLLM_USE_ENTRY_PORT = env_bool("IMAGEWORKS_VLLM_USE_ENTRY_PORT", False)
IMAGEWORKS_VLLM_START_TIMEOUT = env_float("IMAGEWORKS_VLLM_START_TIMEOUT", 180.0)
IMAGEWORKS_VLLM_STOP_GRACE = env_float("IMAGEWORKS_VLLM_STOP_GRACE", 30.0)
IMAGEWORKS_VLLM_GPU_MEMORY_UTILIZATION = env(
    "IMAGEWORKS_VLLM_GPU_MEMORY_UTILIZATION", "0.75"
)
IMAGEWORKS_VLLM_MAX_MODEL_LEN = env("IMAGEWORKS_VLLM_MAX_MODEL_LEN", "")
IMAGEWORKS_VLLM_ADMIN_URL = env("IMAGEWORKS_VLLM_ADMIN_URL", "")
# Proxy mode extras (docs/activation.md): bearer token for the admin service, the log
# folder relative to its cwd, whether model paths are checked locally (shared mounts).
IMAGEWORKS_VLLM_ADMIN_TOKEN = env("IMAGEWORKS_VLLM_ADMIN_TOKEN", "")
IMAGEWORKS_VLLM_ADMIN_LOG_DIR = env("IMAGEWORKS_VLLM_ADMIN_LOG_DIR", "logs/vllm")
IMAGEWORKS_VLLM_ADMIN_CHECK_PATHS = env_bool("IMAGEWORKS_VLLM_ADMIN_CHECK_PATHS", True)
# Host polled for readiness (default: 127.0.0.1 locally, the admin URL's host in proxy mode).
IMAGEWORKS_VLLM_CONNECT_HOST = env("IMAGEWORKS_VLLM_CONNECT_HOST", "")
IMAGEWORKS_VLLM_CWD = env("IMAGEWORKS_VLLM_CWD", "")
IMAGEWORKS_VLLM_ENV_ALLOWLIST = [
    v.strip()
    for v in (
        env(
            "IMAGEWORKS_VLLM_ENV_ALLOWLIST",
            "PATH,HOME,LANG,LC_ALL,TMPDIR,CUDA_VISIBLE_DEVICES,HF_HOME,HF_HUB_OFFLINE,"
            "TRANSFORMERS_OFFLINE,VLLM_WORKER_MULTIPROC_START_METHOD,PYTHONPATH,VIRTUAL_ENV",
        )
        or ""
    ).split(",")
    if v.strip()
]
# GPU reading (backends/gpu.py): an explicit nvidia-smi wins; empty = NVML
# (nvidia-ml-py, extra "gpu") if the driver loads, else nvidia-smi on PATH.
IMAGEWORKS_NVIDIA_SMI = env("IMAGEWORKS_NVIDIA_SMI", "") or ""

# API (docs/api.md, docs/security.md)
# GET /v1/models and POST /v1/select without a token (trusted networks only).
IMAGEWORKS_LOADER_OPEN_READ = env_bool("IMAGEWORKS_LOADER_OPEN_READ", False)
# POST /v1/verify waits this long for its job, then answers 504 (the job goes on).
# Keep it below gunicorn's --timeout (docs/deploy.md: 120 s).
IMAGEWORKS_LOADER_VERIFY_TIMEOUT = env_float("IMAGEWORKS_LOADER_VERIFY_TIMEOUT", 60.0)

# Backend health
IMAGEWORKS_OLLAMA_URL = env("IMAGEWORKS_OLLAMA_URL", "http://127.0.0.1:11434")
IMAGEWORKS_LMDEPLOY_URL = env("IMAGEWORKS_LMDEPLOY_URL", "")
IMAGEWORKS_TRITON_URL = env("IMAGEWORKS_TRITON_URL", "")
IMAGEWORKS_HEALTH_INTERVAL = env_int("IMAGEWORKS_HEALTH_INTERVAL", 30)
IMAGEWORKS_HEALTH_TIMEOUT = env_float("IMAGEWORKS_HEALTH_TIMEOUT", 2.0)
IMAGEWORKS_CHAT_PROXY_CONFIG = env("IMAGEWORKS_CHAT_PROXY_CONFIG", "")
# More OpenAI-compatible servers to watch (comma-separated base URLs).
#: Hosts an entry's own endpoint (backend_config host/base_url) may be on to be health
#: checked, besides the hosts of the backend URL settings and IMAGEWORKS_VLLM_HOST.
IMAGEWORKS_HEALTH_HOSTS = [
    h.strip()
    for h in (env("IMAGEWORKS_HEALTH_HOSTS", "127.0.0.1,localhost,::1") or "").split(
        ","
    )
    if h.strip()
]
IMAGEWORKS_OPENAI_URLS = [
    u.strip() for u in (env("IMAGEWORKS_OPENAI_URLS", "") or "").split(",") if u.strip()
]
# Cards poll every N s; a card load re-checks results older than M s (0 = never;
# keeps cards truthful when no qcluster runs the schedule). See docs/health.md.
IMAGEWORKS_HEALTH_CARD_POLL = env_int("IMAGEWORKS_HEALTH_CARD_POLL", 15)
# Open pages ask /live/ this often whether anything they show changed (a 304 when not).
IMAGEWORKS_LIVE_POLL_SECONDS = env_float("IMAGEWORKS_LIVE_POLL_SECONDS", 2.0)
IMAGEWORKS_HEALTH_CARD_REFRESH = env_float(
    "IMAGEWORKS_HEALTH_CARD_REFRESH", float(IMAGEWORKS_HEALTH_INTERVAL)
)

# Inventory: reconcile report, disk use, reclaim and trash (docs/reconcile.md)
# The trash folder ("" = a .imageworks-trash folder inside the model root holding the
# folder moved). It must be inside a model root; folders are renamed, never copied.
IMAGEWORKS_TRASH_DIR = env("IMAGEWORKS_TRASH_DIR", "") or ""
# Ollama's model store (manifests + blobs). Unset: $OLLAMA_MODELS or ~/.ollama/models;
# empty: do not read it (Ollama sizes stay unknown).
IMAGEWORKS_OLLAMA_MODELS_DIR = env("IMAGEWORKS_OLLAMA_MODELS_DIR")
# Minutes between scheduled scans (manage.py setup_reconcile_schedule; 0 = none).
IMAGEWORKS_RECONCILE_INTERVAL = env_int("IMAGEWORKS_RECONCILE_INTERVAL", 360)
IMAGEWORKS_RECONCILE_KEEP = env_int("IMAGEWORKS_RECONCILE_KEEP", 10)
# The reclaim page suggests entries unused for this many days.
IMAGEWORKS_RECLAIM_IDLE_DAYS = env_int("IMAGEWORKS_RECLAIM_IDLE_DAYS", 90)
