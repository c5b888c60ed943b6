"""Permission helpers: anonymous users go to the login page, others get 403."""

from __future__ import annotations

from django.contrib.auth.mixins import PermissionRequiredMixin


class RolePermissionRequiredMixin(PermissionRequiredMixin):
    """Like Django's mixin, but never a 403 for someone who simply is not signed in."""

    def handle_no_permission(self):
        self.raise_exception = self.request.user.is_authenticated
        return super().handle_no_permission()
