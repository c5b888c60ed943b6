"""What the operator chose for one activate or stop request (issue 13 §2, §4).

One value object for every front end: the drawer's dialogs, ``activate-model
--override-preflight/--drain/--force --reason`` and the REST API's body all build a
:class:`SlotOptions`; the activate and stop jobs carry it in ``Job.params``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: The longest wait for in-flight requests one request may ask for (seconds).
MAX_DRAIN_S = 3600
MAX_REASON_LENGTH = 500


@dataclass(frozen=True)
class SlotOptions:
    """``override_preflight``: activate although preflight checks failed.
    ``drain_s``: before stopping the running model, wait up to this long for its
    in-flight requests to finish (then stop anyway). ``force``: stop it now even with
    requests in flight. ``reason``: why, for the audit log (needed by the override
    and by ``force``)."""

    override_preflight: bool = False
    drain_s: float = 0.0
    force: bool = False
    reason: str = ""

    def problem(self) -> str:
        """Why these choices cannot be accepted ("" when they can)."""
        if not 0 <= self.drain_s <= MAX_DRAIN_S:
            return (
                f"The wait for in-flight requests must be 0 to {MAX_DRAIN_S} seconds."
            )
        if self.drain_s and self.force:
            return (
                "Choose either to wait for in-flight requests or to stop now, not both."
            )
        if len(self.reason) > MAX_REASON_LENGTH:
            return f"The reason is longer than {MAX_REASON_LENGTH} characters."
        if self.force and not self.reason.strip():
            return "Stopping now with requests in flight needs a reason (it goes into the audit log)."
        if self.override_preflight and not self.reason.strip():
            return "Overriding failed preflight checks needs a reason (it goes into the audit log)."
        return ""

    def as_params(self) -> dict[str, Any]:
        """For ``Job.params`` (only what differs from the defaults)."""
        default = SlotOptions()
        return {k: v for k, v in asdict(self).items() if getattr(default, k) != v}

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> SlotOptions:
        params = params or {}
        return cls(
            override_preflight=bool(params.get("override_preflight")),
            drain_s=float(params.get("drain_s") or 0.0),
            force=bool(params.get("force")),
            reason=str(params.get("reason") or "").strip(),
        )


NO_OPTIONS = SlotOptions()
