"""The site's roles: Django groups with the permissions each needs."""

from __future__ import annotations

VIEW_PERMS = [
    "registry.view_modelentry",
    "registry.view_actionlog",
    "registry.view_job",
    "registry.view_entrychange",
    "registry.view_layerfile",
    "backends.view_activation",
    "backends.view_backendendpoint",
    "backends.view_healthtransition",
    "inventory.view_finding",
    "inventory.view_scanrun",
    "inventory.view_trashitem",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    "viewer": VIEW_PERMS,
    "operator": VIEW_PERMS
    + [
        "registry.verify_entry",
        "registry.lock_entry",
        "registry.sync_registry",
        "backends.control_backend",
    ],
    "editor": VIEW_PERMS
    + [
        "registry.edit_entry",
        "registry.import_entry",
        "registry.sync_registry",
        "inventory.run_scan",
        "inventory.reclaim_space",
        "inventory.restore_trash",
        "inventory.empty_trash",
    ],
}
ROLES = list(ROLE_PERMISSIONS)


def role_label(user) -> str:
    """A short role description for the navigation bar."""
    if not user.is_authenticated:
        return ""
    if user.is_superuser:
        return "admin"
    names = sorted({g.name for g in user.groups.all()} & set(ROLES))
    return ", ".join(names) or "no role"


def ensure_groups(apps=None) -> None:
    """Create the role groups and give them their permissions (idempotent)."""
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    migrating = apps is not None
    apps = apps or global_apps
    # Custom permissions are normally created after migrations; make them now.
    for app_config in apps.get_app_configs():
        previous = getattr(app_config, "models_module", None)
        app_config.models_module = previous or True  # historical app configs have None
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            if migrating and not _has_models(apps, app_label):
                # That app's tables do not exist yet at this point of the migration
                # plan; its own migration grants its permissions (calling this again).
                continue
            wanted.append(
                Permission.objects.get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        group.permissions.set(wanted)


def _has_models(apps, app_label: str) -> bool:
    try:
        return bool(list(apps.get_app_config(app_label).get_models()))
    except LookupError:
        return False
