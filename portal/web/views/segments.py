"""Segment review screens (shareholders, and regulators for the segments they hold): figures and charts of a
segment, every cell of fewer than ten consumers withheld. No personal data, masked or not."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from portal.access import masking, policy
from portal.access.models import Permission
from portal.records import selectors
from portal.records.models import Account, Segment
from portal.web import pages


@pages.page("segment_summary", "segment.list")
def segment_list(request: HttpRequest) -> HttpResponse:
    pages.note(request).resource_kind = "segment"
    scope = pages.scope(request)
    segments = list(
        policy.visible_segments(scope, Permission.VIEW_AGGREGATES)
        .annotate(size=Count("memberships"))
        .order_by("name")
    )
    for segment in segments:
        segment.size = masking.suppress(segment.size)
        segment.permissions = sorted(scope.segment_permissions(segment.pk))  # type: ignore[attr-defined]
    return render(request, "web/segment_list.html", {"segments": segments})


def _delinquency(rows: list[dict]) -> list[dict]:
    """Monthly 30+ days delinquency; a month is shown only when both the delinquent and the others number
    at least ten (either count gives away the other)."""
    shown = []
    for row in rows:
        visible = (
            masking.suppress(row["delinquent"]) is not None
            and masking.suppress(row["consumers"] - row["delinquent"]) is not None
        )
        shown.append(
            {
                "month": row["month"],
                "consumers": masking.suppress(row["consumers"]),
                "rate": round(row["delinquent"] / row["consumers"], 4) if visible else None,
            }
        )
    return shown


def _volume_by_product(rows: list[dict]) -> tuple[list[str], list[tuple[str, list]], list[dict]]:
    """Months, one amount series per product, and the table's rows. A cell of fewer than ten consumers is
    withheld, and then enough others of its month that it cannot be worked out from the month's total
    (amounts and counts add up; complementary suppression)."""
    months = sorted({row["month"] for row in rows})
    products = [p for p in Account.Product.values if any(r["product"] == p for r in rows)]
    shown: dict[tuple[str, str], bool] = {}
    for month in months:
        cells = [r for r in rows if r["month"] == month]
        counts = masking.suppress_partition([c["consumers"] for c in cells], total_shown=True)
        for cell, count in zip(cells, counts, strict=True):
            shown[(month, cell["product"])] = count is not None
    by_cell = {(r["month"], r["product"]): r for r in rows}
    series = []
    for product in products:
        values: list = []
        for month in months:
            found = by_cell.get((month, product))
            if found is None:
                values.append(0)
            else:
                values.append(found["amount"] if shown[(month, product)] else None)
        series.append((str(Account.Product(product).label), values))
    # The table: one row per month, one column per product (a month with no activity in a product is empty).
    table = []
    for month in months:
        cells = []
        for product in products:
            found = by_cell.get((month, product))
            if found is None:
                cells.append({"empty": True})
            elif not shown[(month, product)]:
                cells.append({"withheld": True})
            else:
                cells.append({"consumers": found["consumers"], "amount": found["amount"]})
        table.append({"month": month, "cells": cells})
    return months, series, table


@pages.page("segment_summary", "segment.summary")
def segment_detail(request: HttpRequest, segment_id: str) -> HttpResponse:
    note = pages.note(request)
    note.resource_kind, note.requested_id = "segment", segment_id[:100]
    scope = pages.scope(request)
    if not (segment_id.isascii() and segment_id.isdigit() and len(segment_id) <= 18) or (
        Permission.VIEW_AGGREGATES not in scope.segment_permissions(int(segment_id))
    ):
        raise pages.NotFound
    segment = Segment.objects.get(pk=int(segment_id))
    pages.attribute(request, scope.grant_for_segment(segment.pk, Permission.VIEW_AGGREGATES))
    figures = masking.suppress_figures(selectors.segment_figures(segment.pk))
    months, series, volume_table = _volume_by_product(selectors.segment_volume_by_product(segment.pk))
    delinquency = _delinquency(selectors.segment_delinquency_by_month(segment.pk))
    fairness = masking.segment_fairness(segment.pk)
    return render(
        request,
        "web/segment_detail.html",
        {
            "segment": segment,
            "figures": figures,
            "delinquency": delinquency,
            "delinquency_withheld": sum(1 for row in delinquency if row["rate"] is None),
            "months": months,
            "volume_series": series,
            "volume_table": volume_table,
            "volume_products": [name for name, _values in series],
            "small_cell": masking.SMALL_CELL,
            "can_export": Permission.EXPORT_RECORDS in scope.segment_permissions(segment.pk),
            "fairness": fairness,
            "fairness_buckets": [(b["from"], b["to"]) for b in figures["score_histogram"]],
            "fairness_tables": [
                (_("By province"), fairness["by_province"]),
                (_("By age band"), fairness["by_age_band"]),
            ],
        },
    )


@pages.page("segment_summary", "segment.overview")
def overview(request: HttpRequest) -> HttpResponse:
    """A shareholder's portfolio: every segment they may see in aggregate, side by side (size, delinquency,
    twelve months' volume) and month by month. Every figure goes through the same small-cell suppression as
    the segment page; a segment's queries are the segment page's figures (a handful per segment in scope)."""
    note = pages.note(request)
    note.resource_kind = "segment"
    scope = pages.scope(request)
    segments = list(policy.visible_segments(scope, Permission.VIEW_AGGREGATES).order_by("name"))
    rows = []
    months: set[str] = set()
    for segment in segments:
        figures = masking.suppress_figures(selectors.segment_figures(segment.pk))
        monthly = {m["month"]: m for m in figures["monthly_volume"]}
        months.update(monthly)
        amounts = [m["amount"] for m in monthly.values()]
        rows.append(
            {
                "segment": segment,
                "consumers": figures["consumers"],
                "delinquency": figures["delinquency"]["rate"],
                "window_months": figures["delinquency"]["window_months"],
                # A total only when no month of it was withheld: a partial sum would be read as the whole.
                "amount": (
                    sum(Decimal(str(a)) for a in amounts)
                    if amounts and all(a is not None for a in amounts)
                    else None
                ),
                "withheld_months": sum(1 for a in amounts if a is None),
                "monthly": monthly,
            }
        )
    ordered = sorted(months)
    series = [
        (
            str(
                row["segment"].name_zh if pages.chinese() and row["segment"].name_zh else row["segment"].name
            ),
            [row["monthly"][m]["amount"] if m in row["monthly"] else 0 for m in ordered],
        )
        for row in rows
    ]
    pages.attribute(request, policy.grant_for_list(scope, Permission.VIEW_AGGREGATES))
    return render(
        request,
        "web/overview.html",
        {
            "rows": rows,
            "months": ordered,
            "volume_series": series,
            "small_cell": masking.SMALL_CELL,
        },
    )
