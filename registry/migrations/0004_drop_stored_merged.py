"""Stop storing the merged entry (derived from the two raw layers on read), and
recompute fingerprints with the orjson canonical form ``layers.entry_fingerprint``
now uses, so the first sync after the upgrade does not see every entry as changed.

The formula is copied here on purpose: a migration must not change meaning when the
application code moves on.
"""

import hashlib
import json

import orjson
from django.db import migrations

_FALLBACK = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _fingerprint(curated, discovered) -> str:
    value = [curated, discovered]
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        data = _FALLBACK.encode(value).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def recompute_fingerprints(apps, schema_editor):
    ModelEntry = apps.get_model("registry", "ModelEntry")
    rows = ModelEntry.objects.only("pk", "curated_raw", "discovered_raw", "fingerprint")
    batch = []
    for row in rows.iterator(chunk_size=500):
        # OrderedJSONField already parsed the raw columns.
        fingerprint = _fingerprint(row.curated_raw, row.discovered_raw)
        if fingerprint != row.fingerprint:
            row.fingerprint = fingerprint
            batch.append(row)
        if len(batch) >= 500:
            ModelEntry.objects.bulk_update(batch, ["fingerprint"])
            batch = []
    if batch:
        ModelEntry.objects.bulk_update(batch, ["fingerprint"])


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0003_ordered_json"),
    ]

    operations = [
        migrations.RemoveField(model_name="modelentry", name="merged"),
        migrations.RunPython(recompute_fingerprints, migrations.RunPython.noop),
    ]
