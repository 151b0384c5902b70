"""The SHA-256 hash chain: the canonical bytes of an event, sealing committed events into the chain, and
streaming the sealed chain back for verification.

Canonical encoding, versions 1 and 2 (what a verifier outside the operator needs to reproduce a hash):

* The document is a JSON object with exactly these keys: every name in ``EVENT_FIELDS`` (the columns of
  audit_auditevent, foreign keys by their column name ``actor_id``), plus ``"subjects"`` and ``"v"``.
* Version 1, for an event none of whose subjects records a grant (every event sealed before subjects
  carried their grant, and events without subjects): ``"v"`` is the integer 1 and ``"subjects"`` is the
  list of the event's subject public ids, sorted by Unicode code point.
* Version 2, for an event any of whose subjects records a grant: ``"v"`` is 2 and ``"subjects"`` is the list
  of ``[public id, grant id or null]`` pairs, sorted by public id (unique within an event). Adding, changing
  or removing a subject's grant thus changes the bytes, whichever version the event was sealed under.
* Datetimes are UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fraction digits); the
  ``query`` column is its stored JSON value; every other value is the JSON string, integer or null stored.
* Serialised with sorted keys, no whitespace (separators ``,`` and ``:``), non-ASCII characters escaped as
  ``\\uXXXX`` (so the bytes are ASCII), no NaN or infinities.
* ``hash = SHA-256(prev_hash || canonical bytes)``, hex, where ``prev_hash`` is the previous link's hash as
  64 lower-case hex ASCII characters, and ``GENESIS_HASH`` (64 zeros) before position 1.

``chain_position`` and ``sealed_at`` are covered too: they are written once, with the hash, by the sealer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit import merkle, tiles
from audit.models import AuditEvent, AuditSubject

logger = logging.getLogger(__name__)

ENCODING_VERSION = 2  # the newest; version 1 stays in use for events whose subjects record no grant
GENESIS_HASH = "0" * 64
BATCH_SIZE = 2000

# Every column the hash covers. A test holds this list to the model, so a new column cannot go uncovered.
EVENT_FIELDS = (
    "id",
    "occurred_at",
    "actor_id",
    "actor_username",
    "actor_organisation",
    "actor_role",
    "action",
    "outcome",
    "method",
    "path",
    "query",
    "status",
    "request_id",
    "client_ip",
    "user_agent",
    "grant_id",
    "purpose",
    "resource_kind",
    "requested_id",
    "row_count",
    "search_hash",
    "export_sha256",
    "chain_position",
    "sealed_at",
)
# Read with the fields but not inside the canonical bytes: prev_hash is hashed in front of them, hash is
# the result.
LINK_FIELDS = ("prev_hash", "hash")
_COLUMNS = (*EVENT_FIELDS, *LINK_FIELDS)
_ID, _POSITION = _COLUMNS.index("id"), _COLUMNS.index("chain_position")
_OCCURRED = _COLUMNS.index("occurred_at")
_PREV, _HASH = _COLUMNS.index("prev_hash"), _COLUMNS.index("hash")

# PostgreSQL advisory lock keys (64-bit): one sealer and one checkpoint publisher at a time, site-wide.
SEAL_LOCK_KEY = int.from_bytes(hashlib.sha256(b"audit.seal_events").digest()[:8], "big", signed=True)


class SealError(Exception):
    """The chain columns could not be written as computed; the batch was rolled back."""


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Subject = str | tuple[str, int | None]  # a public id, or (public id, the grant it was shown under)


def canonical_bytes(event: Mapping[str, Any], subjects: Iterable[Subject]) -> bytes:
    """The canonical encoding of an event (version 1, or 2 when a subject records its grant): see the
    module docstring."""
    document: dict[str, Any] = {}
    for name in EVENT_FIELDS:
        value = event[name]
        document[name] = format_time(value) if isinstance(value, datetime) else value
    pairs = sorted(
        ((s, None) if isinstance(s, str) else (s[0], s[1]) for s in subjects), key=lambda pair: pair[0]
    )
    if any(grant is not None for _public_id, grant in pairs):
        document["subjects"] = [[public_id, grant] for public_id, grant in pairs]
        document["v"] = 2
    else:
        document["subjects"] = [public_id for public_id, _grant in pairs]
        document["v"] = 1
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return encoded.encode("ascii")


def link_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


@dataclass(frozen=True)
class Head:
    position: int  # 0 before the first event is sealed
    hash: str  # GENESIS_HASH before the first event is sealed


def head() -> Head:
    """The last sealed link. Positions are gap-free, so its position is also the number of sealed events."""
    row = (
        AuditEvent.objects.filter(chain_position__isnull=False)
        .order_by("-chain_position")
        .values_list("chain_position", "hash")
        .first()
    )
    if row is None or row[0] is None:
        return Head(0, GENESIS_HASH)
    return Head(row[0], row[1])


def _chunks(values: Sequence[int], size: int | None) -> Iterator[Sequence[int]]:
    size = size or len(values) or 1
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _subjects_of(rows: Sequence[Sequence[Any]]) -> dict[int, list[Subject]]:
    """The subjects of these event rows. A subject carries its event's time, so bounding it by the rows'
    times lets PostgreSQL read only those months' subject partitions."""
    subjects: dict[int, list[Subject]] = defaultdict(list)
    if not rows:
        return subjects
    times = [row[_OCCURRED] for row in rows]
    around = AuditSubject.objects.filter(occurred_at__gte=min(times), occurred_at__lte=max(times))
    # SQLite limits the number of parameters of one statement.
    for chunk in _chunks([row[_ID] for row in rows], connection.features.max_query_params):
        for event_id, public_id, grant_id in around.filter(event_id__in=chunk).values_list(
            "event_id", "public_id", "grant_id"
        ):
            subjects[event_id].append((public_id, grant_id))
    return subjects


