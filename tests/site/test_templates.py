"""Template source checks: mistakes Django renders as page text instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.template.base import Lexer, TokenType

ROOT = Path(settings.BASE_DIR)


def template_files() -> list[Path]:
    dirs = [Path(d) for d in settings.TEMPLATES[0]["DIRS"]]
    dirs += [p for p in ROOT.glob("*/templates") if p.is_dir()]
    return sorted({f for d in dirs for f in d.rglob("*.html")})


def test_the_templates_are_found():
    names = {f.name for f in template_files()}
    assert {"base.html", "modelentry_list.html"} <= names


@pytest.mark.parametrize(
    "path", template_files(), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_tag_or_comment_spans_lines(path):
    """``{# ... #}`` and ``{% ... %}`` must open and close on one line: Django renders
    a multi-line one as literal text on the page (``{% comment %}`` spans lines)."""
    stray = []
    for token in Lexer(path.read_text(encoding="utf-8")).tokenize():
        if token.token_type is TokenType.TEXT:
            for opener in ("{#", "{%"):
                if opener in token.contents:
                    stray.append((token.lineno, opener))
    assert not stray, f"{path}: rendered as text at (line, opener) {stray}"
