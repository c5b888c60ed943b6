"""Errors of the activation service; every message is shown to the operator as is."""

from __future__ import annotations

from typing import Any


class ActivationError(Exception):
    """Base class: the message is shown to the operator as is."""


class ActivationRefused(ActivationError):
    """The request was rejected before anything was stopped or started."""


class PreflightRefused(ActivationRefused):
    """Preflight checks failed and no operator overrode them (``report`` says which)."""

    def __init__(self, report: Any):
        super().__init__(report.refusal())
        self.report = report


class InFlightRefused(ActivationRefused):
    """The server to stop or replace is working on requests and the operator chose
    neither to wait for them nor to stop now (``reading`` says how many)."""

    def __init__(self, message: str, reading: Any):
        super().__init__(message)
        self.reading = reading


class ActivationBusy(ActivationError):
    """Another activation or stop holds the slot."""


class ActivationFailed(ActivationError):
    """The server was started but did not become ready (or could not be stopped)."""


class DrainCancelled(ActivationError):
    """The job was cancelled while it waited for in-flight requests; the running
    model was left running."""