def try_lock(key: int) -> bool:
    """Inside a transaction: whether this process may do work of which only one may run at a time.

    PostgreSQL: a transaction-scoped advisory lock, released at commit or rollback (also if the worker dies).
    SQLite: the IMMEDIATE transaction the settings ask for already holds the database's single write lock.
    """
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
        return bool(cursor.fetchone()[0])


def _write_links(links: list[tuple[int, int, str, str]], sealed_at: datetime) -> int:
    """Fill the chain columns of a batch in one statement (id, position, prev_hash, hash per link)."""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            rows = ", ".join(["(%s, %s, %s, %s)"] * len(links))
            cursor.execute(
                f"UPDATE {table} AS e SET chain_position = v.position::bigint, prev_hash = v.prev_hash, "  # noqa: S608
                f"hash = v.hash, sealed_at = %s FROM (VALUES {rows}) AS v(id, position, prev_hash, hash) "
                "WHERE e.id = v.id::bigint AND e.chain_position IS NULL",
                [sealed_at, *(value for link in links for value in link)],
            )
        else:
            stamp = connection.ops.adapt_datetimefield_value(sealed_at)
            cursor.executemany(
                f"UPDATE {table} SET chain_position = %s, prev_hash = %s, hash = %s, sealed_at = %s "  # noqa: S608
                "WHERE id = %s AND chain_position IS NULL",
                [(position, prev, digest, stamp, event_id) for event_id, position, prev, digest in links],
            )
        return cursor.rowcount


