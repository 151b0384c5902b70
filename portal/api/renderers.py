"""The API's JSON renderer: every time in the portal's zone (SPEC §6 answers in China Standard Time).

Serializer fields already render times in the current zone; a view that returns a plain dict (score-run
progress, model cards) hands DRF raw datetimes, which its encoder would write in UTC (`…Z`). This encoder puts
those in the same zone, so that a client sees one offset on every endpoint.
"""

from __future__ import annotations

import datetime
from typing import Any

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
