"""Test settings: fast hashing, tasks run inline, a throwaway registry folder.

``DATABASE_URL`` / ``IMAGEWORKS_REDIS_URL`` still apply, so the same suite runs
on PostgreSQL + Redis in CI.
"""

import tempfile
from pathlib import Path

from imageworks_site.settings import *  # noqa: F403
from imageworks_site.settings import Q_CLUSTER

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Tests run background work inline unless a test starts a real qcluster.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}

# Throttling is enabled explicitly by the tests that check it.
AXES_ENABLED = False

_tmp = Path(tempfile.mkdtemp(prefix="imageworks-test-"))
IMAGEWORKS_REGISTRY_DIR = _tmp / "configs"
IMAGEWORKS_STAGING_DIR = _tmp / "_staging"
IMAGEWORKS_LOG_DIR = _tmp / "logs"
SEARCH_INDEX_DIR = _tmp / "search-index"
IMAGEWORKS_VLLM_START_TIMEOUT = 20.0
IMAGEWORKS_VLLM_STOP_GRACE = 3.0
IMAGEWORKS_HEALTH_TIMEOUT = 1.0
IMAGEWORKS_OLLAMA_URL = ""
# Never read the machine's real Ollama store from tests.
IMAGEWORKS_OLLAMA_MODELS_DIR = ""

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not Django's in-memory test database: with memory, the live server's
    # request threads and the threaded tests all share the test thread's ONE
    # connection, and concurrent requests (the health cards load in parallel) corrupt
    # its savepoints ("no such savepoint", then every later test on that worker
    # fails). With a file each thread has its own connection: WAL, IMMEDIATE
    # transactions and a busy timeout, as in production. pytest-xdist gives each
    # worker its own file (name suffix).
    DATABASES["default"]["TEST"] = {"NAME": str(_tmp / "test.sqlite3")}  # noqa: F405
