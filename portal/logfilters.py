"""Logging filters of the site's one console handler.

A refused request (403, 404, 405 …) is the client's doing and is already an audit event: Django logs it with
the exception's traceback, which for a 4xx says nothing an operator can act on. Those lines keep their message
and status and lose the traceback; server errors (5xx) keep theirs.
"""

from __future__ import annotations

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if record.name.startswith("django.") and isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
