"""The one-row registry version (``registry.version``), created with a random stamp."""

import uuid

import django.utils.timezone
from django.db import migrations, models


def create_row(apps, schema_editor):
    RegistryVersion = apps.get_model("registry", "RegistryVersion")
    stamp = uuid.uuid4().hex
    RegistryVersion.objects.create(pk=1, counter=0, stamp=stamp, listing_stamp=stamp)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0005_source_api"),
    ]

    operations = [
        migrations.CreateModel(
            name="RegistryVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("counter", models.BigIntegerField(default=0)),
                ("stamp", models.CharField(max_length=32)),
                ("listing_stamp", models.CharField(max_length=32)),
                ("changed_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "registry version",
            },
        ),
        migrations.RunPython(create_row, migrations.RunPython.noop),
    ]