def _seal_batch(batch_size: int) -> int | None:
    """Seal up to batch_size events in one transaction: how many, or None when another sealer is running."""
    with transaction.atomic():
        if not try_lock(SEAL_LOCK_KEY):
            return None
        current = head()
        # Committed events only (the others are invisible here) in id order; ids are not positions: a lower
        # id that commits later is sealed later, after whatever the head is by then.
        rows = list(
            AuditEvent.objects.filter(chain_position__isnull=True)
            .order_by("id")
            .values_list(*_COLUMNS)[:batch_size]
        )
        if not rows:
            return 0
        leaves = _tree_catch_up(current.position)
        subjects = _subjects_of(rows)
        sealed_at = timezone.now()
        position, prev = current.position, current.hash
        links: list[tuple[int, int, str, str]] = []
        for row in rows:
            position += 1
            event = dict(zip(_COLUMNS, row, strict=True))
            event["chain_position"], event["sealed_at"] = position, sealed_at
            canonical = canonical_bytes(event, subjects.get(row[_ID], ()))
            digest = link_hash(prev, canonical)
            links.append((row[_ID], position, prev, digest))
            leaves.append(merkle.leaf_hash(canonical))
            prev = digest
        written = _write_links(links, sealed_at)
        if written != len(links):
            raise SealError(f"sealed {written} of {len(links)} events; the batch was rolled back")
        # The Merkle tree grows in the same transaction: it never vouches for less, or more, than the chain.
        tiles.append(current.position - len(leaves) + len(links), leaves)
        return len(links)


def _tree_catch_up(sealed: int) -> list[bytes]:
    """The leaf hashes of events sealed before the tree existed (an upgrade), to append with the batch."""
    behind = tiles.size()
    if behind > sealed:
        raise SealError(f"the Merkle tree has {behind} leaves but only {sealed} events are sealed")
    leaves: list[bytes] = []
    expected = behind + 1
    for link in iter_sealed(after_position=behind, until_position=sealed):
        if link.position != expected:
            raise SealError(f"cannot extend the Merkle tree: chain position {expected} is not stored")
        leaves.append(merkle.leaf_hash(link.canonical))
        expected += 1
    if expected != sealed + 1:
        raise SealError(f"cannot extend the Merkle tree: chain position {expected} is not stored")
    return leaves


@dataclass(frozen=True)
class SealResult:
    sealed: int
    busy: bool  # another sealer held the lock
    head: Head


def events_seal(*, batch_size: int = BATCH_SIZE, time_budget: float | None = None) -> SealResult:
    """Seal every committed unsealed event into the chain, a batch per transaction (idempotent).

    Stops early when another sealer holds the lock, or when time_budget seconds have passed (the next run
    carries on), so that a backlog never makes one run outlive its time limit.
    """
    deadline = None if time_budget is None else time.monotonic() + time_budget
    sealed, busy = 0, False
    while True:
        count = _seal_batch(batch_size)
        if count is None:
            busy = True
            break
        sealed += count
        if count < batch_size or (deadline is not None and time.monotonic() >= deadline):
            break
    if sealed:
        logger.info("sealed %d audit events", sealed)
    return SealResult(sealed=sealed, busy=busy, head=head())


@dataclass(frozen=True, slots=True)
class SealedLink:
    """A sealed event as stored: its position, stored link hashes and its canonical bytes."""

    position: int
    event_id: int
    prev_hash: str
    hash: str
    canonical: bytes


def iter_sealed(
    *, after_position: int = 0, until_position: int | None = None, batch_size: int = BATCH_SIZE
) -> Iterator[SealedLink]:
    """Stream the sealed chain in position order: two queries per batch (events, then their subjects by
    event id within the events' time range), constant memory whatever the length of the chain."""
    last = after_position
    while True:
        events = AuditEvent.objects.filter(chain_position__gt=last)
        if until_position is not None:
            events = events.filter(chain_position__lte=until_position)
        rows = list(events.order_by("chain_position").values_list(*_COLUMNS)[:batch_size])
        if not rows:
            return
        subjects = _subjects_of(rows)
        for row in rows:
            event = dict(zip(_COLUMNS, row, strict=True))
            yield SealedLink(
                position=row[_POSITION],
                event_id=row[_ID],
                prev_hash=row[_PREV],
                hash=row[_HASH],
                canonical=canonical_bytes(event, subjects.get(row[_ID], ())),
            )
        last = rows[-1][_POSITION]
