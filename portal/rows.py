"""Model instances from the columns of a statement written by hand, as the ORM would build them.

The statements that run on every request (the token check, the scope, the consumer check) are written once
in SQL because compiling their ORM equivalents costs more than running them; RawQuerySet, which would turn
their rows into instances, costs about as much again per row (it reads the cursor's description and resolves
the model's init order on every call). Here each model's columns and converters are worked out once, and a
row becomes an instance through Model.from_db, the ORM's own constructor: the same values, the same
converters (decrypted identifiers, JSON), the same instance state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connections, models


@dataclass(frozen=True)
class Columns:
    """One model's concrete columns in a statement (selected as `select`), with the converters the ORM would
    apply to each value."""

    model: type[models.Model]
    attnames: tuple[str, ...]
    select: str
    converters: tuple[tuple[int, tuple[Any, ...], Any], ...]  # (position, converters, column expression)

    def instance(self, values: list[Any], db: str) -> Any:
        connection = connections[db]
        for position, converters, expression in self.converters:
            for converter in converters:
                values[position] = converter(values[position], expression, connection)
        return self.model.from_db(db, self.attnames, values)


def columns(model: type[models.Model], alias: str, db: str) -> Columns:
    """`model`'s concrete columns as read through table alias `alias` on database `db`."""
    connection = connections[db]
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(alias)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((position, tuple(found), column))
    return Columns(
        model,
        tuple(f.attname for f in fields),
        ", ".join(f"{alias}.{quote(f.column)}" for f in fields),
        tuple(converters),
    )
