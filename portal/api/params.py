"""Query parameters: parsed strictly, and every refusal is a 400 that names the parameter."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

MAX_SEARCH_LENGTH = 64
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)
ID_PATTERN = re.compile(r"[0-9]{1,18}")


def is_id(value: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²', which int() refuses."""
    return ID_PATTERN.fullmatch(value) is not None


def bad(name: str, message: str) -> ValidationError:
    return ValidationError({name: [message]})


def reject_unknown(request: Request, allowed: set[str]) -> None:
    """A misspelt filter would otherwise widen the result silently."""
    unknown = sorted(set(request.query_params) - allowed - {"cursor", "page_size"})
    if unknown:
        raise bad(unknown[0], "Unknown parameter.")


def single(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise bad(name, "Give this parameter once.")
    if "\x00" in values[0]:
        raise bad(name, "NUL characters are not allowed.")
    return values[0]


def moment(request: Request, name: str, *, end_of_day: bool = False) -> datetime | None:
    """A date (YYYY-MM-DD, Shanghai time: the start of the day, or its end for `until`) or an ISO datetime."""
    raw = single(request, name)
    if raw is None:
        return None
    try:
        parsed_dt = parse_datetime(raw)
        if parsed_dt is None:
            day = parse_date(raw)
            if day is None:
                raise ValueError
            parsed_dt = datetime.combine(day, time.max if end_of_day else time.min)
    except ValueError:
        raise bad(name, "Not a date (YYYY-MM-DD) or an ISO 8601 date and time.") from None
    offset = parsed_dt.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        # Python takes any offset under a day; PostgreSQL refuses one beyond ±15:59 (and none is in use).
        raise bad(name, "Out of range: a UTC offset is at most ±15:59.")
    try:
        if timezone.is_naive(parsed_dt):
            parsed_dt = timezone.make_aware(parsed_dt)
        # In UTC: a date at the edge of the calendar cannot be stored, whatever its offset.
        return parsed_dt.astimezone(UTC)
    except (OverflowError, ValueError):
        raise bad(name, "Out of range.") from None


def choice(request: Request, name: str, choices: Any) -> str | None:
    raw = single(request, name)
    if raw is None:
        return None
    if raw not in choices:
        raise bad(name, f"Unknown value; one of: {', '.join(sorted(choices))}.")
    return raw


def integer(request: Request, name: str) -> int | None:
    raw = single(request, name)
    if raw is None:
        return None
    if not is_id(raw):
        raise bad(name, "Not a valid id.")
    return int(raw)


def search_term(request: Request, name: str = "q") -> str | None:
    raw = single(request, name)
    if raw is None:
        return None
    term = raw.strip()
    if not term:
        raise bad(name, "Empty search term.")
    if len(term) > MAX_SEARCH_LENGTH:
        raise bad(name, f"At most {MAX_SEARCH_LENGTH} characters.")
    return term


def period(request: Request) -> tuple[datetime | None, datetime | None]:
    since, until = moment(request, "since"), moment(request, "until", end_of_day=True)
    if since and until and since > until:
        raise bad("until", "Must not come before 'since'.")
    return since, until
