"""The API's JSON renderers: every time in the portal's zone (SPEC §6 answers in China Standard Time).

Serializer fields already render times in the current zone; a view that returns a plain dict (score-run
progress, model cards) hands DRF raw datetimes, which its encoder would write in UTC (`…Z`). This encoder puts
those in the same zone, so that a client sees one offset on every endpoint.

The hot endpoints (records and the audit event list) render with orjson, which writes the same bytes as DRF's
compact, non-ASCII JSON for the shapes they answer (strings, integers, None, booleans, lists, dicts) in a
fraction of the time. Anything it would write differently goes through DRF's encoder instead: a pretty-printed
answer (`; indent=`), a value orjson does not know, a float that Python would write in exponent notation.
"""

from __future__ import annotations

import datetime
from typing import Any

import orjson
from django.utils import timezone
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.utils.encoders import JSONEncoder


class LocalTimeJSONEncoder(JSONEncoder):
    def default(self, obj: Any) -> Any:
        if isinstance(obj, datetime.datetime) and timezone.is_aware(obj):
            obj = timezone.localtime(obj)
        return super().default(obj)


class PortalJSONRenderer(JSONRenderer):
    encoder_class = LocalTimeJSONEncoder


class TlogProofRenderer(BaseRenderer):
    """`?format=tlog-proof` on the access log: the view answers with the receipt files itself; this renderer
    only lets content negotiation accept the format, and renders errors (400, 404) as JSON, like any other."""

    media_type = "application/json"
    format = "tlog-proof"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return data if isinstance(data, bytes) else PortalJSONRenderer().render(data)


class _Different(TypeError):
    """orjson would not write what json.dumps writes for this value."""


_ENCODER = LocalTimeJSONEncoder()
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
# Python's repr switches to exponent notation at 1e16 and below 1e-4; orjson's at other points.
_PLAIN_FLOATS = (1e-4, 1e15)


def _default(obj: Any) -> Any:
    value = _ENCODER.default(obj)
    if isinstance(value, float) and value and not _PLAIN_FLOATS[0] <= abs(value) < _PLAIN_FLOATS[1]:
        raise _Different
    return value


class FastJSONRenderer(PortalJSONRenderer):
    """The same bytes as PortalJSONRenderer, written by orjson."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if data is None:
            return b""
        if accepted_media_type and self.get_indent(accepted_media_type, renderer_context or {}) is not None:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            body = orjson.dumps(data, default=_default, option=_OPTIONS)
        except (orjson.JSONEncodeError, _Different):
            return super().render(data, accepted_media_type, renderer_context)
        if b"\xe2\x80\xa8" in body or b"\xe2\x80\xa9" in body:  # as DRF: a strict JavaScript subset
            body = body.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return body
