"""Storage of the Merkle tree over the sealed events: per-level hash rows (table audit_auditmerklenode).

Design: one row per complete subtree, ``(level, index, hash)``, the hash of leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes (leaf index = chain
position - 1). A tree of n leaves has fewer than 2n rows. Any RFC 6962 hash a proof needs (an incomplete
subtree on the right edge included) is a fold of at most log2(n) complete subtrees, so an inclusion or
consistency proof costs one indexed query of O(log² n) keys at most, whatever the size of the log. C2SP
tlog-tiles (tiles of 256 hashes, height 8) are served from the same rows: the level-L tile N is the level-8L
rows 256N … 256N + 255.

The sealer calls ``append`` in the transaction that seals the leaves (audit/chain.py), so the tree and the
chain never disagree about what is sealed; ``TreeCheck`` recomputes the stored tree for audit_verify.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from django.db import connection
from django.db.models import Max

from audit import merkle
from audit.models import AuditMerkleNode

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
# Keys per query (SQLite limits a statement's parameters).
_KEYS_PER_QUERY = 400

T = TypeVar("T")


class TreeMissing(Exception):
    """A hash the tree needs is not stored: the tree is behind the chain, or rows were removed."""


def size() -> int:
    """How many leaves the stored tree has."""
    last = AuditMerkleNode.objects.filter(level=0).aggregate(last=Max("index"))["last"]
    return 0 if last is None else last + 1


def _fetch(keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    wanted = sorted(set(keys))
    found: dict[tuple[int, int], bytes] = {}
    table = connection.ops.quote_name(AuditMerkleNode._meta.db_table)
    for start in range(0, len(wanted), _KEYS_PER_QUERY):
        chunk = wanted[start : start + _KEYS_PER_QUERY]
        rows = ", ".join(["(%s, %s)"] * len(chunk))
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT level, "index", hash FROM {table} WHERE (level, "index") IN (VALUES {rows})',  # noqa: S608
                [value for key in chunk for value in key],
            )
            for level, index, value in cursor.fetchall():
                found[(level, index)] = bytes(value)
    return found


def _prefetched(compute: Callable[[merkle.SubtreeHash], T]) -> T:
    """Run a proof function twice: first to learn which subtree hashes it needs, then over them, read in one
    query (a handful for very large logs)."""
    needed: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        needed.add((level, index))
        return b"\x00" * merkle.HASH_SIZE

    compute(record)
    found = _fetch(needed)

    def lookup(level: int, index: int) -> bytes:
        try:
            return found[(level, index)]
        except KeyError:
            raise TreeMissing(f"the tree has no hash at level {level}, index {index}") from None

    return compute(lookup)


def root(tree_size: int) -> bytes:
    return _prefetched(lambda subtree: merkle.tree_root(subtree, tree_size))


def inclusion_proof(index: int, tree_size: int) -> list[bytes]:
    return _prefetched(lambda subtree: merkle.inclusion_proof(subtree, index, tree_size))


def consistency_proof(old: int, new: int) -> list[bytes]:
    return _prefetched(lambda subtree: merkle.consistency_proof(subtree, old, new))


def leaf_hash(index: int) -> bytes | None:
    row = AuditMerkleNode.objects.filter(level=0, index=index).values_list("hash", flat=True).first()
    return None if row is None else bytes(row)


def frontier_keys(tree_size: int) -> list[tuple[int, int]]:
    """The complete subtrees on the right edge of a tree of this size, highest first: what appending needs."""
    return [
        (level, (tree_size >> level) - 1)
        for level in range(tree_size.bit_length() - 1, -1, -1)
        if tree_size >> level & 1
    ]


def _frontier(tree_size: int) -> list[tuple[int, bytes]]:
    keys = frontier_keys(tree_size)
    found = _fetch(keys)
    missing = [key for key in keys if key not in found]
    if missing:
        raise TreeMissing(f"the tree of size {tree_size} has no hash at {missing[0][0]}/{missing[0][1]}")
    return [(level, found[(level, index)]) for level, index in keys]


class _Builder:
    """Appends leaf hashes to a frontier, yielding every complete subtree that forms."""

    def __init__(self, tree_size: int, frontier: list[tuple[int, bytes]]) -> None:
        self.size = tree_size
        self.stack = list(frontier)  # (level, hash), highest first

    def push(self, value: bytes) -> list[tuple[int, int, bytes]]:
        index = self.size
        made = [(0, index, value)]
        level, current = 0, value
        while self.stack and self.stack[-1][0] == level:
            current = merkle.node_hash(self.stack.pop()[1], current)
            level += 1
            made.append((level, index >> level, current))
        self.stack.append((level, current))
        self.size += 1
        return made

    def root(self) -> bytes:
        if not self.stack:
            return merkle.EMPTY_ROOT
        current = self.stack[-1][1]
        for _, value in reversed(self.stack[:-1]):
            current = merkle.node_hash(value, current)
        return current


def append(start: int, leaf_hashes: Sequence[bytes]) -> bytes:
    """Extend the stored tree of `start` leaves by these leaf hashes (inside the caller's transaction);
    returns the new root."""
    builder = _Builder(start, _frontier(start))
    rows: list[AuditMerkleNode] = []
    for value in leaf_hashes:
        rows.extend(
            AuditMerkleNode(level=level, index=index, hash=digest)
            for level, index, digest in builder.push(value)
        )
    AuditMerkleNode.objects.bulk_create(rows, batch_size=2000)
    return builder.root()


def tile(level: int, index: int, width: int) -> bytes | None:
    """The hashes of tile (level, index), `width` of them (C2SP tlog-tiles), or None if not all are stored."""
    first = index * TILE_WIDTH
    values = list(
        AuditMerkleNode.objects.filter(level=level * TILE_HEIGHT, index__gte=first, index__lt=first + width)
        .order_by("index")
        .values_list("hash", flat=True)
    )
    if len(values) != width:
        return None
    return b"".join(bytes(value) for value in values)


class TreeCheck:
    """Recomputes the stored tree while audit_verify streams the chain: every stored node must equal the
    hash recomputed from the events' canonical bytes, and nothing may be stored beyond the chain."""

    def __init__(self, start: int) -> None:
        # Leaves before `start` are in detached months: the stored frontier there is taken as given.
        self.builder = _Builder(start, _frontier(start) if start else [])
        self.pending: dict[tuple[int, int], bytes] = {}
        self.problem = ""

    def leaf(self, canonical: bytes) -> None:
        for level, index, digest in self.builder.push(merkle.leaf_hash(canonical)):
            self.pending[(level, index)] = digest
        if len(self.pending) >= 4000:
            self.flush()

    def root(self) -> bytes:
        return self.builder.root()

    def flush(self) -> None:
        if not self.pending or self.problem:
            self.pending.clear()
            return
        stored = _fetch(self.pending)
        for (level, index), digest in sorted(self.pending.items()):
            if stored.get((level, index)) != digest:
                what = "missing" if (level, index) not in stored else "differs from the events"
                self.problem = f"Merkle tree node {level}/{index} is {what}"
                break
        self.pending.clear()

    def finish(self) -> str:
        self.flush()
        if not self.problem:
            beyond = AuditMerkleNode.objects.filter(level=0, index__gte=self.builder.size).exists()
            if beyond:
                self.problem = (
                    f"the Merkle tree has leaves beyond the chain's {self.builder.size} sealed events"
                )
        return self.problem
