"""Keyset paging for the web's lists: a page starts where the cursor points, so it costs one query whatever
its depth. Cursors are encrypted (Fernet): the boundary row's internal ids never appear in a URL."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db.models import Q, QuerySet


class BadCursor(ValueError):
    """A cursor that this list did not issue."""


def _fernet() -> Fernet:
    digest = hashlib.sha256(f"web-keyset:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@dataclass
class Page:
    results: list[Any]
    next_cursor: str | None
    is_first: bool


class Keyset:
    """Newest-first pages on `ordering` (descending fields only, e.g. "-occurred_at", "-id"; the last one
    unique)."""

    def __init__(self, *ordering: str) -> None:
        assert all(o.startswith("-") for o in ordering)  # noqa: S101 - a programming error, not input
        self.ordering = ordering
        self.fields = [o[1:] for o in ordering]

    def _after(self, values: list[Any]) -> Q:
        last = len(self.fields) - 1
        condition = Q(**{f"{self.fields[last]}__lt": values[last]})
        for index in range(last - 1, -1, -1):
            name, value = self.fields[index], values[index]
            condition = Q(**{f"{name}__lt": value}) | (Q(**{name: value}) & condition)
        if last > 0:
            condition = Q(**{f"{self.fields[0]}__lte": values[0]}) & condition
        return condition

    def paginate(self, queryset: QuerySet, cursor: str | None, size: int | None = None) -> Page:
        size = size or settings.WEB_PAGE_SIZE
        queryset = queryset.order_by(*self.ordering)
        if cursor:
            queryset = queryset.filter(self._after(self._decode(cursor)))
        rows = list(queryset[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, self._encode(rows[-1]) if more and rows else None, not cursor)

    def _encode(self, row: Any) -> str:
        values = []
        for name in self.fields:
            value = getattr(row, name)
            values.append({"t": value.isoformat()} if isinstance(value, datetime) else value)
        payload = json.dumps({"o": list(self.ordering), "k": values}, separators=(",", ":"))
        return _fernet().encrypt(payload.encode()).decode()

    def _decode(self, cursor: str) -> list[Any]:
        try:
            payload = json.loads(_fernet().decrypt(cursor.encode()))
            if payload["o"] != list(self.ordering) or len(payload["k"]) != len(self.fields):
                raise BadCursor(cursor)
            return [datetime.fromisoformat(v["t"]) if isinstance(v, dict) else v for v in payload["k"]]
        except (InvalidToken, ValueError, KeyError, TypeError, UnicodeError):
            raise BadCursor(cursor) from None
