"""Small shared helpers of the REST routers: output dicts and error shapes."""

from __future__ import annotations

from typing import Any

from ninja.responses import Status


class Invalid(Exception):
    """422 with FastAPI-style error items: ``{"detail": [{"loc", "msg", "type"}]}``."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__("invalid input")
        self.errors = errors


def form_errors(form, *loc: str) -> list[dict[str, Any]]:
    """A Django form's errors as FastAPI/pydantic-style items under ``loc``."""
    items = []
    for field, errors in form.errors.get_json_data().items():
        where = list(loc) + ([field] if field != "__all__" else [])
        for error in errors:
            items.append(
                {
                    "type": error.get("code") or "value_error",
                    "loc": where,
                    "msg": error["message"],
                }
            )
    return items


def entry_out(entry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "name": entry.name,
        "display_name": entry.display_name,
        "backend": entry.backend,
        "roles": entry.roles or [],
        "capabilities": entry.capability_flags,
        "served_model_id": entry.served_model_id,
        "aliases": entry.aliases or [],
        "locked": entry.locked,
        "aggregate_sha256": entry.aggregate_sha256,
        "expected_sha256": entry.expected_sha256,
        "last_verified": entry.last_verified,
        "deprecated": entry.deprecated,
        "testing": entry.testing,
        "installed": entry.installed,
        "provenance": entry.provenance,
        "fingerprint": entry.fingerprint,
    }


def job_out(job) -> dict[str, Any]:
    return {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "entry_name": job.entry_name,
        "user_name": job.user_name,
        "source": job.source,
        "created": job.created,
        "started": job.started,
        "finished": job.finished,
        "error": job.error,
        "result": job.result or {},
        "data": job.data or {},
    }


def accepted(job, message: str):
    """202 + the job to poll (``Location`` points at it)."""
    job.refresh_from_db()  # inline task runners (tests) may have finished it already
    return Status(202, {"detail": message, "job": job_out(job)})
