"""Search's de-duplication (`domain/search.py`): MMR keeps each candidate's redundancy up to date
as items are picked instead of recomputing it; it must pick exactly what the textbook loop picks."""

from __future__ import annotations

import math
import random

import pytest

from memcube.domain import search
from memcube.domain.model import MemoryItem, MemoryMetadata
from memcube.domain.search import MMR_FLOOR, MMR_LAMBDA, SIM_DEDUP, Scored, _dedup_sim, _mmr


def _cosine(a: list[float], b: list[float] | None) -> float:
    if not b or len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def textbook_mmr(scored: list[Scored], k: int) -> list[Scored]:
    pool, picked = list(scored), list[Scored]()
    while pool and len(picked) < k:

        def gain(s: Scored) -> float:
            redundancy = max(
                (_cosine(s.item.metadata.embedding or [], p.item.metadata.embedding) for p in picked), default=0.0
            )
            repeated = max(redundancy - MMR_FLOOR, 0.0) / (1 - MMR_FLOOR)  # alike is not repeated
            return MMR_LAMBDA * s.relativity - (1 - MMR_LAMBDA) * repeated

        best = max(pool, key=gain)
        picked.append(best)
        pool.remove(best)
    return picked


def textbook_sim(scored: list[Scored], k: int) -> list[Scored]:
    kept: list[Scored] = []
    for s in scored:
        if all(_cosine(s.item.metadata.embedding or [], o.item.metadata.embedding) <= SIM_DEDUP for o in kept):
            kept.append(s)
        if len(kept) == k:
            break
    return kept


def _candidates(rng: random.Random, n: int) -> list[Scored]:
    topics = [[rng.gauss(0, 1) for _ in range(16)] for _ in range(4)]
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.1:
            vector = None  # an item without an embedding
        elif roll < 0.15:
            vector = [0.0] * 16  # a zero vector
        elif roll < 0.2:
            vector = [1.0] * 8  # another dimension
        else:
            base = rng.choice(topics)
            sign = 1 if rng.random() < 0.7 else -1  # some opposite: negative cosines
            vector = [sign * x + rng.gauss(0, 0.3) for x in base]
        item = MemoryItem(
            id=f"m{i:03d}",
            memory="text",
            metadata=MemoryMetadata(
                user_id="u", session_id="s", cube_id="c", memory_type="UserMemory", key="k", embedding=vector,
                created_at="t", updated_at="t", content_hash=str(i), task_id="t",
            ),
        )  # fmt: skip
        out.append(Scored(item, round(rng.random(), rng.choice([2, 4]))))  # ties in relativity too
    return sorted(out, key=lambda s: (-s.relativity, s.item.id))


def test_mmr_and_sim_pick_exactly_what_the_textbook_loops_pick() -> None:
    rng = random.Random(5)
    for _ in range(120):
        scored = _candidates(rng, rng.randint(0, 60))
        k = rng.randint(1, 12)
        assert [s.item.id for s in _mmr(scored, k)] == [s.item.id for s in textbook_mmr(scored, k)]
        assert [s.item.id for s in _dedup_sim(scored, k)] == [s.item.id for s in textbook_sim(scored, k)]


def test_without_numpy_the_picks_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    cases = [(_candidates(rng, rng.randint(0, 60)), rng.randint(1, 12)) for _ in range(40)]
    with_numpy = [([s.item.id for s in _mmr(c, k)], [s.item.id for s in _dedup_sim(c, k)]) for c, k in cases]
    monkeypatch.setattr(search, "numpy_or_none", lambda: None)
    without = [([s.item.id for s in _mmr(c, k)], [s.item.id for s in _dedup_sim(c, k)]) for c, k in cases]
    assert without == with_numpy


def test_query_cosines_match_the_plain_formula_with_and_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    query = [0.3, -0.2, 0.9]
    vectors: list[list[float] | None] = [[0.3, -0.2, 0.9], [1.0, 0.0, 0.0], None, [0.0, 0.0, 0.0], [1.0, 2.0]]
    expected = [_cosine(query, v) for v in vectors]
    assert search._query_cosines(query, vectors) == pytest.approx(expected, abs=1e-12)
    monkeypatch.setattr(search, "numpy_or_none", lambda: None)
    assert search._query_cosines(query, vectors) == pytest.approx(expected, abs=1e-12)
