"""RFC 6962 / RFC 9162 §2.1 Merkle tree hashing, proofs and their verification: pure functions over bytes.

Leaf hash ``SHA-256(0x00 || leaf bytes)``, node hash ``SHA-256(0x01 || left || right)``; the tree of n leaves
splits at the largest power of two smaller than n. Proofs are lists of 32-byte hashes, bottom to top, exactly
as RFC 9162 §2.1.3 (inclusion) and §2.1.4 (consistency) define them, so that Go's golang.org/x/mod/sumdb/tlog
(``CheckRecord``, ``CheckTree``) and any other RFC 6962 verifier accept them.

Generating a proof needs the hashes of complete, aligned subtrees only: ``subtree(level, index)`` is the hash
of leaves ``[index * 2**level, (index + 1) * 2**level)``. The proof functions take that as a callable (the
storage in audit/tiles.py answers it from stored rows; the tests from a list of leaves).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index) -> the hash of that complete subtree.
SubtreeHash = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof does not verify, or was asked for with impossible parameters."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    if len(left) != HASH_SIZE or len(right) != HASH_SIZE:
        raise ProofError("a node's children must be 32-byte hashes")
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than size (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (RFC 9162 §2.1.1), iteratively: O(n) time, O(log n) memory."""
    if not hashes:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []  # (height, hash) of complete subtrees, left to right
    for value in hashes:
        height, current = 0, value
        while stack and stack[-1][0] == height:
            current = node_hash(stack.pop()[1], current)
            height += 1
        stack.append((height, current))
    current = stack.pop()[1]
    while stack:
        current = node_hash(stack.pop()[1], current)
    return current


def tree_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of raw leaf data."""
    return root_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


def range_hash(subtree: SubtreeHash, start: int, end: int) -> bytes:
    """The hash of leaves [start, end) where start is aligned to the subtree the range is the left part of:
    the complete aligned subtrees that make it up, folded right to left (at most log2 n of them)."""
    if end <= start:
        raise ProofError("empty range")
    parts: list[bytes] = []
    position = start
    while position < end:
        level = 0
        # The biggest aligned complete subtree starting at position that fits in the range.
        while position % (1 << (level + 1)) == 0 and position + (1 << (level + 1)) <= end:
            level += 1
        parts.append(subtree(level, position >> level))
        position += 1 << level
    current = parts.pop()
    while parts:
        current = node_hash(parts.pop(), current)
    return current


def tree_root(subtree: SubtreeHash, size: int) -> bytes:
    return EMPTY_ROOT if size == 0 else range_hash(subtree, 0, size)


def inclusion_proof(subtree: SubtreeHash, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, bottom to top."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(range_hash(subtree, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(subtree, start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(subtree: SubtreeHash, old: int, new: int) -> list[bytes]:
    """PROOF(old, D[new]) of RFC 9162 §2.1.4.1 (SUBPROOF with b = true)."""
    if not 0 <= old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    proof: list[bytes] = []
    start, end, complete = 0, new, True
    m = old
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append(range_hash(subtree, start, end))
            break
        k = _split(n)
        if m <= k:
            proof.append(range_hash(subtree, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(subtree, start, start + k))
            start += k
            m -= k
            complete = False
    proof.reverse()
    return proof


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root the proof leads to from a leaf hash."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    current = leaf
    for value in proof:
        if len(value) != HASH_SIZE:
            raise ProofError("a proof hash is not 32 bytes")
        if sn == 0:
            raise ProofError("the proof is too long")
        if fn & 1 or fn == sn:
            current = node_hash(value, current)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            current = node_hash(current, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is too short")
    return current


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless `proof` shows the leaf hash at `index` in the tree of `size` with `root`."""
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError("the inclusion proof does not lead to the root")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raise ProofError unless the tree of size `new` extends the one of size `old`."""
    if not 0 <= old <= new:
        raise ProofError(f"size {new} is smaller than size {old}")
    if any(len(value) != HASH_SIZE for value in proof):
        raise ProofError("a proof hash is not 32 bytes")
    if old == new:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("the roots of equal sizes differ")
        return
    if old == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("the proof is empty")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node of the path
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for value in path[1:]:
        if sn == 0:
            raise ProofError("the proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(value, fr)
            sr = node_hash(value, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is too short")
    if fr != old_root:
        raise ProofError("the consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("the consistency proof does not lead to the new root")


def list_subtree(leaf_hashes: Sequence[bytes]) -> SubtreeHash:
    """A SubtreeHash over leaf hashes in memory (tests, the offline verifier)."""

    def subtree(level: int, index: int) -> bytes:
        start = index << level
        end = start + (1 << level)
        if end > len(leaf_hashes):
            raise ProofError(f"subtree {level}/{index} is not complete")
        return root_from_leaf_hashes(leaf_hashes[start:end])

    return subtree
