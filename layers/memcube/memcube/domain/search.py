"""Search (MemOS's `/product/search`): hybrid ranking over the index, items read from the store.

Ranking, for each candidate the index returns (its top vector and top text matches, both already
confined to the readable cubes, `activated` items and the filter):

    relativity = 0.7 * max(cosine, 0) + 0.3 * text / max(text) + 0.05 * (same session)

`relativity` (MemOS's threshold, default 0.45) drops weak hits; `dedup` then removes near-copies
(`sim`: cosine > 0.92 to a kept hit) or diversifies (`mmr`, lambda 0.7). Items are read back
from the store (the system of record), so a hit the index still holds for a deleted item is
dropped, and embeddings are never returned.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memcube.domain import limits
from memcube.domain.accel import numpy_or_none
from memcube.domain.errors import InvalidRequest
from memcube.domain.filters import Filter, compile_filter
from memcube.domain.model import MemoryItem, Principal
from memcube.domain.permissions import UserDirectory, authorize_read
from memcube.domain.requests import Id, check_cube_ids
from memcube.ports import Embedder, Hit, MemoryStore, SearchIndex

VECTOR_WEIGHT = 0.7
TEXT_WEIGHT = 0.3
SESSION_BOOST = 0.05
SIM_DEDUP = 0.92
MMR_LAMBDA = 0.7
CANDIDATES_PER_RESULT = 4


class SearchRequest(BaseModel):
    """MemOS's APISearchRequest (the preference/tool/skill/internet switches are accepted; memcube
    keeps text memories only, so they change nothing)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4096)
    user_id: Id
    readable_cube_ids: list[str] | None = None
    mem_cube_id: Id | None = Field(default=None, json_schema_extra={"deprecated": True})
    mode: Literal["fast", "fine", "mixture"] = "fast"
    session_id: Id | None = None
    top_k: int = Field(default=10, ge=1, le=100)
    relativity: float = Field(default=0.45, ge=0.0, le=1.0)
    dedup: Literal["no", "sim", "mmr"] = "mmr"
    rerank: bool = True
    filter: dict[str, Any] | None = None
    search_memory_type: str = Field(default="All", max_length=64)
    include_preference: bool = True
    pref_top_k: int = Field(default=6, ge=0, le=100)
    search_tool_memory: bool = True
    tool_mem_top_k: int = Field(default=6, ge=0, le=100)
    include_skill_memory: bool = True
    skill_mem_top_k: int = Field(default=3, ge=0, le=100)
    internet_search: bool = False
    threshold: float | None = None
    reference_time: str | None = Field(default=None, max_length=64)
    chat_history: list[dict[str, Any]] | None = Field(default=None, max_length=limits.MAX_MESSAGES)
    neighbor_discovery: bool = False
    source: str | None = Field(default=None, max_length=256)
    context_format: str = Field(default="memory", max_length=32)

    @field_validator("readable_cube_ids")
    @classmethod
    def _cubes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_cube_ids(value)

    def cube_ids(self) -> list[str]:
        return self.readable_cube_ids or ([self.mem_cube_id] if self.mem_cube_id else [self.user_id])


@dataclass(frozen=True)
class Scored:
    item: MemoryItem
    relativity: float


@dataclass(frozen=True)
class CubeResult:
    cube_id: str
    memories: list[Scored]


class SearchService:
    def __init__(self, memories: MemoryStore, index: SearchIndex, embedder: Embedder, users: UserDirectory) -> None:
        self._memories = memories
        self._index = index
        self._embedder = embedder
        self._users = users

    def search(self, req: SearchRequest, principal: Principal) -> list[CubeResult]:
        cubes = req.cube_ids()
        for cube in cubes:
            authorize_read(principal, cube, self._users)
        flt = compile_filter(req.filter)
        if not req.query.strip():
            raise InvalidRequest("query: must contain text")
        [vector] = self._embedder.embed([req.query])
        hits = self._index.search(cubes, req.query, vector, flt, req.top_k * CANDIDATES_PER_RESULT)
        ranked = self._rank(hits, req, vector)
        return [CubeResult(c, [s for s in ranked if s.item.metadata.cube_id == c]) for c in cubes]

    def _rank(self, hits: list[Hit], req: SearchRequest, query_vector: list[float]) -> list[Scored]:
        items = {i.id: i for i in self._memories.get_memories([h.memory_id for h in hits])}
        best_text = max((h.text or 0.0 for h in hits), default=0.0) or 1.0
        live = [h for h in hits if h.memory_id in items and items[h.memory_id].metadata.status == "activated"]
        text_only = [items[h.memory_id].metadata.embedding for h in live if h.cosine is None]
        to_query = iter(_query_cosines(query_vector, text_only))
        scored: list[Scored] = []
        for hit in live:  # the store is the truth: an index leftover or a stale status is never returned
            item = items[hit.memory_id]
            cosine = hit.cosine if hit.cosine is not None else next(to_query)
            score = VECTOR_WEIGHT * max(cosine, 0.0) + TEXT_WEIGHT * ((hit.text or 0.0) / best_text)
            if req.session_id and item.metadata.session_id == req.session_id:
                score += SESSION_BOOST
            if score >= req.relativity:
                scored.append(Scored(item, round(min(score, 1.0), 4)))
        scored.sort(key=lambda s: (-s.relativity, s.item.id))
        if req.dedup == "sim":
            return _dedup_sim(scored, req.top_k)
        if req.dedup == "mmr":
            return _mmr(scored, req.top_k)
        return scored[: req.top_k]


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def _cosine(a: list[float], b: list[float] | None) -> float:
    return _cosine_normed(a, b, _norm(a), _norm(b)) if b else 0.0


