"""Template tags for the activation UI (drawer panel, Active? cell)."""

from __future__ import annotations

from django import template

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
