"""RFC 6962 hashing and proofs against the published test vectors.

The vectors are the Certificate Transparency reference values that transparency-dev/merkle ships in its
`testonly` package (the same values as google/trillian `testonly/compact_merkle_tree.go` and
`merkle/log_verifier_test.go`, from certificate-transparency `cpp/merkletree/merkle_tree_test.cc`).
"""

from __future__ import annotations

import pytest

from audit import merkle

LEAVES = [
    bytes.fromhex(value)
    for value in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(value)
    for value in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _hx(*values: str) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


INCLUSION = [
    (0, 1, []),
    (0, 8, _hx(
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    )),
    (5, 8, _hx(
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    )),
    (2, 3, _hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (1, 5, _hx(
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    )),
]  # fmt: skip
CONSISTENCY = [
    (1, 1, []),
    (1, 8, _hx(
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    )),
    (6, 8, _hx(
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    )),
    (2, 5, _hx(
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    )),
]  # fmt: skip

HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]
SUBTREE = merkle.list_subtree(HASHES)


@pytest.mark.parametrize("size", range(9))
def test_tree_hash_of_the_reference_leaves(size):
    assert merkle.tree_hash(LEAVES[:size]) == ROOTS[size]
    assert merkle.tree_root(merkle.list_subtree(HASHES[:size]), size) == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_the_reference(index, size, proof):
    assert merkle.inclusion_proof(SUBTREE, index, size) == proof
    merkle.verify_inclusion(index, size, HASHES[index], proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_reference(old, new, proof):
    assert merkle.consistency_proof(SUBTREE, old, new) == proof
    merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def test_every_proof_of_every_size_up_to_eight_verifies():
    for size in range(1, 9):
        for index in range(size):
            proof = merkle.inclusion_proof(SUBTREE, index, size)
            merkle.verify_inclusion(index, size, HASHES[index], proof, ROOTS[size])
        for old in range(size + 1):
            proof = merkle.consistency_proof(SUBTREE, old, size)
            merkle.verify_consistency(old, size, ROOTS[old], ROOTS[size], proof)


def test_a_non_power_of_two_tree_of_many_leaves():
    leaves = [f"event {n}".encode() for n in range(1000)]
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    subtree = merkle.list_subtree(hashes)
    for size in (1, 7, 255, 257, 999, 1000):
        root = merkle.tree_hash(leaves[:size])
        assert merkle.tree_root(subtree, size) == root
        for index in {0, size // 3, size - 1}:
            merkle.verify_inclusion(
                index, size, hashes[index], merkle.inclusion_proof(subtree, index, size), root
            )
        for old in (1, size // 2, size - 1):
            old_root = merkle.tree_hash(leaves[:old])
            merkle.verify_consistency(old, size, old_root, root, merkle.consistency_proof(subtree, old, size))


@pytest.mark.parametrize(("index", "size", "proof"), [case for case in INCLUSION if case[2]])
def test_a_wrong_inclusion_proof_is_refused(index, size, proof):
    root, leaf = ROOTS[size], HASHES[index]
    bad = [
        (index + 1, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size, merkle.leaf_hash(b"tampered"), proof, root),
        (index, size, leaf, proof, ROOTS[0]),
        (index, size, leaf, proof[:-1], root),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [ROOTS[0], *proof[1:]], root),
    ]
    for case in bad:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*case)


@pytest.mark.parametrize(("old", "new", "proof"), [case for case in CONSISTENCY if case[2]])
def test_a_wrong_consistency_proof_is_refused(old, new, proof):
    bad = [
        (old, new, ROOTS[new], ROOTS[old], proof),  # swapped roots
        (old, new, ROOTS[old], ROOTS[new - 1], proof),  # another new tree (truncated)
        (old, new, ROOTS[old], ROOTS[new], proof[:-1]),
        (old, new, ROOTS[old], ROOTS[new], [*proof, ROOTS[0]]),
        (old, new, ROOTS[old], ROOTS[new], []),
        (new, old, ROOTS[new], ROOTS[old], proof),
    ]
    for case in bad:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*case)


def test_impossible_proof_requests_are_refused():
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(SUBTREE, 8, 8)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(SUBTREE, 5, 4)
