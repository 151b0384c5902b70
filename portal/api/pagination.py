"""Keyset pagination: `{"next", "previous", "results"}` on a unique ordering, with opaque cursors.

A cursor is the ordering values of a boundary row, encrypted and authenticated (AES-GCM): a client can neither
read the internal ids inside it nor forge one, and a damaged cursor is a 400 naming `cursor`. The nonce is a
keyed hash of the plaintext (deterministic encryption): the same position always gives the same cursor, which
reveals only that two cursors point at the same row, and keeps responses reproducible. Pages cost one
query whatever their depth: the filter starts at the cursor on an index, and nothing is counted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connections, models
from django.db.models import Q, QuerySet
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param

from portal.api.params import bad, is_id
from portal.prepared import prepared

CURSOR_VERSION = 1


def _key(purpose: str) -> bytes:
    return hashlib.sha256(f"api-cursor-{purpose}:{settings.SECRET_KEY}".encode()).digest()


def _encode(payload: dict[str, Any]) -> str:
    plaintext = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    nonce = hmac.new(_key("nonce"), plaintext, hashlib.sha256).digest()[:12]
    sealed = AESGCM(_key("encrypt")).encrypt(nonce, plaintext, None)
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if len(raw) < 29:
            raise ValueError
        payload = json.loads(AESGCM(_key("encrypt")).decrypt(raw[:12], raw[12:], None))
        if not isinstance(payload, dict) or payload.get("v") != CURSOR_VERSION:
            raise ValueError
        return payload
    except (ValueError, InvalidTag, UnicodeDecodeError):
        raise bad("cursor", "Invalid cursor: use the 'next' or 'previous' link of a response.") from None


_UNKNOWN: Any = object()
# Compiled page statements by shape (Keyset.paginate_statement); None: the shape is served by the ORM.
_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _stand_ins(named: dict[str, Any]) -> dict[str, Any] | None:
    """One distinct value per input, of the input's type, that no request carries: whole numbers far below
    any id, instants in the year 2, strings with a control character; None for any other type (the shape is
    then not compiled)."""
    out: dict[str, Any] = {}
    for index, (name, value) in enumerate(named.items()):
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            out[name] = -(10**15) - index
        elif isinstance(value, datetime):
            out[name] = value.replace(year=2, month=1, day=1, hour=0, minute=0, second=0, microsecond=index)
        elif isinstance(value, str):
            out[name] = f"\x1fstand-in-{index}"
        else:
            return None
    return out


@dataclass
class Page:
    results: list[Any]
    next: str | None
    previous: str | None

    def as_dict(self, serialized: Any) -> dict[str, Any]:
        return {"next": self.next, "previous": self.previous, "results": serialized}


def page_size(request: Request) -> int:
    raw = request.query_params.get("page_size")
    if raw is None:
        return settings.API_DEFAULT_PAGE_SIZE
    if len(request.query_params.getlist("page_size")) > 1:
        raise bad("page_size", "Give this parameter once.")
    if not is_id(raw) or not 1 <= int(raw) <= settings.API_MAX_PAGE_SIZE:
        raise bad("page_size", f"A whole number from 1 to {settings.API_MAX_PAGE_SIZE}.")
    return int(raw)


class Keyset:
    """Pages a queryset on `ordering` (e.g. ["-occurred_at", "-id"]), whose last field must be unique."""

    def __init__(self, *ordering: str) -> None:
        self.ordering = ordering
        self.fields = [o.lstrip("-") for o in ordering]
        self.descending = [o.startswith("-") for o in ordering]

    def _boundary(self, values: list[Any], forward: bool) -> Q:
        """Rows strictly after `values` in the page direction. The leading non-strict term lets the database
        start an index range at the cursor instead of scanning from the top."""

        def op(index: int, strict: bool) -> str:
            after_is_less = self.descending[index] == forward
            return ("lt" if after_is_less else "gt") + ("" if strict else "e")

        last = len(self.fields) - 1
        condition = Q(**{f"{self.fields[last]}__{op(last, True)}": values[last]})
        for index in range(last - 1, -1, -1):
            name, value = self.fields[index], values[index]
            condition = Q(**{f"{name}__{op(index, True)}": value}) | (Q(**{name: value}) & condition)
        if last > 0:
            condition = Q(**{f"{self.fields[0]}__{op(0, False)}": values[0]}) & condition
        return condition

    def _values(self, row: Any) -> list[Any]:
        if isinstance(row, dict):  # a page of .values() rows
            return [row[name] for name in self.fields]
        return [getattr(row, name) for name in self.fields]

    def _serialise(self, values: list[Any]) -> list[Any]:
        out: list[Any] = []
        for value in values:
            if isinstance(value, datetime):
                out.append({"t": value.isoformat()})
            elif isinstance(value, Decimal):
                out.append({"d": str(value)})
            else:
                out.append(value)
        return out

    def _parse(self, model: type[models.Model], raw: Any) -> list[Any]:
        if not isinstance(raw, list) or len(raw) != len(self.fields):
            raise bad("cursor", "Invalid cursor for this list.")
        values: list[Any] = []
        for name, value in zip(self.fields, raw, strict=True):
            field = model._meta.get_field(name)
            try:
                if isinstance(field, models.DateTimeField):
                    values.append(datetime.fromisoformat(value["t"]))
                elif isinstance(field, models.DecimalField):
                    values.append(Decimal(value["d"]))
                elif isinstance(field, models.IntegerField | models.AutoField):
                    if not isinstance(value, int):
                        raise TypeError
                    values.append(value)
                else:
                    if not isinstance(value, str):
                        raise TypeError
                    values.append(value)
            except (TypeError, KeyError, ValueError, ArithmeticError):
                raise bad("cursor", "Invalid cursor for this list.") from None
        return values

    def _request_cursor(
        self, request: Request, model: type[models.Model]
    ) -> tuple[int, str | None, bool, list[Any] | None]:
        """The request's page size, cursor token, direction and the cursor's key values (None: no cursor)."""
        size = page_size(request)
        token = request.query_params.get("cursor")
        forward, values = True, None
        if token is not None:
            payload = _decode(token)
            if payload.get("o") != list(self.ordering):
                raise bad("cursor", "Invalid cursor for this list.")
            forward = bool(payload.get("f", True))
            values = self._parse(model, payload.get("k"))
        return size, token, forward, values

    def _ordered(self, queryset: QuerySet, forward: bool, values: list[Any] | None, size: int) -> QuerySet:
        """`queryset` in the list's order (reversed going back), after the cursor's row: a page and one."""
        ordering = (
            self.ordering if forward else [o[1:] if o.startswith("-") else f"-{o}" for o in self.ordering]
        )
        page_qs = queryset.order_by(*ordering)
        if values is not None:
            page_qs = page_qs.filter(self._boundary(values, forward))
        return page_qs[: size + 1]

    def paginate(self, request: Request, queryset: QuerySet) -> Page:
        size, token, forward, values = self._request_cursor(request, queryset.model)
        rows = list(self._ordered(queryset, forward, values, size))
        return self._page(request, rows, size, forward, token)

    def paginate_statement(
        self,
        request: Request,
        shape: str,
        model: type[models.Model],
        build: Callable[[dict[str, Any]], QuerySet],
        inputs: dict[str, Any],
    ) -> Page:
        """Like paginate(build(inputs)) for a `.values()` queryset, compiling its SQL once per shape.

        The page query of a hot list costs more to build and compile through the ORM than to run. So the first
        request of each shape (the list, which inputs are given, the direction, whether a cursor is set, the
        page size) builds the queryset from stand-in values, one distinct value per input and cursor value,
        and compiles it; each parameter of the statement is then known by the stand-in it carries. Later
        requests of that shape run the statement with their own values, and the ORM's converters (JSON,
        decimals on SQLite) on its rows. The ORM stays the only definition of the rows: when a parameter is
        not one of the stand-ins (a constant of the queryset, or a value the backend converts, as SQLite does
        with datetimes) or stands in the select list (where the server, preparing the statement, could not
        tell its type), the shape is served by paginate() every time instead.
        """
        size, token, forward, values = self._request_cursor(request, model)
        named = dict(inputs)
        if values is not None:
            named.update({f"cursor_{index}": value for index, value in enumerate(values)})
        key = (shape, tuple(named), forward, values is not None, size)
        statement = _STATEMENTS.get(key, _UNKNOWN)
        if statement is _UNKNOWN:
            statement = _STATEMENTS[key] = self._compile(build, named, forward, values is not None, size)
        if statement is None:
            rows = list(self._ordered(build(inputs), forward, values, size))
            return self._page(request, rows, size, forward, token)
        sql, slots, names, alias, converters = statement
        connection = connections[alias]
        with connection.cursor() as cursor:
            cursor.execute(sql, [named[slot] for slot in slots])
            fetched = cursor.fetchall()
        if converters:
            fetched = [list(row) for row in fetched]
            for row in fetched:
                for position, functions, expression in converters:
                    for function in functions:
                        row[position] = function(row[position], expression, connection)
        rows = [dict(zip(names, row, strict=True)) for row in fetched]
        return self._page(request, rows, size, forward, token)

    def _compile(
        self,
        build: Callable[[dict[str, Any]], QuerySet],
        named: dict[str, Any],
        forward: bool,
        bounded: bool,
        size: int,
    ) -> tuple[str, list[str], list[str], str, tuple[tuple[int, tuple[Any, ...], Any], ...]] | None:
        stand_ins = _stand_ins(named)
        if stand_ins is None:
            return None
        queryset = build({name: stand_ins[name] for name in named if not name.startswith("cursor_")})
        query = queryset.query
        if query.extra_select or not query.values_select:
            return None
        boundary = [stand_ins[f"cursor_{i}"] for i in range(len(self.fields))] if bounded else None
        page_qs = self._ordered(queryset, forward, boundary, size)
        compiler = page_qs.query.get_compiler(using=page_qs.db)
        sql, params = compiler.as_sql()
        if any(select_params for _column, (_sql, select_params), _alias in compiler.select):
            return None  # a parameter in the select list
        found = compiler.get_converters([column for column, _sql, _alias in compiler.select])
        converters = tuple(
            (position, tuple(functions), expression) for position, (functions, expression) in found.items()
        )
        by_stand_in = {(type(value), value): name for name, value in stand_ins.items()}
        slots = []
        for param in params:
            name = by_stand_in.get((type(param), param))
            if name is None:
                return None
            slots.append(name)
        names = [*query.values_select, *query.annotation_select]
        return prepared(sql), slots, names, page_qs.db, converters

    def _page(self, request: Request, rows: list[Any], size: int, forward: bool, token: str | None) -> Page:
        more = len(rows) > size
        rows = rows[:size]
        if not forward:
            rows.reverse()
        has_next = more if forward else token is not None
        has_previous = (token is not None) if forward else more
        url = request.build_absolute_uri()
        return Page(
            results=rows,
            next=self._link(url, rows[-1], True) if rows and has_next else None,
            previous=self._link(url, rows[0], False) if rows and has_previous else None,
        )

    def _link(self, url: str, row: Any, forward: bool) -> str:
        token = _encode(
            {
                "v": CURSOR_VERSION,
                "o": list(self.ordering),
                "f": forward,
                "k": self._serialise(self._values(row)),
            }
        )
        return replace_query_param(remove_query_param(url, "cursor"), "cursor", token)
