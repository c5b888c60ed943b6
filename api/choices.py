"""Token scopes: what a token may do, at most (the user's role still decides)."""

from django.db import models

from imageworks_site.roles import ROLE_PERMISSIONS, VIEW_PERMS


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    OPERATE = "operate", "Operate"
    EDIT = "edit", "Edit"

    @property
    def permissions(self) -> frozenset[str]:
        """The permissions a token of this scope can use (intersected with the user's)."""
        return SCOPE_PERMISSIONS[self]

    @property
    def role(self) -> str:
        """The role whose permissions this scope mirrors."""
        return {"read": "viewer", "operate": "operator", "edit": "editor"}[self.value]


# read = the viewer role, operate = the operator role, edit = the editor role.
SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    TokenScope.READ: frozenset(VIEW_PERMS),
    TokenScope.OPERATE: frozenset(ROLE_PERMISSIONS["operator"]),
    TokenScope.EDIT: frozenset(ROLE_PERMISSIONS["editor"]),
}
