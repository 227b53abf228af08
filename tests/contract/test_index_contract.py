"""The search-index and embedder contracts."""

from __future__ import annotations

import math
from typing import Any

from memcube.adapters.hash_embedder import HashEmbedder
from tests.contract.builders import memory


def test_upsert_is_by_id_and_delete_is_idempotent(index: Any) -> None:
    item = memory("m1", "alice likes tea")
    index.upsert([item])
    index.upsert([item])
    index.upsert([memory("m2", "bob likes coffee", cube="cube-b")])
    assert index.ids("cube-a") == {"m1"}
    index.delete(["m1"])
    index.delete(["m1", "never-there"])
    assert index.ids("cube-a") == set()
    assert index.ids("cube-b") == {"m2"}


def test_embedder_is_deterministic_across_instances(embedder: Any) -> None:
    texts = ["alice likes tea", "我喜欢北京"]
    assert embedder.embed(texts) == HashEmbedder(embedder.dimension).embed(texts)


def test_embedder_vectors_are_unit_length_and_sized(embedder: Any) -> None:
    for vector in embedder.embed(["alice likes green tea", "x"]):
        assert len(vector) == embedder.dimension
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-6)


def test_similar_texts_are_closer_than_unrelated_ones(embedder: Any) -> None:
    a, b, c = embedder.embed(
        ["Alice moved to Lisbon last May", "Last May Alice moved to Lisbon", "The invoice is due on Friday"]
    )

    def cos(x: list[float], y: list[float]) -> float:
        return sum(p * q for p, q in zip(x, y, strict=True))

    assert cos(a, b) > cos(a, c) + 0.3
