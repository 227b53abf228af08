"""`memcube doctor`'s probe of vector search: what it finds on an index that does it right, on
one whose filter runs after the limit, and on one that refuses the k-NN query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from memcube.domain.doctor import PROBE_PREFIX, probe_vector_search
from memcube.domain.filters import Filter
from memcube.ports import Hit
from tests.doubles import InMemoryIndex


class MisbehavingIndex(InMemoryIndex):
    """An in-memory index whose k-NN search goes wrong the way a real engine can. `cube_filter`
    says where the cube filter runs: "before the limit" (right), "after the limit" (the top
    `limit` over every cube, then other cubes' hits dropped: OpenSearch's post-filter mistake,
    a cube's own hits crowded out by nearer ones elsewhere) or "nowhere" (every cube's hits
    returned). `refusal` is the error the engine raises instead of answering."""

    def __init__(
        self,
        *,
        cube_filter: Literal["before the limit", "after the limit", "nowhere"] = "before the limit",
        refusal: str | None = None,
    ) -> None:
        super().__init__()
        self._cube_filter = cube_filter
        self._refusal = refusal

    def search(
        self,
        cube_ids: Sequence[str],
        text: str,
        vector: Sequence[float],
        flt: Filter | None,
        limit: int,
        *,
        live_at: int | None = None,
    ) -> list[Hit]:
        if self._refusal is not None:
            raise RuntimeError(self._refusal)
        if self._cube_filter == "before the limit":
            return super().search(cube_ids, text, vector, flt, limit, live_at=live_at)
        everyone = {d.metadata.cube_id for d in self._snapshot()}
        hits = super().search(sorted(everyone), text, vector, flt, limit, live_at=live_at)
        return [h for h in hits if h.cube_id in cube_ids] if self._cube_filter == "after the limit" else hits


def verdicts(index: InMemoryIndex) -> dict[str, bool]:
    checks = probe_vector_search(index, model_id="m", dimension=8, settle_seconds=0, sleep=lambda _: None)
    assert not [d for d in index._snapshot() if d.metadata.cube_id.startswith(PROBE_PREFIX)]  # nothing left behind
    return {c.name: c.ok for c in checks}


def test_the_probe_passes_an_index_that_filters_by_cube_before_the_limit() -> None:
    assert verdicts(InMemoryIndex()) == {
        "k-NN query runs": True,
        "cube filter": True,
        "filter before the limit": True,
        "nearest first, cosine": True,
    }


def test_the_probe_finds_a_filter_applied_after_the_limit() -> None:
    found = verdicts(MisbehavingIndex(cube_filter="after the limit"))
    assert found["cube filter"] and not found["filter before the limit"]


def test_the_probe_finds_a_query_that_is_not_confined_to_its_cube() -> None:
    assert not verdicts(MisbehavingIndex(cube_filter="nowhere"))["cube filter"]


def test_the_probe_reports_what_the_engine_answered_when_it_refuses_the_query() -> None:
    [check] = probe_vector_search(
        MisbehavingIndex(refusal="TransportError(400, 'parsing_exception', 'unknown query [knn]')"),
        model_id="m",
        dimension=8,
        settle_seconds=0,
    )
    assert not check.ok and "unknown query [knn]" in check.detail
