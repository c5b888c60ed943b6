"""Task functions used by the job tests, registered as job kinds of their own."""

from contextlib import contextmanager

from registry import jobs
from registry.jobs import JobFailed, JobSpec, log, progress


def succeed(job):
    progress(job, 0.5, "Half way", bytes_done=5, bytes_total=10)
    log(job, "working")
    return {"answer": 42}


def fail_cleanly(job):
    raise JobFailed("model files not found at /nowhere")


def crash(job):
    raise RuntimeError("unexpected")


SPECS = (
    JobSpec("demo", succeed, "registry.sync_registry"),
    JobSpec("demo-fail", fail_cleanly, "registry.sync_registry"),
    JobSpec("demo-crash", crash, "registry.sync_registry"),
)


@contextmanager
def demo_kinds():
    """The demo kinds, registered for the duration of the block."""
    for spec in SPECS:
        jobs.register(spec)
    try:
        yield
    finally:
        for spec in SPECS:
            jobs.unregister(spec.kind)
