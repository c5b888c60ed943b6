"""Template tags for the activation UI (drawer panel, Active? cell)."""

from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils import timezone

from backends.vllm import service

register = template.Library()


@register.simple_tag(takes_context=True)
def vllm_slot(context):
    """The vLLM slot status, computed once per request (the table asks per row)."""
    request = context.get("request")
    cached = (
        getattr(request, "_vllm_slot_status", None) if request is not None else None
    )
    if cached is None:
        cached = service.status()
        if request is not None:
            request._vllm_slot_status = cached
    return cached


@register.simple_tag
def activation_panel(entry):
    """Launch preview (command, CLI, replacement, or why not) for the drawer."""
    return service.preview(entry)


#: How long a failed activation stays on screen (then the slot reads "No model active").
FAILED_ACTIVATION_VISIBLE = timedelta(hours=1)


@register.filter
def shows_failure(status, entry=None) -> bool:
    """Is the slot's failed activation still worth showing here?

    Only the latest attempt is ever shown (``status`` is the slot's last activation),
    only in the drawer of the entry that failed (or on a page about the slot as a
    whole, ``entry`` empty), and only for ``FAILED_ACTIVATION_VISIBLE`` after it
    failed: an hour-old failure of another model is not news about this one.
    """
    activation = getattr(status, "activation", None)
    if getattr(status, "state", "") != "failed" or activation is None:
        return False
    if entry and getattr(entry, "name", None) != status.logical_name:
        return False
    when = activation.stopped_at or activation.last_updated
    return when is None or timezone.now() - when <= FAILED_ACTIVATION_VISIBLE


#: Badge class of a preflight check status and of a fit verdict.
BADGES = {
    "ok": "ok",
    "fits": "ok",
    "warn": "warn",
    "tight": "warn",
    "fail": "bad",
    "won't fit": "bad",
}


@register.filter
def status_badge(status) -> str:
    """``ok`` / ``warn`` / ``bad`` / "" for a check status or a fit verdict."""
    return BADGES.get(str(status), "")


@register.filter
def gib(value) -> str:
    """Bytes as ``16.6 GiB`` (``?`` when unknown)."""
    if value is None or value == "":
        return "?"
    return f"{int(value) / 2**30:.1f} GiB"
