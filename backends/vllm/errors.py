"""Errors of the activation service; every message is shown to the operator as is."""

from __future__ import annotations


class ActivationError(Exception):
    """Base class: the message is shown to the operator as is."""


class ActivationRefused(ActivationError):
    """The request was rejected before anything was stopped or started."""


class ActivationBusy(ActivationError):
    """Another activation or stop holds the slot."""


class ActivationFailed(ActivationError):
    """The server was started but did not become ready (or could not be stopped)."""
