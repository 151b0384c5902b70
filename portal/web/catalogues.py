"""The message catalogues under LOCALE_PATHS, compiled by a Python tool (polib): a fresh machine needs no GNU
gettext, and the compiled .mo files are committed next to their .po sources."""

from __future__ import annotations

from pathlib import Path

import polib
from django.conf import settings


def sources() -> list[Path]:
    return sorted(p for root in settings.LOCALE_PATHS for p in Path(root).glob("*/LC_MESSAGES/*.po"))


def translations(catalogue: polib._BaseFile) -> dict[tuple[str, str], str | tuple[str, ...]]:
    """(context, msgid) -> msgstr (or the plural forms) of every translated, current entry."""
    found: dict[tuple[str, str], str | tuple[str, ...]] = {}
    for entry in catalogue:
        if entry.obsolete or "fuzzy" in entry.flags:
            continue
        if entry.msgid_plural:
            if all(entry.msgstr_plural.values()):
                found[(entry.msgctxt or "", entry.msgid)] = tuple(
                    entry.msgstr_plural[k] for k in sorted(entry.msgstr_plural)
                )
        elif entry.msgstr:
            found[(entry.msgctxt or "", entry.msgid)] = entry.msgstr
    return found


def compile_catalogue(po_path: Path) -> Path:
    """Write the .mo beside a .po; untranslated and fuzzy entries are left out, as msgfmt does."""
    mo_path = po_path.with_suffix(".mo")
    catalogue = polib.pofile(str(po_path))
    compiled = polib.POFile()
    compiled.metadata = catalogue.metadata
    for entry in catalogue:
        if entry.obsolete or "fuzzy" in entry.flags:
            continue
        if entry.msgstr or (entry.msgid_plural and all(entry.msgstr_plural.values())):
            compiled.append(entry)
    compiled.save_as_mofile(str(mo_path))
    return mo_path
