"""Keyset paging for the web's lists: a page starts where the cursor points, so it costs one query whatever
its depth. Cursors are encrypted (Fernet): the boundary row's internal ids never appear in a URL."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db.models import F, Func, Q, QuerySet, Subquery
from django.http import QueryDict


class BadCursor(ValueError):
    """A cursor that this list did not issue."""


def _decoded(value: Any) -> Any:
    """A boundary value as the cursor carries it: times and decimals are tagged, the rest is JSON."""
    if isinstance(value, dict):
        if "t" in value:
            return datetime.fromisoformat(value["t"])
        return Decimal(value["d"])
    return value


def _fernet() -> Fernet:
    digest = hashlib.sha256(f"web-keyset:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


# The annotation that carries a list's total on each row of a counted page (SortedList(count_in_page=True)).
TOTAL = "listing_total"


def _count_of(queryset: QuerySet) -> Subquery:
    """COUNT(*) of `queryset` as a scalar subquery: run once by the statement it is part of (an InitPlan on
    PostgreSQL), not once per row; COUNT as a plain function so that the ORM adds no GROUP BY."""
    counting = queryset.order_by().annotate(**{TOTAL: Func(F("pk"), function="COUNT")}).values(TOTAL)
    return Subquery(counting)


@dataclass
class Page:
    results: list[Any]
    next_cursor: str | None
    is_first: bool
    previous_cursor: str | None = None


class Keyset:
    """Pages on `ordering` (e.g. "-occurred_at", "-id", or "province", "-public_id"; the last field unique),
    forward from a "next" cursor and backward from a "previous" one."""

    def __init__(self, *ordering: str) -> None:
        self.ordering = ordering
        self.fields = [o.lstrip("-") for o in ordering]
        self.descending = [o.startswith("-") for o in ordering]

    def _beyond(self, values: list[Any], forward: bool) -> Q:
        """Rows after (forward) or before the boundary row in this ordering."""

        def op(index: int, strict: bool = True) -> str:
            lower = self.descending[index] == forward  # walking towards smaller values
            return ("lt" if lower else "gt") + ("" if strict else "e")

        last = len(self.fields) - 1
        condition = Q(**{f"{self.fields[last]}__{op(last)}": values[last]})
        for index in range(last - 1, -1, -1):
            name, value = self.fields[index], values[index]
            condition = Q(**{f"{name}__{op(index)}": value}) | (Q(**{name: value}) & condition)
        if last > 0:
            condition = Q(**{f"{self.fields[0]}__{op(0, strict=False)}": values[0]}) & condition
        return condition

    def _after(self, values: list[Any]) -> Q:
        return self._beyond(values, True)

    def paginate(
        self,
        queryset: QuerySet,
        cursor: str | None,
        size: int | None = None,
        *,
        counted: bool = False,
        fields: tuple[str, ...] = (),
    ) -> Page:
        """The page at `cursor`; with `counted`, each row also carries the number of rows of the whole
        `queryset` (TOTAL), read by the page's own statement; with `fields`, rows are named tuples of
        those fields (and TOTAL) instead of model instances."""
        size = size or settings.WEB_PAGE_SIZE
        if cursor:
            direction, values = self._decode_with_direction(cursor)
        else:
            direction, values = "n", None
        if counted:
            queryset = queryset.annotate(**{TOTAL: _count_of(queryset)})
        if fields:
            queryset = queryset.values_list(*fields, *([TOTAL] if counted else []), named=True)
        if direction == "p" and values is not None:
            reverse = [o[1:] if o.startswith("-") else "-" + o for o in self.ordering]
            rows = list(queryset.filter(self._beyond(values, False)).order_by(*reverse)[: size + 1])
            earlier = len(rows) > size
            rows = list(reversed(rows[:size]))
            return Page(
                rows,
                self._encode(rows[-1]) if rows else None,
                not earlier,
                self._encode(rows[0], "p") if earlier and rows else None,
            )
        queryset = queryset.order_by(*self.ordering)
        if values is not None:
            queryset = queryset.filter(self._after(values))
        rows = list(queryset[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        return Page(
            rows,
            self._encode(rows[-1]) if more and rows else None,
            not cursor,
            self._encode(rows[0], "p") if cursor and rows else None,
        )

    def _encode(self, row: Any, direction: str = "n") -> str:
        values = []
        for name in self.fields:
            value = getattr(row, name)
            if isinstance(value, datetime):
                values.append({"t": value.isoformat()})
            elif isinstance(value, Decimal):
                values.append({"d": str(value)})
            else:
                values.append(value)
        body: dict[str, Any] = {"o": list(self.ordering), "k": values}
        if direction != "n":
            body["d"] = direction
        payload = json.dumps(body, separators=(",", ":"))
        return _fernet().encrypt(payload.encode()).decode()

    def _decode(self, cursor: str) -> list[Any]:
        return self._decode_with_direction(cursor)[1]

    def _decode_with_direction(self, cursor: str) -> tuple[str, list[Any]]:
        try:
            payload = json.loads(_fernet().decrypt(cursor.encode()))
            if payload["o"] != list(self.ordering) or len(payload["k"]) != len(self.fields):
                raise BadCursor(cursor)
            direction = payload.get("d", "n")
            if direction not in ("n", "p"):
                raise BadCursor(cursor)
            values = [_decoded(v) for v in payload["k"]]
            return direction, values
        except (
            InvalidToken,
            ValueError,
            KeyError,
            TypeError,
            UnicodeError,
            AttributeError,
            InvalidOperation,
        ):
            raise BadCursor(cursor) from None


@dataclass
class Listing:
    """One page of a sortable list, with what its template needs: the total, the order, the page size and
    the list's query without its cursor (what the column headers, the page-size form and the pager keep)."""

    page: Page
    total: int
    sort: str
    size: int
    sizes: list[int]
    query: str
    kept: list[tuple[str, str]]
    invalid: bool


