"""The trash page: what was moved aside, restore, and the confirmed "empty trash"."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Sum
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from registry.audit import Actor

from ..choices import TrashState
from ..filtersets import TrashFilterSet
from ..forms import EmptyTrashForm
from ..models import TrashItem
from ..reconcile import human_bytes
from ..services import reclaim
from ..tables import TrashTable


@login_required
@permission_required("inventory.view_trashitem", raise_exception=True)
@require_GET
def trash_page(request):
    """Items in the trash (default) or every state; manifests without rows adopted."""
    reclaim.sync_trash(Actor.from_request(request))
    data = request.GET.copy()
    data.setdefault("state", TrashState.IN_TRASH)
    filterset = TrashFilterSet(data, queryset=TrashItem.objects.all())
    table = TrashTable(filterset.qs, order_by=request.GET.get("sort") or "-moved_at")
    table.base_url = reverse("inventory:trash")
    table.csrf_token = get_token(request)
    table.can_restore = request.user.has_perm("inventory.restore_trash")
    in_trash = TrashItem.objects.filter(state=TrashState.IN_TRASH).aggregate(
        n=Count("pk"), size=Sum("size_bytes"), freed=Sum("freed_bytes")
    )
    return render(
        request,
        "inventory/trash.html",
        {"filter": filterset, "table": table, "in_trash": in_trash},
    )


@login_required
@permission_required("inventory.restore_trash", raise_exception=True)
@require_POST
def trash_restore(request, pk: int):
    item = get_object_or_404(TrashItem, pk=pk)
    try:
        reclaim.restore(item, Actor.from_request(request))
    except reclaim.RestoreRefused as exc:
        messages.error(request, f"Not restored: {exc}")
    else:
        text = f"Restored {item.original_path}."
        if item.note:
            messages.warning(request, f"{text} {item.note}")
        else:
            messages.success(request, text)
    return redirect("inventory:trash")


@login_required
@permission_required("inventory.empty_trash", raise_exception=True)
@require_http_methods(["GET", "POST"])
def trash_empty(request):
    """GET: what would be deleted; POST (with the confirm box): delete for good."""
    items = TrashItem.objects.filter(state=TrashState.IN_TRASH)
    form = EmptyTrashForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        chosen = list(items.filter(pk__in=form.item_ids) if form.item_ids else items)
        done, freed, problems = reclaim.empty_trash(chosen, Actor.from_request(request))
        if done:
            messages.success(
                request,
                f"Deleted {done} folder(s) for good ({human_bytes(freed)} freed).",
            )
        for problem in problems:
            messages.error(request, f"Not deleted: {problem}")
        if not done and not problems:
            messages.info(request, "The trash was already empty.")
        return redirect("inventory:trash")
    totals = items.aggregate(size=Sum("size_bytes"), freed=Sum("freed_bytes"))
    return render(
        request,
        "inventory/trash_empty.html",
        {"form": form, "items": items, "totals": totals},
        status=400 if form.is_bound else 200,
    )
