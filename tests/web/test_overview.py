"""The shareholder's portfolio overview: their landing page, every co-owned segment side by side, small
cells withheld as on the segment page."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEvent
from portal.access import masking
from portal.records import selectors
from portal.records.models import Segment

pytestmark = pytest.mark.postgres


def test_the_shareholder_lands_on_the_overview_of_their_segments(client_for, world):
    shareholder = client_for("shareholder")
    home = shareholder.get("/")
    assert home.status_code == 302 and home["Location"] == "/overview/"
    html = shareholder.get("/overview/").content.decode()
    shown = set(re.findall(r'data-segment="(\d+)"', html))
    expected = {
        str(s.pk) for s in Segment.objects.filter(grants__grantee_organisation__short_name="state-capital-a")
    }
    assert shown and shown == expected
    for pk in shown:
        figures = masking.suppress_figures(selectors.segment_figures(int(pk)))
        link = f'href="/segments/{pk}/" data-segment="{pk}"'
        card = html.split(link)[1].split("</a>")[0]
        if figures["consumers"] is None:
            assert "withheld" in card
        else:
            assert f">{figures['consumers']}<" in card
    assert html.count("<svg") == 4 and "<caption>" in html  # each chart: a wide and a narrow picture
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome) == ("segment.overview", "allowed")
    assert event.grant_id is not None


def test_the_overview_is_not_for_the_operator_s_staff(client_for, world):
    for username in ("auditor", "compliance"):
        assert client_for(username).get("/overview/").status_code == 403
    assert client_for(None).get("/overview/").status_code == 302
