"""Getting checkpoints cosigned by the witnesses of settings.AUDIT_WITNESSES (c2sp.org/tlog-witness): each is
sent the latest checkpoint with a consistency proof from the size it cosigned last, and what it returns is
verified under its key and stored (append-only) to be served with the note. Runs in the audit queue's task
after publishing, with a bounded timeout per witness: a witness that is down or refuses is reported (in
/healthz and on the chain page), never waited for by sealing or by any read.

HTTP with the standard library: one small POST per witness needs no client library.
"""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit import tiles, witness
from audit.models import AuditCheckpoint, AuditCosignature

logger = logging.getLogger(__name__)

_STATUS_KEY = "audit:witness:{}"
_STATUS_SECONDS = 7 * 24 * 3600
_MAX_RESPONSE = 64 * 1024


@dataclass(frozen=True)
class Witness:
    url: str  # the submission prefix
    key: str  # the witness's verifier key
    name: str


def witnesses() -> list[Witness]:
    """The configured witnesses, their keys checked (ImproperlyConfigured on a bad one)."""
    found = []
    for url, key in settings.AUDIT_WITNESSES:
        if not url.startswith(("http://", "https://")):
            raise ImproperlyConfigured(f"AUDIT_WITNESSES: {url!r} is not an http(s) URL")
        try:
            name = witness.parse_cosigner_key(key)[0]
        except witness.CosignatureInvalid as exc:
            raise ImproperlyConfigured(f"AUDIT_WITNESSES: {exc}") from None
        found.append(Witness(url.rstrip("/"), key, name))
    return found


def last_attempt(key: str) -> dict[str, str] | None:
    """What the last submission to this witness came to ({"outcome", "detail", "at"}), if known."""
    value = cache.get(_STATUS_KEY.format(witness.parse_cosigner_key(key)[1].hex()))
    return value if isinstance(value, dict) else None


def _remember(target: Witness, outcome: str, detail: str) -> None:
    key = _STATUS_KEY.format(witness.parse_cosigner_key(target.key)[1].hex())
    cache.set(key, {"outcome": outcome, "detail": detail, "at": timezone.now().isoformat()}, _STATUS_SECONDS)


def _post(url: str, body: bytes) -> tuple[int, str, str]:
    request = urllib.request.Request(  # noqa: S310 (an http(s) URL: witnesses() checks the scheme)
        f"{url}/add-checkpoint", data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.AUDIT_WITNESS_TIMEOUT) as response:  # noqa: S310
            text = response.read(_MAX_RESPONSE).decode()
            return response.status, response.headers.get("Content-Type", ""), text
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read(_MAX_RESPONSE).decode(errors="replace")


def _request(old: int, checkpoint: AuditCheckpoint) -> bytes:
    size = checkpoint.tree_size or 0
    proof = tiles.consistency_proof(old, size) if 0 < old < size else []
    lines = [f"old {old}", *(base64.b64encode(value).decode("ascii") for value in proof)]
    return ("\n".join(lines) + "\n\n" + checkpoint.note).encode("utf-8")


def _cosigned_size(target: Witness) -> int:
    cosigned = AuditCosignature.objects.filter(witness_key=target.key)
    return cosigned.aggregate(size=Max("checkpoint__tree_size"))["size"] or 0


def _submit(target: Witness, checkpoint: AuditCheckpoint) -> str:
    """Ask one witness to cosign; returns "cosigned" or raises _Refused saying why not."""
    size = checkpoint.tree_size or 0
    old = _cosigned_size(target)
    body = witness.note_body(checkpoint.note)
    for _ in range(2):  # a 409 tells the size the witness holds (e.g. after our records were lost): once more
        if old > size:
            raise _Refused("ahead", f"the witness has cosigned size {old}, beyond this checkpoint's {size}")
        try:
            status, content_type, text = _post(target.url, _request(old, checkpoint))
        except (OSError, ValueError) as exc:
            raise _Refused("unreachable", str(exc)[:200]) from None
        if status == 200:
            for line in text.splitlines():
                try:
                    stamp = witness.verify_cosignature(body, line, target.key)
                except witness.CosignatureInvalid:
                    continue
                with transaction.atomic():
                    AuditCosignature.objects.get_or_create(
                        checkpoint=checkpoint,
                        witness_key=target.key,
                        defaults={
                            "signature": line + "\n",
                            "cosigned_at": datetime.fromtimestamp(stamp, UTC),
                        },
                    )
                return "cosigned"
            raise _Refused("invalid", "the witness answered without a valid cosignature of its key")
        if status == 409 and content_type.startswith(witness.SIZE_CONTENT_TYPE):
            held = text.strip()
            if held.isdigit() and int(held) != old:
                old = int(held)
                continue
        raise _Refused("refused", f"HTTP {status}: {text.strip()[:200]}")
    raise _Refused("refused", "the witness keeps answering 409 Conflict")


class _Refused(Exception):
    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


def checkpoint_cosign(*, checkpoint: AuditCheckpoint) -> dict[str, str]:
    """Submit a checkpoint to every configured witness that has not cosigned it; what each came to."""
    results: dict[str, str] = {}
    if not checkpoint.note or not checkpoint.tree_size:
        return results
    done = set(AuditCosignature.objects.filter(checkpoint=checkpoint).values_list("witness_key", flat=True))
    for target in witnesses():
        if target.key in done:
            results[target.name] = "cosigned"
            continue
        try:
            results[target.name] = _submit(target, checkpoint)
            _remember(target, "cosigned", f"size {checkpoint.tree_size}")
        except _Refused as refused:
            logger.warning("witness %s: %s: %s", target.name, refused.outcome, refused.detail)
            results[target.name] = refused.outcome
            _remember(target, refused.outcome, refused.detail)
    return results


def cosignature_lines(checkpoint: AuditCheckpoint) -> str:
    """The stored cosignature lines of a checkpoint, to append to its note (c2sp.org/tlog-cosignature)."""
    return "".join(
        AuditCosignature.objects.filter(checkpoint=checkpoint)
        .order_by("witness_key")
        .values_list("signature", flat=True)
    )
