"""Search, as MemOS searches: hybrid ranking over the index, items read from the store.

Each candidate the index returns (its top vector and top text matches, confined to the readable
cubes, `activated` items and the filter) is scored

    relativity = VECTOR_WEIGHT * calibrated(cosine) + TEXT_WEIGHT * text / max(text)
                 (+ SESSION_BOOST in the asked session, + TIME_BOOST in the asked period)

`calibrated` maps the embedder's cosine onto 0-1 between what unrelated texts and close
paraphrases score with that model (`CosineScale`): raw cosines mean different things per model
(MiniLM gives a relevant pair 0.3 where other models give 0.8), so one `relativity` threshold
could not serve them all. The scales and weights were fitted on the development half of LoCoMo
(BENCHMARKS.md, "Recall"), so that the default `relativity` of 0.45 keeps the hits that hold
evidence and drops results of questions asked of an unrelated cube.

The request's switches, as MemOS documents them: `mode: fine` (and `mixture`) has the LLM
rewrite the query into a few searches whose candidates join the original's; `rerank` has the
configured rerank model (or the LLM) score the best candidates against the query, its score
becoming their relativity; `search_memory_type` confines the search to one memory type;
`threshold` is the least raw cosine a hit may have; `reference_time` is the "now" that
"yesterday" or "last month" in the query are read against. Whatever could not be done (no
LLM, no rerank model, a model that failed) is said in the answer's `notes`. `internet_search`
is refused: memcube searches memories only.

`dedup` then removes near-copies (`sim`: cosine > 0.92 to a kept hit) or diversifies (`mmr`:
a hit is penalized only for what it repeats of a kept one, cosine above `MMR_FLOOR`). Items are
read back from the store (the system of record), so a hit the index still holds for a deleted
item is dropped, and embeddings are never returned.

Preference and tool memories answer in their own lists, as MemOS's `pref_mem` and `tool_mem`:
the hits (`text_mem`) leave them out unless `search_memory_type` names their type, and
`pref_top_k` / `tool_top_k` rank each kind on its own with the same queries, filter and scoring.
Without an LLM none are extracted, and the notes say so when they were asked for.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from memcube.domain.accel import numpy_or_none
from memcube.domain.commands import SearchQuery
from memcube.domain.errors import DomainError, InvalidRequest
from memcube.domain.filters import And, Cond, Filter, compile_filter, filter_doc
from memcube.domain.model import PREFERENCE_TYPES, TOOL_TYPES, MemoryItem, Principal, utcnow
from memcube.domain.permissions import authorize_read
from memcube.domain.when import Span, parse_time, query_span
from memcube.ports import LLM, Embedder, Hit, MemoryStore, Reranker, SearchIndex, UserDirectory

VECTOR_WEIGHT = 0.6
TEXT_WEIGHT = 0.4
SESSION_BOOST = 0.05
TIME_BOOST = 0.1
SIM_DEDUP = 0.92
MMR_LAMBDA = 0.7
MMR_FLOOR = 0.8
"""MMR counts only the similarity above this cosine as repetition: windows of one conversation
are alike (cosine 0.4-0.7) without repeating each other, and penalizing that cost recall."""
CANDIDATES_PER_RESULT = 4
RERANKED_PER_RESULT = 3
MAX_RERANKED = 50


@dataclass(frozen=True)
class CosineScale:
    """What a cosine means for one embedding model: `unrelated` is what texts about different
    things typically score, `related` what a passage that answers the query typically scores."""

    unrelated: float
    related: float

    def calibrated(self, cosine: float) -> float:
        """0 at `unrelated` and below, 1 at `related`, and above 1 beyond it: strong matches keep
        their order (relativity itself is capped at 1 where it is shown and compared)."""
        return max((cosine - self.unrelated) / (self.related - self.unrelated), 0.0)


COSINE_SCALES = {
    "minilm-l6-v2-384": CosineScale(unrelated=0.0, related=0.5),
}
"""Per model id prefix; fitted on LoCoMo's development half (BENCHMARKS.md, "Recall"): with
MiniLM at 0.0-0.5, relativity 0.45 kept 98% of the top-10 hits that hold evidence and dropped
44% of the top-10 results of questions asked of another conversation's cube (0.1-0.6 dropped
more noise, 77%, but also 9% of the evidence)."""
DEFAULT_SCALE = CosineScale(unrelated=0.0, related=0.5)
"""For a model not measured here: the MiniLM scale, which suits the sentence-embedding family."""


def cosine_scale(model_id: str) -> CosineScale:
    return next((v for k, v in COSINE_SCALES.items() if model_id.startswith(k)), DEFAULT_SCALE)


@dataclass(frozen=True)
class Scored:
    item: MemoryItem
    relativity: float


@dataclass(frozen=True)
class CubeResult:
    cube_id: str
    memories: list[Scored]


@dataclass(frozen=True)
class SearchAnswer:
    """The hits per cube, and what the search could not do as asked (no LLM, no rerank model)."""

    cubes: list[CubeResult]
    notes: list[str] = field(default_factory=list)
    preferences: list[CubeResult] = field(default_factory=list)
    """`PreferenceMemory` hits per cube (`pref_top_k` of them at most); empty when none asked."""
    tools: list[CubeResult] = field(default_factory=list)
    """`ToolTrajectoryMemory` hits per cube (`tool_top_k` at most); empty when none asked."""


SPECIAL_TYPES: tuple[str, ...] = tuple(sorted(PREFERENCE_TYPES | TOOL_TYPES))
"""Memory types that answer in their own lists, not among the hits."""
NO_PREFERENCES_NOTE = (
    "pref_mem: preferences are extracted by the LLM in fine mode, and no LLM is configured "
    "(memcube runs in fast mode), so none were extracted from adds"
)
NO_TOOL_MEMORY_NOTE = (
    "tool_mem: tool calls become tool memories by the LLM in fine mode, and no LLM is configured "
    "(memcube runs in fast mode), so none were made from adds"
)


@dataclass
class _Candidate:
    item: MemoryItem
    cosine: float
    score: float


class SearchService:
    def __init__(
        self,
        memories: MemoryStore,
        index: SearchIndex,
        embedder: Embedder,
        users: UserDirectory,
        *,
        reranker: Reranker | None = None,
        llm: LLM | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._memories = memories
        self._index = index
        self._embedder = embedder
        self._users = users
        self._llm = llm
        self._reranker = reranker
        self._scale = cosine_scale(embedder.model_id)
        self._now = now

    def search(self, q: SearchQuery, principal: Principal) -> SearchAnswer:
        for cube in q.cube_ids:
            authorize_read(principal, cube, self._users)
        flt = _filter(q)
        if not q.query.strip():
            raise InvalidRequest("query: must contain text")
        notes: list[str] = []
        searches = [(query, self._embedder.embed([query])[0]) for query in self._queries(q, notes)]
        cubes = self._ranked(q, flt, searches, notes)
        preferences = self._of_kind(q, PREFERENCE_TYPES, q.pref_top_k, searches, notes)
        tools = self._of_kind(q, TOOL_TYPES, q.tool_top_k, searches, notes)
        if self._llm is None and q.pref_top_k and not any(r.memories for r in preferences):
            notes.append(NO_PREFERENCES_NOTE)
        if self._llm is None and q.tool_top_k and not any(r.memories for r in tools):
            notes.append(NO_TOOL_MEMORY_NOTE)
        return SearchAnswer(cubes, list(dict.fromkeys(notes)), preferences, tools)

    def _ranked(
        self,
        q: SearchQuery,
        flt: Filter | None,
        searches: list[tuple[str, list[float]]],
        notes: list[str],
        *,
        rerank_none: bool = True,
    ) -> list[CubeResult]:
        ranked = self._candidates(q, flt, searches)
        if q.threshold is not None:
            ranked = [c for c in ranked if c.cosine >= q.threshold]
        ranked = self._reranked(q, ranked, notes) if q.rerank and (ranked or rerank_none) else ranked
        scored = _deduped(q, [Scored(c.item, round(min(c.score, 1.0), 4)) for c in ranked if c.score >= q.relativity])
        return [CubeResult(c, [s for s in scored if s.item.metadata.cube_id == c]) for c in q.cube_ids]

    def _of_kind(
        self,
        q: SearchQuery,
        memory_types: frozenset[str],
        k: int,
        searches: list[tuple[str, list[float]]],
        notes: list[str],
    ) -> list[CubeResult]:
        """The best `k` memories of one special kind (preferences; tool calls and schemas), ranked
        as the hits are, under the request's filter; none when `k` is 0."""
        if k <= 0:
            return []
        flt = compile_filter(q.filter)
        kind = Cond("memory_type", "in", tuple(sorted(memory_types)))
        scoped = kind if flt is None else And((flt, kind))
        # rerank_none=False: no rerank model call when the kind has no candidates
        return self._ranked(replace(q, top_k=k), scoped, searches, notes, rerank_none=False)

    def _candidates(
        self, q: SearchQuery, flt: Filter | None, searches: list[tuple[str, list[float]]]
    ) -> list[_Candidate]:
        """Every query's hits (the best score of each item), best first."""
        period = query_span(q.query, parse_time(q.reference_time) or self._now())
        found: dict[str, _Candidate] = {}
        live_at = None if q.show_expired else int(self._now().timestamp())
        for query, vector in searches:
            hits = self._index.search(q.cube_ids, query, vector, flt, q.top_k * CANDIDATES_PER_RESULT, live_at=live_at)
            for candidate in self._score(hits, q, vector, period, live_at):
                known = found.get(candidate.item.id)
                if known is None or candidate.score > known.score:
                    found[candidate.item.id] = candidate
        return sorted(found.values(), key=lambda c: (-c.score, c.item.id))

    def _queries(self, req: SearchQuery, notes: list[str]) -> list[str]:
        """The query, and in fine or mixture mode the LLM's rewrites of it."""
        if req.mode == "fast":
            return [req.query]
        if self._llm is None:
            notes.append(f"mode {req.mode}: no LLM is configured to rewrite the query; it was searched as given")
            return [req.query]
        from memcube.domain.llm_search import rewrite_query  # fine mode only: not on the cold start

        try:
            return [req.query, *rewrite_query(self._llm, req.query, req.chat_history or [])]
        except (ValueError, DomainError) as exc:
            notes.append(f"mode {req.mode}: the LLM could not rewrite the query ({exc}); it was searched as given")
            return [req.query]

    def _score(
        self, hits: list[Hit], req: SearchQuery, vector: list[float], period: Span | None, live_at: int | None
    ) -> list[_Candidate]:
        items = _unexpired(self._memories.get_memories([h.memory_id for h in hits]), live_at)
        best_text = max((h.text or 0.0 for h in hits), default=0.0) or 1.0
        live = [h for h in hits if h.memory_id in items and items[h.memory_id].metadata.status == "activated"]
        text_only = [items[h.memory_id].metadata.embedding for h in live if h.cosine is None]
        to_query = iter(_query_cosines(vector, text_only))
        out: list[_Candidate] = []
        for hit in live:  # the store is the truth: an index leftover or a stale status is never returned
            item = items[hit.memory_id]
            cosine = hit.cosine if hit.cosine is not None else next(to_query)
            score = VECTOR_WEIGHT * self._scale.calibrated(cosine) + TEXT_WEIGHT * ((hit.text or 0.0) / best_text)
            if req.session_id and item.metadata.session_id == req.session_id:
                score += SESSION_BOOST
            if period is not None and _during(item, period):
                score += TIME_BOOST
            out.append(_Candidate(item, cosine, score))
        return out

    def _reranked(self, req: SearchQuery, ranked: list[_Candidate], notes: list[str]) -> list[_Candidate]:
        """The best candidates scored again by the rerank model, whose score becomes their
        relativity; the rest keep their order below them."""
        if self._reranker is None:
            notes.append("rerank: no rerank model or LLM is configured; results are in hybrid-score order")
            return ranked
        head = ranked[: min(MAX_RERANKED, req.top_k * RERANKED_PER_RESULT)]
        try:
            scores = self._reranker.rerank(req.query, [c.item.memory for c in head])
        except DomainError as exc:
            notes.append(f"rerank: {exc.message}; results are in hybrid-score order")
            return ranked
        rescored = [_Candidate(c.item, c.cosine, s) for c, s in zip(head, scores, strict=True)]
        rescored.sort(key=lambda c: (-c.score, c.item.id))
        return rescored + ranked[len(head) :]


