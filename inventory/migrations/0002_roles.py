"""Give the role groups the inventory permissions (viewer reads; editor scans,
reclaims, restores and empties the trash): ``imageworks_site.roles`` lists them."""

from django.db import migrations


def grant(apps, schema_editor):
    from imageworks_site.roles import ensure_groups

    ensure_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0001_initial"),
        ("registry", "0004_drop_stored_merged"),
        ("backends", "0002_activation_host_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
