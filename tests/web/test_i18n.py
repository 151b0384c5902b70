"""English and Simplified Chinese: the committed catalogue is complete and compiled, every marked string of
the web's templates and code is in it, and the language switch works."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import polib
import pytest

from portal.web import catalogues

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "portal" / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
TRANSLATE_TAG = re.compile(r"""\{%\s*translate\s+(["'])(.*?)\1""")


def test_catalogue_is_there_and_complete():
    assert PO in catalogues.sources()
    catalogue = polib.pofile(str(PO))
    untranslated = [e.msgid for e in catalogue.untranslated_entries()]
    fuzzy = [e.msgid for e in catalogue.fuzzy_entries()]
    assert not untranslated and not fuzzy


def test_committed_mo_matches_the_po():
    """Fails when someone edits the .po and forgets `manage.py compile_catalogues`."""
    for po_path in catalogues.sources():
        mo_path = po_path.with_suffix(".mo")
        assert mo_path.exists(), f"{mo_path} is missing: run manage.py compile_catalogues"
        expected = catalogues.translations(polib.pofile(str(po_path)))
        compiled = catalogues.translations(polib.mofile(str(mo_path)))
        assert compiled == expected, f"{mo_path} is out of date: run manage.py compile_catalogues"


def _template_msgids() -> set[str]:
    found = set()
    for template in (ROOT / "templates").rglob("*.html"):
        found |= {m.group(2) for m in TRANSLATE_TAG.finditer(template.read_text(encoding="utf-8"))}
    return found


def _code_msgids() -> set[str]:
    """String literals passed to _(), gettext, gettext_lazy or gettext_noop in the web's Python code."""
    names = {"_", "gettext", "gettext_lazy", "gettext_noop"}
    found = set()
    for module in (ROOT / "portal" / "web").rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in names
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def test_every_marked_string_is_in_the_catalogue():
    msgids = {entry.msgid for entry in polib.pofile(str(PO))}
    assert _template_msgids() and _code_msgids()
    assert not (_template_msgids() - msgids)
    assert not (_code_msgids() - msgids)


@pytest.mark.postgres
def test_language_switch_and_chinese_pages(client_for, world):
    client = client_for("regulator")
    assert "Dashboard" in client.get("/dashboard/").content.decode()
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/dashboard/"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    html = client.get("/dashboard/").content.decode()
    assert '<html lang="zh-hans">' in html and "工作台" in html and "授权与申请" in html
    consumer = world.consumer_in("chengdu-chongqing-consumer-finance")
    html = client.get(f"/consumers/{consumer.public_id}/").content.decode()
    assert "居民身份证号" in html and "评分历史" in html and "¥" in html