def _unexpired(items: list[MemoryItem], live_at: int | None) -> dict[str, MemoryItem]:
    """The items by id, without those expired at `live_at` (None: all): the store's expiry
    decides, as its status does, over an index that lags an edit."""
    return {
        i.id: i for i in items if live_at is None or i.metadata.expires_at is None or i.metadata.expires_at > live_at
    }


def _filter(q: SearchQuery) -> Filter | None:
    """The request's filter, confined to the asked memory type; with none asked, to the types
    that answer among the hits (preferences and tool calls have their own lists)."""
    flt = compile_filter(q.filter)
    if q.memory_type is None:
        kind = Cond("memory_type", "nin", SPECIAL_TYPES)
    else:
        kind = Cond("memory_type", "eq", q.memory_type)
    return kind if flt is None else And((flt, kind))


def _deduped(q: SearchQuery, scored: list[Scored]) -> list[Scored]:
    if q.dedup == "sim":
        return _dedup_sim(scored, q.top_k)
    if q.dedup == "mmr":
        return _mmr(scored, q.top_k)
    return scored[: q.top_k]


def _during(item: MemoryItem, period: Span) -> bool:
    meta = item.metadata
    span = parse_time(meta.event_time), parse_time(meta.event_time_end or meta.event_time)
    return span[0] is not None and span[1] is not None and Span(span[0], span[1]).overlaps(period)


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
    highest cosine to a picked item above `MMR_FLOOR`, kept up to date as items are picked: one
    cosine per candidate and pick)."""
    vectors = _Embeddings(scored)
    pool = list(range(len(scored)))
    redundancy = [-math.inf] * len(scored)
    picked: list[int] = []
    while pool and len(picked) < k:

        def gain(i: int) -> float:
            repeated = max(redundancy[i] - MMR_FLOOR, 0.0) / (1 - MMR_FLOOR) if picked else 0.0
            return MMR_LAMBDA * scored[i].relativity - (1 - MMR_LAMBDA) * repeated

        best = max(pool, key=gain)
        picked.append(best)
        pool.remove(best)
        for i in pool:
            redundancy[i] = max(redundancy[i], vectors.cosine(i, best))
    return [scored[i] for i in picked]


__all__ = ["CubeResult", "Filter", "Hit", "Scored", "SearchAnswer", "SearchQuery", "SearchService", "filter_doc"]
