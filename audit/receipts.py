"""Receipts of the per-consumer access log: a c2sp.org/tlog-proof file per event, which a regulator checks
offline against the log's verifier key (and its witnesses' keys) with nothing of the operator's::

    c2sp.org/tlog-proof@v1
    extra <base64 of the event's canonical bytes: the leaf>
    index <leaf index = chain position - 1>
    <base64 inclusion proof hashes, one per line>

    <the checkpoint note, with its witness cosignatures>

The leaf travels in the `extra` line (the format's place for "additional data necessary to reconstruct the
record hash"): the verifier hashes it itself, so it is checked, not trusted. Proofs are against the latest
checkpoint; an event sealed after it has no receipt until the next one.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from audit import chain, cosigning, tiles
from audit.models import AuditCheckpoint, AuditEvent

HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"0|[1-9][0-9]{0,18}")


class ProofMalformed(Exception):
    """A tlog-proof file is not in the format."""


@dataclass(frozen=True)
class TlogProof:
    extra: bytes | None
    index: int
    hashes: list[bytes]
    note: str


def encode(proof: TlogProof) -> str:
    lines = [HEADER]
    if proof.extra is not None:
        lines.append(f"extra {base64.b64encode(proof.extra).decode('ascii')}")
    lines.append(f"index {proof.index}")
    lines.extend(base64.b64encode(value).decode("ascii") for value in proof.hashes)
    return "\n".join(lines) + "\n\n" + proof.note


def decode(text: str) -> TlogProof:
    head, separator, note = text.partition("\n\n")
    lines = head.split("\n")
    if not separator or lines[0] != HEADER:
        raise ProofMalformed(
            f"a tlog-proof starts with {HEADER!r} and has a blank line before the checkpoint"
        )
    extra = None
    rest = lines[1:]
    try:
        if rest and rest[0].startswith("extra "):
            extra = base64.b64decode(rest.pop(0)[len("extra ") :], validate=True)
        if not rest or not rest[0].startswith("index ") or not _INDEX.fullmatch(rest[0][len("index ") :]):
            raise ProofMalformed("the index line is 'index <decimal>'")
        index = int(rest.pop(0)[len("index ") :])
        hashes = [base64.b64decode(line, validate=True) for line in rest]
    except (binascii.Error, ValueError):
        raise ProofMalformed("a line is not base64") from None
    if any(len(value) != 32 for value in hashes):
        raise ProofMalformed("a proof line is not a 32-byte hash")
    return TlogProof(extra, index, hashes, note)


def receipt(*, event: AuditEvent, checkpoint: AuditCheckpoint, note: str) -> TlogProof | None:
    """The tlog-proof of a sealed event against a checkpoint (its note as served), or None if the event is
    not in that checkpoint's tree. Three queries: the leaf (event and subjects) and the proof's hashes."""
    size = checkpoint.tree_size or 0
    if event.chain_position is None or event.chain_position > size:
        return None
    index = event.chain_position - 1
    link = next(iter(chain.iter_sealed(after_position=index, until_position=index + 1)), None)
    if link is None or link.event_id != event.pk:
        return None
    return TlogProof(link.canonical, index, tiles.inclusion_proof(index, size), note)


def served_note(checkpoint: AuditCheckpoint) -> str:
    return checkpoint.note + cosigning.cosignature_lines(checkpoint)


def receipts_zip(*, events: Iterable[AuditEvent], checkpoint: AuditCheckpoint) -> tuple[bytes, int]:
    """A zip of one `<leaf index>.tlog-proof` per event in the checkpoint's tree; and how many it holds."""
    note = served_note(checkpoint)
    buffer = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for event in events:
            proof = receipt(event=event, checkpoint=checkpoint, note=note)
            if proof is not None:
                archive.writestr(f"{proof.index}.tlog-proof", encode(proof))
                count += 1
    return buffer.getvalue(), count
