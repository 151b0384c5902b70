"""The console log: a refused request is one line (the audit trail has the rest), a server error keeps its
traceback."""

from __future__ import annotations

import io
import logging

import pytest

from portal.logfilters import ClientErrorsWithoutTraceback


def record(status: int) -> logging.LogRecord:
    try:
        raise PermissionError("refused")
    except PermissionError:
        import sys

        exc_info = sys.exc_info()
    entry = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Forbidden: /x/", (), exc_info)
    entry.status_code = status
    return entry


def test_client_errors_lose_their_traceback_and_server_errors_keep_it():
    assert ClientErrorsWithoutTraceback().filter(forbidden := record(403))
    assert forbidden.exc_info is None
    assert ClientErrorsWithoutTraceback().filter(failed := record(500))
    assert failed.exc_info is not None


@pytest.mark.django_db
def test_a_refused_page_logs_one_line_without_a_traceback(client_for):
    handler = logging.getLogger("django").handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        # A shareholder may not start score runs: Django logs the 403 of the web view.
        response = client_for("shareholder").post("/scoring/runs/start/", {"kind": "full"})
    finally:
        handler.setStream(previous)
    assert response.status_code == 403
    logged = stream.getvalue()
    assert "Forbidden" in logged and "/scoring/runs/start/" in logged
    assert "Traceback" not in logged
