"""The fairness section of the segment page: tables by province and by age band, small cells withheld,
in both languages."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.utils import translation

from portal.access import masking
from tests.web.conftest import CCF, DELTA


def _section(html: str) -> str:
    start = html.index('id="fairness"')
    return html[start:]


@pytest.fixture
def back_to_english():
    """A Chinese page leaves Chinese active in this thread (LocaleMiddleware activates, nothing deactivates):
    put the default back so later tests render in English."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


def test_shareholder_sees_fairness_tables_with_small_cells_withheld(client_for, world):
    segment = world.segment(DELTA)
    html = client_for("shareholder").get(f"/segments/{segment.pk}/").content.decode()
    section = _section(html)
    assert "By province" in section and "By age band" in section
    figures = masking.segment_fairness(segment.pk)
    for cell in figures["by_province"]:
        if cell["suppressed"]:
            continue
        assert re.search(
            rf'<th scope="row">{cell["name_en"]}</th>\s*<td class="num">{cell["consumers"]}</td>', section
        )
    withheld = [c for c in figures["by_province"] if c["suppressed"]]
    assert withheld and section.count("withheld") >= len(withheld)
    for cell in figures["by_age_band"]:
        assert f'<th scope="row">{cell["key"]}</th>' in section


def test_a_segment_of_small_cells_shows_them_all_withheld(client_for, world):
    section = _section(client_for("regulator").get(f"/segments/{world.segment(CCF).pk}/").content.decode())
    figures = masking.segment_fairness(world.segment(CCF).pk)
    assert all(c["suppressed"] for c in figures["by_province"])
    assert section.count('<span class="badge">withheld</span>') >= len(figures["by_province"])


def test_the_fairness_section_is_translated(client_for, world, back_to_english):
    html = client_for("shareholder", "zh-hans").get(f"/segments/{world.segment(DELTA).pk}/").content.decode()
    section = _section(html)
    assert "按省份" in section and "按年龄段" in section and "违约率" in section
    assert "By province" not in section
