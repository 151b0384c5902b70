"""Template filters and chart tags of the web pages: amounts in CNY, names in the page's language, and the
server-rendered SVG charts."""

from __future__ import annotations

import functools
from decimal import Decimal
from html import escape as html_escape
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from portal.access.models import Permission
from portal.records.models import Account, Merchant, Transaction
from portal.records.synthetic import CITY_NAMES_EN, PROVINCE_NAMES_EN
from portal.web import charts

register = template.Library()


def _chinese() -> bool:
    return (get_language() or "").startswith("zh")


@register.filter
def cny(value: Any) -> str:
    """An amount in yuan with thousands separators: ¥12,345.60."""
    if value is None or value == "":
        return ""
    amount = Decimal(value).quantize(Decimal("0.01"))
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"


@register.filter
def percent(value: Any, digits: int = 1) -> str:
    if value is None:
        return ""
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def local_name(obj: Any) -> str:
    """A segment's or organisation's name in the page's language."""
    if obj is None:
        return ""
    chinese = getattr(obj, "name_zh", "")
    return chinese if _chinese() and chinese else str(getattr(obj, "name", obj))


@register.filter
def place(value: str) -> str:
    """A province or city (stored in Chinese) in the page's language."""
    if _chinese():
        return value
    return PROVINCE_NAMES_EN.get(value) or CITY_NAMES_EN.get(value) or value


@register.filter
def reason_text(reason: dict) -> str:
    return reason.get("text_zh") if _chinese() else reason.get("text_en")  # type: ignore[return-value]


@register.filter
def permission_label(codename: str) -> str:
    try:
        return str(Permission(codename).label)
    except ValueError:
        return codename


@register.filter
def permission_labels(codenames: Any) -> str:
    return (
        "、".join(permission_label(c) for c in codenames)
        if _chinese()
        else ", ".join(permission_label(c) for c in codenames)
    )


@register.simple_tag(takes_context=True)
def nav_active(context: dict, names: str) -> SafeString:
    """` class="active" aria-current="page"` on the menu entry of the page's section."""
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    current = getattr(match, "url_name", None) or ""
    if request is not None and request.path.startswith("/accounts/mfa/"):
        current = "mfa"
    if current and current in names.split():
        return mark_safe(' class="active" aria-current="page"')
    return mark_safe("")


@register.simple_tag
def score_histogram_chart(histogram: list[dict]) -> SafeString:
    bars = [charts.Bar(f"{c['from']}–{c['to']}", c["consumers"]) for c in histogram]
    return charts.bar_chart(
        bars,
        label=_("Score distribution"),
        withheld_label=_("withheld (fewer than 10 consumers)"),
        y_title=_("Consumers"),
        x_title=_("Score band"),
    )


@register.simple_tag
def delinquency_chart(rows: list[dict], window: dict | None = None) -> SafeString:
    """Monthly rates; the rate over the whole window (the headline figure) as a dashed reference line, so
    that a chart whose months are all withheld still shows what may be shown."""
    bars = [
        charts.Bar(
            charts.format_month(r["month"]),
            None if r["rate"] is None else r["rate"] * 100,
            f"{r['rate'] * 100:.1f}%" if r["rate"] is not None else "",
        )
        for r in rows
    ]
    reference = None
    if window and window.get("rate") is not None:
        reference = charts.Reference(
            float(window["rate"]) * 100,
            _("Last %(months)s months:") % {"months": window.get("window_months", 12)},
        )
    return charts.bar_chart(
        bars,
        label=_("30+ days delinquency rate by month of due date"),
        withheld_label=_("withheld (fewer than 10 late or on-time consumers)"),
        y_title=_("Delinquency rate (%)"),
        x_title=_("Month of due date"),
        kind="percent",
        reference=reference,
    )


@register.simple_tag
def volume_chart(months: list[str], series: list[tuple[str, list]]) -> SafeString:
    translated = [(_(name), values) for name, values in series]
    return charts.grouped_bar_chart(
        [charts.format_month(m) for m in months],
        translated,
        label=_("Transaction amount by month and product (CNY)"),
        withheld_label=_("withheld (fewer than 10 consumers)"),
        y_title=_("Amount (CNY)"),
        x_title=_("Month"),
        kind="cny",
    )


@register.simple_tag
def score_history_chart(history: list, low: int, high: int) -> SafeString:
    from django.utils import timezone

    points = [(timezone.localtime(s.computed_at).strftime("%Y-%m-%d"), float(s.value)) for s in history]
    return charts.line_chart(
        points,
        label=_("Score history"),
        low=low,
        high=high,
        y_title=_("Score (%(low)s–%(high)s)") % {"low": low, "high": high},
        x_title=_("Date scored"),
    )


