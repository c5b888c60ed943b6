"""Request and response shapes of the API (pydantic, through django-ninja).

The loader protocol's shapes copy the original FastAPI service's models field for
field (``ModelSummary``, ``SelectRequest``, ``SelectResponse``, ``VerifyRequest``,
``VisionProbeRequest``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema

# --------------------------------------------------------------------------- errors


class Error(Schema):
    detail: Any = Field(
        ..., description="A message, or a list of validation errors (422)."
    )


class ConflictError(Schema):
    detail: str
    current_fingerprint: str = ""
    changed_by: str = ""
    other_change: list[dict] = []
    diff: str = Field("", description="Unified diff: the file now vs. your edit.")


# --------------------------------------------------------------------------- loader protocol


class ModelSummary(Schema):
    name: str
    backend: str
    capabilities: dict
    locked: bool
    vision_ok: bool | None
    display_name: str | None = None


class SelectRequest(Schema):
    name: str
    require_capabilities: list[str] | None = None


class SelectResponse(Schema):
    endpoint: str
    backend: str
    internal_model_id: str
    capabilities: dict


class VerifyRequest(Schema):
    name: str


class VerifyResponse(Schema):
    status: str
    aggregate_sha256: str


class VisionProbeRequest(Schema):
    name: str
    image_path: str


class Metrics(Schema):
    rolling_samples: int
    ttft_ms_avg: float | None = None
    throughput_toks_per_s_avg: float | None = None
    last_sample: dict | None = None


class Root(Schema):
    service: str
    version: str


# --------------------------------------------------------------------------- REST: entries


class EntryOut(Schema):
    id: int
    name: str
    display_name: str
    backend: str
    roles: list[str]
    capabilities: list[str] = Field(
        ..., description="Canonical flags that are on: vision, embedding, ..."
    )
    served_model_id: str
    aliases: list[str]
    locked: bool
    aggregate_sha256: str
    expected_sha256: str
    last_verified: str
    deprecated: bool
    testing: bool
    installed: bool | None
    provenance: str
    fingerprint: str

    @staticmethod
    def resolve_capabilities(obj) -> list[str]:
        if isinstance(obj, dict):
            return obj["capabilities"]
        return obj.capability_flags


class EntryDetail(EntryOut):
    endpoint: str
    download_path: str
    last_verified_by: str
    field_sources: dict[str, str]
    merged: dict
    curated: dict | None
    discovered: dict | None
    recent_changes: list[dict]


class EditIn(Schema):
    fingerprint: str = Field(
        ..., description="The entry's fingerprint when you read it (GET)."
    )
    fields: dict[str, Any] = Field(
        ...,
        description=(
            "Form fields to change (others keep their values): display_name, backend, "
            "served_model_id, roles, aliases, deprecated, port, host, base_url, "
            "model_path, extra_args, gen_<key>, gen_stop_sequences, cap_<flag>, metadata."
        ),
    )
    dry_run: bool = False


class EditOut(Schema):
    changed: bool
    saved: bool
    summary: str
    diff: list[dict]
    unified_diff: str
    entry: EntryOut | None = None


class ImportItemIn(Schema):
    name: str
    roles: list[str]
    backend: str
    served_model_id: str = ""
    display_name: str = ""
    ollama_tag: str = ""


class ImportIn(Schema):
    items: list[ImportItemIn]
    dry_run: bool = False


class ImportOut(Schema):
    imported: list[str]
    refused: list[dict]
    planned: list[dict]
    message: str
    diff: str = ""


class ImportableOut(Schema):
    id: int
    name: str
    backend: str
    format: str
    quantization: str
    path: str
    size: int | None
    suggested: dict


# --------------------------------------------------------------------------- REST: jobs & co.


class JobOut(Schema):
    id: int
    kind: str
    status: str
    progress: float
    message: str
    entry_name: str
    user_name: str
    source: str
    created: datetime
    started: datetime | None
    finished: datetime | None
    error: str
    result: dict
    data: dict = Field(..., description="Progress data, e.g. bytes_done/bytes_total.")


class JobDetail(JobOut):
    log: list[dict]
    params: dict


class Accepted(Schema):
    """A request that queued background work: poll the job."""

    detail: str
    job: JobOut


class ActionOut(Schema):
    id: int
    time: datetime
    finished_at: datetime | None
    user_name: str
    source: str
    action: str
    entry_name: str
    outcome: str
    message: str
    duration_ms: int | None
    job_id: int | None
    details: dict


class Message(Schema):
    detail: str


class SyncOut(Schema):
    detail: str
    added: list[str] = []
    changed: list[str] = []
    removed: list[str] = []
    problems: list[dict] = []
    job: JobOut | None = None


class ActivationOut(Schema):
    id: int
    logical_name: str
    served_model_id: str
    state: str
    mode: str
    user_name: str
    host_name: str
    base_url: str
    port: int
    pid: int | None
    command: list
    requested_at: datetime
    ready_at: datetime | None
    stopped_at: datetime | None
    time_to_ready_s: float | None
    exit_code: int | None
    error: str


class SlotOut(Schema):
    state: str
    label: str
    logical_name: str
    user_name: str
    port: int | None
    pid: int | None
    error: str
    endpoint: str = Field("", description="Where the active model answers (…/v1).")
    activation: ActivationOut | None = None
    job: JobOut | None = None


class HealthOut(Schema):
    key: str
    kind: str
    label: str
    url: str
    status: str
    since: datetime | None
    last_checked: datetime | None
    latency_ms: float | None
    error: str
    details: dict


class MeOut(Schema):
    username: str
    role: str
    token_label: str
    token_scope: str
    token_expires_at: datetime | None
    permissions: list[str]
