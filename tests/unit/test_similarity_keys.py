"""MinHash LSH keys (`domain/similarity.py`): the numpy signature and the pure-Python one (the
Lambda layer has no numpy) are the same numbers, so every store reads keys written by either;
and the keys themselves never change (stores keep them: a change would hide every near copy
written before it)."""

from __future__ import annotations

import hashlib
import random

import pytest

from memcube.domain import similarity
from memcube.domain.similarity import lsh_keys, shingles

WORDS = [f"w{i}" for i in range(2000)] + list("我们今天去公园散步吧天气很好") + ["héllo", "naïve", "2025", "x1", "Ǆ"]


def _base(text: str) -> list[int]:
    return [int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") for g in shingles(text)]


def test_the_numpy_signature_is_the_pure_python_one() -> None:
    pytest.importorskip("numpy")
    rng = random.Random(3)
    for _ in range(150):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 400)))
        base = _base(text)
        assert similarity._signature_numpy(base) == similarity._signature_python(base)


def test_the_signature_is_exact_at_the_edges_of_64_bit_hashes() -> None:
    pytest.importorskip("numpy")
    edges = [0, 1, 2**61 - 2, 2**61 - 1, 2**61, 2**62 + 5, 2**63, 2**64 - 1]
    assert similarity._signature_numpy(edges) == similarity._signature_python(edges)


def test_keys_are_the_same_with_and_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "user: [2025-06-01T09:00:00Z]: I moved to Lisbon last May and I work remotely for a Berlin startup."
    with_numpy = lsh_keys(text)
    similarity._lsh_keys.cache_clear()
    monkeypatch.setattr(similarity, "numpy_or_none", lambda: None)
    try:
        assert lsh_keys(text) == with_numpy
    finally:
        similarity._lsh_keys.cache_clear()


def test_keys_are_stable_across_versions() -> None:
    """Pinned: the keys stored by every memcube so far for this text."""
    keys = lsh_keys("I moved to Lisbon last May and I work remotely for a Berlin startup.")
    assert len(keys) == similarity.BANDS
    assert keys == PINNED
    assert lsh_keys("") == [] and lsh_keys("...") == []


def test_repeated_calls_answer_from_the_cache_with_a_fresh_list() -> None:
    first = lsh_keys("alice drinks green tea every morning")
    first.append("mutated by a caller")
    assert lsh_keys("alice drinks green tea every morning") == first[:-1]


PINNED = [
    "00154a00057550cfd7", "01bb4ec593d3d8428f", "02220a8c3db2a9f6ff", "03a5e27c1cefcacc17",
    "042603fcad6a8c9fa0", "05480adcd97756bf5a", "06362308c1b1ac2554", "07c51253a9db00a4d6",
    "089446161381a1f5c1", "09bc02c02c621c72d0", "104e67377cf05bf527", "11ef560241bc7114a5",
]  # fmt: skip
"""Computed by the pure-Python implementation before the numpy path existed."""