@register.filter
def month(value: str) -> str:
    """'2025-11' in English, '2025年11月' in Chinese."""
    return charts.format_month(str(value))


@register.filter
def org_name(recorded: str, names: dict[str, str] | None) -> str:
    """An organisation's name as the trail recorded it, in Chinese where the organisation has one."""
    return (names or {}).get(recorded, recorded) if recorded else ""


@register.simple_tag(takes_context=True)
def sort_header(context: dict, key: str, label: str, css: str = "", anchor: str = "") -> SafeString:
    """A column header that sorts the list by `key` (ascending first, then descending), keeping the list's
    other parameters; `aria-sort` tells a screen reader the current order."""
    from django.http import QueryDict
    from django.utils.html import format_html

    listing = context.get("listing")
    current = listing.sort if listing is not None else context.get("sort", "")
    query = QueryDict(listing.query if listing is not None else context.get("list_query", ""), mutable=True)
    query.pop("sort", None)
    state = "none"
    target = key
    if current == key:
        state, target = "ascending", f"-{key}"
    elif current == f"-{key}":
        state = "descending"
    query["sort"] = target
    arrow = {"ascending": " ▲", "descending": " ▼", "none": ""}[state]
    return format_html(
        '<th scope="col" class="sortable {}" aria-sort="{}"><a href="?{}{}" data-sort="{}">{}{}</a></th>',
        css,
        state,
        query.urlencode(),
        f"#{anchor}" if anchor else "",
        target,
        label,
        arrow,
    )


@register.simple_tag
def segment_delinquency_comparison(rows: list[dict]) -> SafeString:
    bars = [
        charts.Bar(
            local_name(r["segment"]),
            None if r["delinquency"] is None else float(r["delinquency"]) * 100,
            f"{float(r['delinquency']) * 100:.1f}%" if r["delinquency"] is not None else "",
        )
        for r in rows
    ]
    return charts.bar_chart(
        bars,
        label=_("Delinquency rate by segment (30+ days late, last 12 months)"),
        withheld_label=_("withheld (fewer than 10 late or on-time consumers)"),
        y_title=_("Delinquency rate (%)"),
        x_title=_("Segment"),
        kind="percent",
    )


@register.simple_tag
def segment_volume_trend(months: list[str], series: list[tuple[str, list]]) -> SafeString:
    return charts.grouped_bar_chart(
        [charts.format_month(m) for m in months],
        series,
        label=_("Transaction amount by month and segment (CNY)"),
        withheld_label=_("withheld (fewer than 10 consumers)"),
        y_title=_("Amount (CNY)"),
        x_title=_("Month"),
        kind="cny",
    )


@register.inclusion_tag("web/_session_timer.html", takes_context=True)
def session_timer(context: dict) -> dict:
    """The idle-session warning (static/web/session.js): the seconds left come from the server's own count,
    so the page warns when the session really ends, not after a constant of its own."""
    from django.conf import settings

    from portal.accounts.middleware import session_seconds_left

    request: Any = context.get("request")
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    left = session_seconds_left(request.session) if signed_in else None
    return {
        "seconds_left": left,
        "warning_seconds": settings.SESSION_WARNING_SECONDS,
        "csrf_token": context.get("csrf_token"),
        "path": request.get_full_path() if request is not None else "/",
    }


def _labels(model: Any, field: str) -> dict[str, str]:
    """A choice field's labels in the active language, escaped: a model's `get_FOO_display` rebuilds (and
    hashes, translating every label of) the whole choice list on every call."""
    return _labels_in(model, field, get_language())


@functools.lru_cache(maxsize=256)
def _labels_in(model: Any, field: str, language: str | None) -> dict[str, str]:
    # Choice labels are fixed in the code and the catalogues: one map per field and language serves all.
    choices = model._meta.get_field(field).flatchoices
    return {str(value): conditional_escape(str(label)) for value, label in choices}


@register.filter
def choice_label(obj: Any, field: str) -> str:
    """`obj.get_<field>_display()`, from the cached labels of the active language."""
    value = getattr(obj, field)
    return _labels(type(obj), field).get(str(value), conditional_escape(value))


def _escaped(value: Any) -> str:
    """conditional_escape(value) for the rows below, without its lazy-string wrapper for the common case (a
    plain string): Django's escape() is html.escape."""
    if type(value) is str:
        return html_escape(value)
    return conditional_escape(value)


