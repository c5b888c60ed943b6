"""Django's ``ModelBackend`` with a user's permissions read in one query.

``ModelBackend`` reads a user's own permissions and their groups' permissions in two
queries (each with joins) and keeps the union in ``user._perm_cache`` for the rest of
the request. Every page, partial and API call checks a permission, so this backend
reads the same union in one query. The user object is loaded afresh by each request
(session or token), so a role change still applies at the next request.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.models import Permission
from django.db.models import Q


class ModelBackend(DjangoModelBackend):
    def get_all_permissions(self, user_obj, obj=None):
        if (
            user_obj.is_active
            and not user_obj.is_anonymous
            and not user_obj.is_superuser
            and obj is None
            and not hasattr(user_obj, "_perm_cache")
        ):
            rows = (
                Permission.objects.filter(Q(user=user_obj) | Q(group__user=user_obj))
                .values_list("content_type__app_label", "codename")
                .order_by()
            )  # a permission both granted and inherited comes twice: the set keeps one
            user_obj._perm_cache = {f"{app}.{codename}" for app, codename in rows}
        return super().get_all_permissions(user_obj, obj)
