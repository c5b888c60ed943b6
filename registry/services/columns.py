"""Per-user column choice for the Models table (NetBox's table config).

A user picks which of the table's configurable columns to show and in what order;
the choice is one ``TableConfig`` row (one query per page, whatever the row count).
The row checkbox and the Logical Name (the link that opens the drawer) are always
shown. The drawer shows every field a hidden column would have shown (Display Name
and Roles included), so hiding a column never hides data.
"""

from __future__ import annotations

from ..models import TableConfig

MODELS_TABLE = "models"
#: Columns that cannot be hidden or moved (they lead every row).
FIXED = ("select", "name")


class ColumnError(ValueError):
    """A column list that cannot be saved (unknown names, nothing to show)."""


def configurable(table_class) -> list[tuple[str, str]]:
    """``(name, label)`` of the columns a user may hide and order, default order."""
    out = []
    for name, column in table_class.base_columns.items():
        if name in FIXED:
            continue
        label = column.verbose_name or name.replace("_", " ").capitalize()
        out.append((name, str(label)))
    return out


def saved_columns(user, table: str = MODELS_TABLE) -> list[str] | None:
    """The user's saved column list, or None for the default."""
    if user is None or not user.is_authenticated:
        return None
    row = (
        TableConfig.objects.filter(user=user, table=table)
        .values_list("columns", flat=True)
        .first()
    )
    return list(row) if isinstance(row, list) else None


def effective_columns(table_class, saved: list[str] | None) -> list[str]:
    """The configurable columns to show, in order (unknown saved names dropped: a
    column removed in a release must not break anyone's page)."""
    known = [name for name, _label in configurable(table_class)]
    if saved is None:
        return known
    return [name for name in saved if name in known]


def table_kwargs(table_class, saved: list[str] | None) -> dict:
    """``exclude`` and ``sequence`` for the django-tables2 table."""
    shown = effective_columns(table_class, saved)
    hidden = [n for n, _l in configurable(table_class) if n not in shown]
    return {"exclude": hidden, "sequence": [*FIXED, *shown, "..."]}


def choices(table_class, saved: list[str] | None) -> list[dict]:
    """Every configurable column for the chooser: shown ones in order, then hidden."""
    labels = dict(configurable(table_class))
    shown = effective_columns(table_class, saved)
    rows = [{"name": n, "label": labels[n], "shown": True} for n in shown]
    rows += [
        {"name": n, "label": labels[n], "shown": False}
        for n in labels
        if n not in shown
    ]
    return rows


def save_columns(
    user, table_class, order: list[str], shown: list[str], table: str = MODELS_TABLE
) -> list[str]:
    """Save the columns *shown*, in the order of *order*; returns what was saved."""
    known = {name for name, _label in configurable(table_class)}
    unknown = sorted((set(order) | set(shown)) - known - set(FIXED))
    if unknown:
        raise ColumnError(f"Unknown column(s): {', '.join(unknown)}.")
    ordered = list(dict.fromkeys([*order, *shown]))
    columns = [n for n in ordered if n in set(shown) and n in known]
    if not columns:
        raise ColumnError("Show at least one column besides the name.")
    TableConfig.objects.update_or_create(
        user=user, table=table, defaults={"columns": columns}
    )
    return columns


def reset_columns(user, table: str = MODELS_TABLE) -> None:
    TableConfig.objects.filter(user=user, table=table).delete()


def move(order: list[str], name: str, step: int) -> list[str]:
    """*order* with *name* moved one place up (-1) or down (+1) (the no-JS buttons)."""
    order = list(order)
    if name not in order:
        return order
    i = order.index(name)
    j = max(0, min(len(order) - 1, i + step))
    order.insert(j, order.pop(i))
    return order


__all__ = [
    "FIXED",
    "MODELS_TABLE",
    "ColumnError",
    "choices",
    "configurable",
    "effective_columns",
    "move",
    "reset_columns",
    "save_columns",
    "saved_columns",
    "table_kwargs",
]