def _day(value: Any) -> str:
    return "" if not value else f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


@register.simple_tag
def transaction_rows(transactions: list[Any]) -> SafeString:
    """The rows of a consumer's transaction table (named rows of the fields in
    portal.web.views.records.TRANSACTION_ROW), as the template loop would write them (same markup,
    escaping and formats: `date:"Y-m-d H:i"` in the current time zone, `cny`, choice labels in the active
    language). In Python because the consumer page renders a page of them per request, and the template
    engine's per-row variable lookups, filters and choice-label translations cost more than the rest of the
    page together."""
    kinds, channels = _labels(Transaction, "kind"), _labels(Transaction, "channel")
    products, categories = _labels(Account, "product"), _labels(Merchant, "category")
    zone = timezone.get_current_timezone()
    rows = []
    for txn in transactions:
        at = txn.occurred_at.astimezone(zone)
        category = txn.merchant__category
        shown_merchant = (
            f'{_escaped(txn.merchant__name)} <span class="legend-note">'
            f"{categories.get(category, _escaped(category))}</span>"
            if txn.merchant_id is not None
            else ""
        )
        product = txn.account__product
        rows.append(
            f"\n      <tr><td>{_day(at)} {at.hour:02d}:{at.minute:02d}</td>"
            f"<td>{kinds.get(txn.kind, _escaped(txn.kind))}</td>"
            f"<td>{products.get(product, _escaped(product))}</td>"
            f'\n      <td class="num">{_escaped(cny(txn.amount))}</td><td>{shown_merchant}</td>'
            f"\n      <td>{channels.get(txn.channel, _escaped(txn.channel))}</td>"
            f'<td>{_day(txn.due_date)}</td><td class="num">'
            f"{'' if txn.days_late is None else txn.days_late}</td></tr>\n    "
        )
    return mark_safe("".join(rows))  # noqa: S308 - every value above is escaped


@register.simple_tag
def access_log_rows(events: list[Any], public_id: str) -> SafeString:
    """The rows of a consumer's access log, as the template loop with its receipt cell
    (web/_receipt_cell.html) would write them, for the reason given at `transaction_rows`: the consumer page
    shows a page of them on every request."""
    from django.urls import reverse

    proofs = _escaped(reverse("api:consumer-access-log", args=[public_id]))
    receipt = _escaped(_("Receipt"))
    leaf = str(_("leaf %(index)s"))
    rows = []
    for event in events:
        at = timezone.localtime(event.occurred_at)
        if event.chain_position:
            index = int(event.chain_position) - 1
            cell = (
                f'<a href="{proofs}?format=tlog-proof&amp;index={index}" download data-leaf="{index}">'
                f"{leaf % {'index': index}}</a>"
            )
        else:
            cell = "—"
        grant = f"#{_escaped(event.shown_grant_id)}" if event.shown_grant_id else ""
        rows.append(
            f"\n      <tr><td>{_day(at)} {at.hour:02d}:{at.minute:02d}:{at.second:02d}</td>"
            f"<td><code>{_escaped(event.actor_username)}</code></td>"
            f'<td class="content">{_escaped(event.actor_organisation)}</td>'
            f"\n      <td><code>{_escaped(event.action)}</code></td><td>{grant}</td>"
            f'<td class="content">{_escaped(event.shown_purpose)}</td>'
            f'\n      \n<td data-label="{receipt}">{cell}</td>\n</tr>\n    '
        )
    return mark_safe("".join(rows))  # noqa: S308 - every value above is escaped


_UNFILTERED_FIELDS: dict[tuple[type, str | None], SafeString] = {}


@register.simple_tag(takes_context=True)
def filter_fields(context: Any, form: Any) -> SafeString:
    """A list's filter form fields, each as web/_field.html writes it. A form given none of its fields (every
    first visit of a page) writes the same fields for everyone in a language: that is rendered once per
    form class and language, since Django's widget templates (a select writes one template per option) cost
    more than the rest of the consumer page's form."""
    template = context.template.engine.get_template("web/_field.html")
    unfiltered = not any(name in form.data for name in form.fields) and not form.errors
    key = (type(form), get_language())
    if unfiltered and key in _UNFILTERED_FIELDS:
        return _UNFILTERED_FIELDS[key]
    with context.push():
        html = []
        for field in form:
            context["field"] = field
            html.append(template.render(context))
    shown = mark_safe("".join(html))  # noqa: S308 - rendered by the autoescaping template
    if unfiltered:
        _UNFILTERED_FIELDS[key] = shown
    return shown
