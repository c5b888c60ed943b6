"""``manage.py qcluster`` whose jobs of some kinds leave a tag file saying who ran them.

Usage (from the repository root, with the site's environment)::

    python -m tests.hardening.tagged_qcluster TAG_DIR_VAR WHO_VAR KIND [KIND ...]

Before a job of one of the KINDs runs, ``$TAG_DIR_VAR/<job pk>.<$WHO_VAR>`` is
touched, so a test can tell which worker (or host) ran each job. The kinds' specs
are re-registered with the wrapped function before the cluster starts; django-q2
forks its workers from this process, so they run the wrapped functions.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path


def _tagged(func, tag_var: str, who_var: str):
    def run(job):
        (Path(os.environ[tag_var]) / f"{job.pk}.{os.environ[who_var]}").touch()
        return func(job)

    return run


def main(argv: list[str]) -> None:
    tag_var, who_var, *kinds = argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageworks_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from registry import jobs

    for kind in kinds:
        spec = jobs.spec_for(kind)
        wrapped = _tagged(spec.func, tag_var, who_var)
        jobs.register(replace(spec, func=wrapped), replace=True)
    call_command("qcluster")


if __name__ == "__main__":
    main(sys.argv[1:])