class SortedList:
    """The lists' one mechanism for sorting, page size, totals and previous/next: `sorts` maps the URL's
    `sort` to a keyset ordering (its last field unique). An unknown sort or size, or a cursor this list did
    not issue, gives an empty page and `invalid` (the view answers 400), never a 500."""

    SIZES = (25, 50, 100)

    def __init__(
        self,
        sorts: dict[str, Keyset],
        default: str,
        *,
        count_in_page: bool = False,
        row_fields: tuple[str, ...] = (),
    ) -> None:
        """With `count_in_page` the total comes with the page's rows (Keyset.paginate's `counted`), and a
        separate COUNT runs only when the page has no row to carry it but the list may have some (a cursor
        past the rows there are, or one this list did not issue). With `row_fields` the page's rows are
        named tuples of those fields (the keyset's among them), for a page that shows values only."""
        self.sorts, self.default, self.count_in_page = sorts, default, count_in_page
        self.row_fields = row_fields

    def sizes(self) -> list[int]:
        return sorted({settings.WEB_PAGE_SIZE, *self.SIZES})

    def read(
        self,
        request: Any,
        queryset: QuerySet,
        *,
        keep: tuple[str, ...] = (),
        choices: Mapping[str, Collection[str]] | None = None,
    ) -> Listing:
        """The page of `queryset` the request asks for; `keep` names the list's own filter parameters.
        `choices` maps a field to the values its filter parameter (of the same name) may take: the list is
        filtered on the one given, and a value outside them gives an empty page and `invalid`."""
        choices = choices or {}
        keep = (*keep, *choices)
        filter_invalid = False
        for name, allowed in choices.items():
            wanted = request.GET.get(name) or ""
            if wanted and wanted not in allowed:
                queryset, filter_invalid = queryset.none(), True
            elif wanted:
                queryset = queryset.filter(**{name: wanted})
        sort = request.GET.get("sort") or self.default
        size_text = request.GET.get("size") or str(settings.WEB_PAGE_SIZE)
        sizes = self.sizes()
        invalid = sort not in self.sorts or not size_text.isdigit() or int(size_text) not in sizes
        if invalid:
            sort, size_text, queryset = self.default, str(settings.WEB_PAGE_SIZE), queryset.none()
        invalid = invalid or filter_invalid
        keyset, size = self.sorts[sort], int(size_text)
        cursor = request.GET.get("cursor")
        total = None if self.count_in_page else queryset.count()
        try:
            page = keyset.paginate(queryset, cursor, size, counted=self.count_in_page, fields=self.row_fields)
        except BadCursor:
            page, invalid = keyset.paginate(queryset.none(), None, size, fields=self.row_fields), True
        if total is None:
            if page.results:
                total = getattr(page.results[0], TOTAL)
            elif cursor:
                total = queryset.count()
            else:
                total = 0  # the first page of the list is empty: so is the list
        kept = [(name, request.GET[name]) for name in keep if request.GET.get(name)]
        query = QueryDict(mutable=True)
        for name, value in kept:
            query[name] = value
        if sort != self.default:
            query["sort"] = sort
        if size != settings.WEB_PAGE_SIZE:
            query["size"] = str(size)
        return Listing(page, total, sort, size, sizes, query.urlencode(), kept, invalid)
