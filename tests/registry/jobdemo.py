"""Task functions used by the job tests (importable by dotted path)."""

from registry.jobs import JobFailed, log, progress


def succeed(job):
    progress(job, 0.5, "Half way", bytes_done=5, bytes_total=10)
    log(job, "working")
    return {"answer": 42}


def fail_cleanly(job):
    raise JobFailed("model files not found at /nowhere")


def crash(job):
    raise RuntimeError("unexpected")