def _cosine_normed(a: list[float], b: list[float] | None, na: float, nb: float) -> float:
    """The cosine of `a` and `b` given their norms (0 across dimensions or for a zero vector)."""
    if not b or len(a) != len(b):
        return 0.0
    return sum(map(operator.mul, a, b)) / (na * nb) if na and nb else 0.0


def _query_cosines(query: list[float], vectors: list[list[float] | None]) -> list[float]:
    """`_cosine(query, v)` for each of `vectors` (on numpy where it is installed)."""
    np = numpy_or_none()
    rows = [i for i, v in enumerate(vectors) if v and len(v) == len(query)]
    if np is None or not rows:
        return [_cosine(query, v) for v in vectors]
    q = np.asarray(query, dtype=np.float64)
    m = np.asarray([vectors[i] for i in rows], dtype=np.float64)
    norms = np.linalg.norm(m, axis=1) * np.linalg.norm(q)
    dots = m @ q
    cosines = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0).tolist()
    out = [0.0] * len(vectors)
    for i, cosine in zip(rows, cosines, strict=True):
        out[i] = cosine
    return out


def _similarities(np: Any, vectors: list[list[float]]) -> list[list[float]]:
    """Every pair's `_cosine` at once (0 across dimensions and for empty or zero vectors)."""
    n = len(vectors)
    out = np.zeros((n, n))
    by_dimension: dict[int, list[int]] = {}
    for i, v in enumerate(vectors):
        if v:
            by_dimension.setdefault(len(v), []).append(i)
    for rows in by_dimension.values():
        m = np.asarray([vectors[i] for i in rows], dtype=np.float64)
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        unit = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
        out[np.ix_(rows, rows)] = unit @ unit.T
    result: list[list[float]] = out.tolist()
    return result


class _Embeddings:
    """The candidates' pairwise cosines, each computed once (sim and mmr compare each candidate
    with the ones kept so far, so the same vectors meet many times): all at once on numpy where
    it is installed, otherwise on demand with the norms computed once."""

    def __init__(self, scored: list[Scored]) -> None:
        self._vectors = [s.item.metadata.embedding or [] for s in scored]
        np = numpy_or_none()
        self._all = _similarities(np, self._vectors) if np is not None and self._vectors else None
        self._norms = [] if self._all is not None else [_norm(v) for v in self._vectors]

    def cosine(self, i: int, j: int) -> float:
        """`_cosine(vectors[i], vectors[j])` (to the last bit without numpy)."""
        if self._all is not None:
            return self._all[i][j]
        return _cosine_normed(self._vectors[i], self._vectors[j], self._norms[i], self._norms[j])


def _dedup_sim(scored: list[Scored], k: int) -> list[Scored]:
    vectors = _Embeddings(scored)
    kept: list[int] = []
    for i in range(len(scored)):
        if all(vectors.cosine(i, j) <= SIM_DEDUP for j in kept):
            kept.append(i)
        if len(kept) == k:
            break
    return [scored[i] for i in kept]


def _mmr(scored: list[Scored], k: int) -> list[Scored]:
    """Maximal marginal relevance: relevance, minus redundancy with what is already picked (the
    highest cosine to a picked item, kept up to date as items are picked: one cosine per
    candidate and pick)."""
    vectors = _Embeddings(scored)
    pool = list(range(len(scored)))
    redundancy = [-math.inf] * len(scored)
    picked: list[int] = []
    while pool and len(picked) < k:

        def gain(i: int) -> float:
            return MMR_LAMBDA * scored[i].relativity - (1 - MMR_LAMBDA) * (redundancy[i] if picked else 0.0)

        best = max(pool, key=gain)
        picked.append(best)
        pool.remove(best)
        for i in pool:
            redundancy[i] = max(redundancy[i], vectors.cosine(i, best))
    return [scored[i] for i in picked]


def filter_doc(item: MemoryItem) -> dict[str, Any]:
    """The flat document filters are evaluated against (and that indexes store)."""
    meta = item.metadata
    return {
        "memory_type": meta.memory_type,
        "session_id": meta.session_id,
        "user_id": meta.user_id,
        "key": meta.key,
        "tags": meta.tags,
        "custom_tags": meta.custom_tags,
        "created_at": meta.created_at,
        "updated_at": meta.updated_at,
        "info": meta.info,
    }


__all__ = ["CubeResult", "Filter", "Hit", "Scored", "SearchRequest", "SearchService", "filter_doc"]
