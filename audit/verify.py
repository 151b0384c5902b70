"""Verifying the audit trail: recompute the hash chain from position 1 (or, once older monthly partitions
were detached, from the oldest retained checkpoint), hold signed checkpoints (kept copies and the stored
ones) against it, and report the pending (not yet sealed) events.

Used by `manage.py audit_verify`, the API and the checkpoint publisher; returns a structured result.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min
from django.utils import timezone

from audit import chain, checkpoints, notes, tiles
from audit.models import AuditCheckpoint, AuditEvent

# Stored checkpoints can number hundreds of thousands: list only this many failures (all are counted).
MAX_LISTED_FAILURES = 100


@dataclass(frozen=True)
class ChainProblem:
    position: int
    reason: str


@dataclass
class CheckpointCheck:
    source: str  # "file kept.json", "stored checkpoint" …
    chain_position: int | None
    ok: bool
    problem: str = ""


@dataclass
class VerifyResult:
    ok: bool
    sealed: int  # links recomputed and found good, from position 1 (or after start_position)
    pending: int
    oldest_pending_seconds: float | None
    pending_warning: bool  # the oldest pending event waited longer than AUDIT_PENDING_WARNING_SECONDS
    head_position: int
    head_hash: str
    first_bad_position: int | None = None
    problem: str = ""
    public_key: str = ""  # the key checkpoints were verified under
    checkpoints: list[CheckpointCheck] = field(default_factory=list)  # kept copies, and failed stored ones
    stored_checkpoints_verified: int = 0
    stored_checkpoints_failed: int = 0
    stored_checkpoints_skipped: int = 0  # kept for the API's shape: every stored checkpoint is now checked
    # Where the recomputation started: position 0 (genesis), or the retained checkpoint after detached months.
    start_position: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetainedStart:
    """Where the chain kept in the database begins.

    `head` is the link before the first retained event: genesis, or (once months were detached) the position
    before the oldest retained one with the hash that event's prev_hash names. `anchor` is the oldest stored
    checkpoint at or after that position: it vouches for the start (its hash must equal that prev_hash when it
    sits exactly there; otherwise the walk must reproduce its hash). `problem` says why it cannot.
    """

    head: chain.Head
    anchor: AuditCheckpoint | None = None
    problem: str = ""


def retained_start() -> RetainedStart:
    first = (
        AuditEvent.objects.filter(chain_position__isnull=False)
        .order_by("chain_position")
        .values_list("chain_position", "prev_hash")
        .first()
    )
    if first is None or first[0] is None or first[0] == 1:
        return RetainedStart(chain.Head(0, chain.GENESIS_HASH))
    position, prev_hash = first[0] - 1, first[1]
    anchor = AuditCheckpoint.objects.filter(chain_position__gte=position).order_by("chain_position").first()
    head = chain.Head(position, prev_hash)
    if anchor is None:
        return RetainedStart(
            head, None, f"the chain kept starts at position {position + 1} and no signed checkpoint covers it"
        )
    if anchor.chain_position == position and anchor.head_hash != prev_hash:
        return RetainedStart(
            head,
            anchor,
            f"the first retained event's prev_hash is not the hash of the checkpoint at position {position}",
        )
    return RetainedStart(head, anchor)


def _walk(
    start: chain.Head,
    until_position: int | None = None,
    visit: Callable[[int, str], None] | None = None,
    tree: tiles.TreeCheck | None = None,
) -> tuple[chain.Head, ChainProblem | None]:
    """Recompute links after `start` in position order; stop at the first bad one.

    Returns the last good link reached and the problem, if any. `visit(position, hash)` sees every good link.
    """
    position, prev = start.position, start.hash
    for link in chain.iter_sealed(after_position=start.position, until_position=until_position):
        expected = position + 1
        if link.position != expected:
            reason = f"gap: position {expected} is missing (the next sealed event is at {link.position})"
            return chain.Head(position, prev), ChainProblem(expected, reason)
        if link.prev_hash != prev:
            reason = f"broken link: event #{link.event_id}'s prev_hash is not the hash of position {position}"
            return chain.Head(position, prev), ChainProblem(expected, reason)
        computed = chain.link_hash(prev, link.canonical)
        if computed != link.hash:
            reason = (
                f"hash mismatch: event #{link.event_id} does not hash to its stored hash "
                "(its fields or subjects differ from what was sealed)"
            )
            return chain.Head(position, prev), ChainProblem(expected, reason)
        if tree is not None:
            tree.leaf(link.canonical)
        if visit is not None:
            visit(expected, computed)
        position, prev = expected, computed
    if until_position is not None and position < until_position:
        missing = ChainProblem(position + 1, f"gap: position {position + 1} is missing")
        return chain.Head(position, prev), missing
    return chain.Head(position, prev), None


def segment_verify(*, start: chain.Head, until_position: int) -> tuple[chain.Head, str | None]:
    """Recompute the links after `start` up to `until_position`: the last good link reached (its recomputed
    hash) and what is wrong first, if anything."""
    reached, problem = _walk(start, until_position)
    return reached, None if problem is None else f"chain position {problem.position}: {problem.reason}"


def _stored_documents(
    up_to_id: int, after: int = 0, batch_size: int = chain.BATCH_SIZE
) -> Iterator[dict[str, Any]]:
    last = after
    while True:
        kept = AuditCheckpoint.objects.filter(id__lte=up_to_id, chain_position__gt=last).order_by(
            "chain_position"
        )
        batch = list(kept[:batch_size])
        if not batch:
            return
        for checkpoint in batch:
            yield checkpoints.checkpoint_document(checkpoint)
        last = batch[-1].chain_position


class _Checkpoints:
    """Checkpoints to hold against the recomputed chain, met in position order while it streams past."""

    def __init__(
        self,
        result: VerifyResult,
        documents: Sequence[tuple[str, Any]],
        stored_up_to_id: int | None,
        start: int = 0,
    ) -> None:
        self.result = result
        self.tree: tiles.TreeCheck | None = None  # the recomputed Merkle tree, at the position visited
        self.kept: list[tuple[int, str, CheckpointCheck]] = []
        for source, document in documents:
            position = document.get("chain_position") if isinstance(document, dict) else None
            check = CheckpointCheck(source, position if isinstance(position, int) else None, ok=False)
            result.checkpoints.append(check)
            try:
                checkpoints.verify_checkpoint(document, result.public_key)
            except checkpoints.CheckpointInvalid as exc:
                check.problem = str(exc)
                continue
            if document["chain_position"] <= start:
                # In a detached month: the database's own signed copy is what it can be held against.
                _before_start(check, document, start)
                continue
            self.kept.append((document["chain_position"], document["head_hash"], check))
        self.kept.sort(key=lambda item: item[0])
        self.kept_index = 0
        self.stored = iter(()) if stored_up_to_id is None else _stored_documents(stored_up_to_id, after=start)
        self.stored_next = self._next_stored()

    def _next_stored(self) -> dict[str, Any] | None:
        for document in self.stored:
            # Signed by another key, badly signed, or with a note that does not verify: a stored checkpoint
            # that vouches for nothing is a failure (only the sealer may write checkpoints), never skipped.
            try:
                checkpoints.verify_stored(document, self.result.public_key)
                self._check_note(document)
            except (checkpoints.CheckpointInvalid, notes.NoteInvalid) as exc:
                self._stored_failed(document["chain_position"], str(exc))
                continue
            return document
        return None

    def _check_note(self, document: dict[str, Any]) -> None:
        note = document.get("note") or ""
        if not note:
            return  # signed before the Merkle tree existed
        # Under the key that signed the checkpoint (verify_stored checked it is trusted).
        key = notes.verifier_key(notes.origin(), base64.b64decode(document["public_key"], validate=True))
        opened = notes.open_note(note, key, expected_origin=notes.origin())
        if opened.size != document["chain_position"]:
            raise notes.NoteInvalid("the note's tree size is not the checkpoint's chain position")

    def _stored_failed(self, position: int, problem: str) -> None:
        self.result.stored_checkpoints_failed += 1
        if self.result.stored_checkpoints_failed <= MAX_LISTED_FAILURES:
            check = CheckpointCheck("stored checkpoint", position, ok=False, problem=problem)
            self.result.checkpoints.append(check)

    def visit(self, position: int, computed: str) -> None:
        while self.kept_index < len(self.kept) and self.kept[self.kept_index][0] == position:
            _, head_hash, check = self.kept[self.kept_index]
            check.ok = head_hash == computed
            if not check.ok:
                check.problem = f"the chain's hash at position {position} differs: history was rewritten"
            self.kept_index += 1
        while self.stored_next is not None and self.stored_next["chain_position"] == position:
            note = self.stored_next.get("note") or ""
            if note and self.tree is not None and self.tree.root() != notes.root_of(note):
                self._stored_failed(
                    position, f"the Merkle tree's root at size {position} differs from its note"
                )
            elif self.stored_next["head_hash"] == computed:
                self.result.stored_checkpoints_verified += 1
            else:
                self._stored_failed(position, f"the chain's hash at position {position} differs")
            self.stored_next = self._next_stored()

    def anchor(self, checkpoint: AuditCheckpoint) -> None:
        """The stored checkpoint right before the retained chain, whose hash its first event names."""
        document = checkpoints.checkpoint_document(checkpoint)
        try:
            checkpoints.verify_stored(document, self.result.public_key)
        except checkpoints.CheckpointInvalid as exc:
            self._stored_failed(checkpoint.chain_position, str(exc))
            return
        self.result.stored_checkpoints_verified += 1

    def finish(self, reached: int, problem: ChainProblem | None) -> None:
        """Checkpoints the walk never reached: beyond the head, or behind a break."""
        reason = (
            f"beyond the head of the chain (position {reached}): signed events are gone"
            if problem is None
            else f"cannot be checked: the chain is broken at position {problem.position}"
        )
        for _, _, check in self.kept[self.kept_index :]:
            check.problem = reason
        if problem is None:
            while self.stored_next is not None:
                self._stored_failed(self.stored_next["chain_position"], reason)
                self.stored_next = self._next_stored()


def _before_start(check: CheckpointCheck, document: dict[str, Any], start: int) -> None:
    stored = AuditCheckpoint.objects.filter(chain_position=document["chain_position"]).first()
    check.ok = stored is not None and stored.head_hash == document["head_hash"]
    if not check.ok:
        check.problem = (
            f"in a detached month (the chain kept starts after position {start}) and no stored checkpoint "
            "at its position has its hash"
        )


def _duplicate_position(after: int, until: int) -> int | None:
    """The first chain position held by more than one event (each partition enforces uniqueness for its own
    rows only), or None; counted first, as a duplicate shows as more events than positions."""
    sealed = AuditEvent.objects.filter(chain_position__gt=after, chain_position__lte=until)
    if sealed.count() <= until - after:
        return None
    twice = (
        sealed.values("chain_position")
        .annotate(events=Count("id"))
        .filter(events__gt=1)
        .order_by("chain_position")
        .values_list("chain_position", flat=True)
        .first()
    )
    return twice


def chain_verify(
    *,
    documents: Sequence[tuple[str, Any]] = (),
    public_key: str | None = None,
    stored_checkpoints: bool = True,
) -> VerifyResult:
    """Recompute the whole chain and check checkpoints against it.

    `documents` are kept checkpoint documents, each with a label naming where it came from. Their signatures
    are checked under `public_key` (base64 raw Ed25519), by default the published key of this installation.
    """
    result = VerifyResult(
        ok=False,
        sealed=0,
        pending=0,
        oldest_pending_seconds=None,
        pending_warning=False,
        head_position=0,
        head_hash=chain.GENESIS_HASH,
        public_key=public_key or checkpoints.public_key(),
    )
    # What is verified is fixed at the start, so that sealing and publishing carrying on meanwhile cannot make
    # a checkpoint signed during the run look as if it were beyond the head. Checkpoints first: any that
    # exists now was signed at a position the head has reached by the time it is read.
    stored_up_to_id = None
    if stored_checkpoints:
        stored_up_to_id = AuditCheckpoint.objects.aggregate(last=Max("id"))["last"] or 0
    head_at_start = chain.head().position
    start = retained_start()
    result.start_position = start.head.position
    kept = _Checkpoints(result, documents, stored_up_to_id, start=start.head.position)
    if start.anchor is not None and start.anchor.chain_position == start.head.position and not start.problem:
        kept.anchor(start.anchor)
    problem: ChainProblem | None
    if start.problem:
        reached, problem = start.head, ChainProblem(start.head.position + 1, start.problem)
    else:
        try:
            tree: tiles.TreeCheck | None = tiles.TreeCheck(start.head.position)
        except tiles.TreeMissing as exc:
            tree, tree_problem = None, str(exc)
        kept.tree = tree
        reached, problem = _walk(start.head, until_position=head_at_start, visit=kept.visit, tree=tree)
        if tree is not None:
            tree_problem = tree.finish() if problem is None else ""
        if problem is None and tree_problem:
            problem = ChainProblem(reached.position, tree_problem)
        twice = _duplicate_position(start.head.position, reached.position) if problem is None else None
        if twice is not None:
            problem = ChainProblem(twice, f"position {twice} is held by more than one event")
        elif problem is None and start.anchor is not None and start.anchor.chain_position > reached.position:
            problem = ChainProblem(
                reached.position + 1,
                f"the chain kept ends before the checkpoint at {start.anchor.chain_position} that vouches "
                "for its start",
            )
    kept.finish(reached.position, problem)
    result.sealed = reached.position - start.head.position
    result.head_position, result.head_hash = reached.position, reached.hash
    if problem is not None:
        result.first_bad_position, result.problem = problem.position, problem.reason

    # Events sealed during the run are in neither count: they are verified next time.
    pending = AuditEvent.objects.filter(chain_position__isnull=True).aggregate(
        count=Count("id"), oldest=Min("occurred_at")
    )
    result.pending = pending["count"]
    if pending["oldest"] is not None:
        result.oldest_pending_seconds = max(0.0, (timezone.now() - pending["oldest"]).total_seconds())
        result.pending_warning = result.oldest_pending_seconds > settings.AUDIT_PENDING_WARNING_SECONDS
    result.ok = (
        problem is None
        and all(check.ok for check in result.checkpoints)
        and not result.stored_checkpoints_failed
    )
    return result
