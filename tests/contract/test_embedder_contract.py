"""The embedder contract: fixed-size unit vectors, deterministic, similar texts close together."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from memcube.adapters.hash_embedder import HashEmbedder
from memcube.ports import Embedder

TEXTS = ["alice likes tea", "我喜欢北京", "Alice moved to Lisbon last May", "x"]


def cosine(x: list[float], y: list[float]) -> float:
    return sum(p * q for p, q in zip(x, y, strict=True))


def test_the_same_text_gives_the_same_vector_across_instances(embedder_factory: Callable[[], Embedder]) -> None:
    first, second = embedder_factory(), embedder_factory()
    assert first.model_id == second.model_id
    assert first.embed(TEXTS) == second.embed(TEXTS)


def test_a_batch_gives_the_vectors_of_its_texts_one_by_one(embedder: Embedder) -> None:
    assert embedder.embed(TEXTS) == [embedder.embed([t])[0] for t in TEXTS]
    assert embedder.embed([]) == []


def test_vectors_have_the_dimension_and_unit_length(embedder: Embedder) -> None:
    assert embedder.dimension > 0
    vectors = embedder.embed(TEXTS)
    assert len(vectors) == len(TEXTS)
    for vector in vectors:
        assert len(vector) == embedder.dimension
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("text", ["👍", "?!"])
def test_every_non_empty_text_gets_a_unit_vector(embedder: Embedder, text: str) -> None:
    [vector] = embedder.embed([text])
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-6)


def test_similar_texts_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    a, b, c, d = embedder.embed(
        [
            "Alice moved to Lisbon last May",
            "Last May Alice moved to Lisbon",
            "The invoice is due on Friday",
            "Alice moved to Porto",
        ]
    )
    assert cosine(a, b) > cosine(a, d) > cosine(a, c)
    assert cosine(a, b) > cosine(a, c) + 0.3


def test_hash_embedder_is_stable_across_processes() -> None:
    """Stored vectors must match query vectors computed after a restart (no per-process salt)."""
    script = (
        "import json, sys\nfrom memcube.adapters.hash_embedder import HashEmbedder\n"
        "print(json.dumps(HashEmbedder(64).embed(json.loads(sys.argv[1]))))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(TEXTS)], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == HashEmbedder(64).embed(TEXTS)
