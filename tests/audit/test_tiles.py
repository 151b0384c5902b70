"""The stored Merkle tree: extended by the sealer in the sealing transaction, recomputed by audit_verify."""

from __future__ import annotations

import pytest
from django.db import connection

from audit import chain, merkle, tiles
from audit.models import AuditMerkleNode
from audit.verify import chain_verify
from tests.audit.conftest import tampering

pytestmark = pytest.mark.django_db


def _canonical() -> list[bytes]:
    return [link.canonical for link in chain.iter_sealed()]


def test_the_sealer_extends_the_tree_with_every_sealed_event(make_event):
    for n in range(5):
        make_event(requested_id=str(n))
    chain.events_seal(batch_size=2)
    for n in range(300):
        make_event(requested_id=f"b{n}")
    chain.events_seal(batch_size=97)
    leaves = _canonical()
    assert tiles.size() == len(leaves) == chain.head().position == 305
    assert tiles.root(305) == merkle.tree_hash(leaves)
    assert tiles.root(5) == merkle.tree_hash(leaves[:5])
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    for index, size in ((0, 1), (4, 5), (256, 257), (304, 305), (100, 300)):
        proof = tiles.inclusion_proof(index, size)
        merkle.verify_inclusion(index, size, hashes[index], proof, merkle.tree_hash(leaves[:size]))
    for old, new in ((1, 305), (5, 305), (256, 300), (257, 305)):
        proof = tiles.consistency_proof(old, new)
        merkle.verify_consistency(
            old, new, merkle.tree_hash(leaves[:old]), merkle.tree_hash(leaves[:new]), proof
        )
    # A level-0 tile is the leaf hashes, concatenated; a partial one is its first W.
    assert tiles.tile(0, 0, 256) == b"".join(hashes[:256])
    assert tiles.tile(0, 1, 49) == b"".join(hashes[256:305])
    assert tiles.tile(0, 1, 50) is None
    assert tiles.tile(1, 0, 1) == tiles.root(256)


def test_a_tree_behind_the_chain_is_caught_up_by_the_next_seal(make_event):
    for _ in range(6):
        make_event()
    chain.events_seal()
    with tampering():
        AuditMerkleNode.objects.all().delete()
    make_event()
    chain.events_seal()
    assert tiles.root(7) == merkle.tree_hash(_canonical())


def test_verify_recomputes_the_stored_tree(make_event):
    for _ in range(9):
        make_event()
    chain.events_seal()
    assert chain_verify().ok
    with tampering():
        table = AuditMerkleNode._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f'UPDATE {table} SET hash = %s WHERE level = 1 AND "index" = 2',  # noqa: S608
                [b"\x07" * 32],
            )
    result = chain_verify()
    assert not result.ok
    assert "Merkle tree node 1/2" in result.problem


def test_verify_fails_on_a_tree_leaf_beyond_the_chain(make_event):
    make_event()
    chain.events_seal()
    with tampering():
        AuditMerkleNode.objects.create(level=0, index=1, hash=b"\x01" * 32)
    result = chain_verify()
    assert not result.ok
    assert "beyond the chain" in result.problem
