"""`memcube doctor`: checks, against the configured search index itself, what the tests cannot
run here. No OpenSearch engine with the k-NN plugin can be installed on a development machine
(the real-server tier's osmem-server has no vector search), so the k-NN query memcube sends, with
its cube filter, is proven on a real domain by probing it: a few probe documents in two fresh
cubes, one query, and what came back, then the probe documents are deleted again.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memcube.domain.ingest import content_hash
from memcube.domain.model import MemoryItem, MemoryMetadata, iso, utcnow
from memcube.ports import Hit, SearchIndex

PROBE_PREFIX = "memcube-doctor-"
"""Probe cubes are named so; no user or knowledge base can have such an id for long (the probe
erases them at once), and `delete_where` takes them even if the probe dies half-way."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _unit(*parts: float, dimension: int) -> list[float]:
    vector = [*parts, *([0.0] * (dimension - len(parts)))]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def _probe_item(cube_id: str, n: int, text: str, vector: list[float], model: str) -> MemoryItem:
    now = iso(utcnow())
    return MemoryItem(
        id=f"{cube_id}-{n}",
        memory=text,
        metadata=MemoryMetadata(
            user_id=cube_id,
            session_id="doctor",
            cube_id=cube_id,
            memory_type="LongTermMemory",
            key="doctor probe",
            embedding=vector,
            embedding_model=model,
            created_at=now,
            updated_at=now,
            content_hash=content_hash(text),
            task_id="doctor",
        ),
    )


def probe_vector_search(
    index: SearchIndex,
    *,
    model_id: str,
    dimension: int,
    settle_seconds: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Check]:
    """Write probe documents, run the index's own search with a vector and no text, and check:
    the engine runs the k-NN query; it returns only the named cube's documents although another
    cube holds nearer ones (the cube filter is applied before the limit, not after it); the
    nearest comes first with the cosine it has. Leaves nothing behind."""
    if dimension < 2:
        return [Check("vector search", False, f"the embedder's dimension {dimension} is too small to probe")]
    mine, other = f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}", f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}"
    query = _unit(1.0, dimension=dimension)
    near, far = _unit(0.9, 0.1, dimension=dimension), _unit(0.2, 1.0, dimension=dimension)
    probes = [
        _probe_item(mine, 1, "doctor probe near", near, model_id),
        _probe_item(mine, 2, "doctor probe far", far, model_id),
        *(_probe_item(other, n, f"doctor decoy {n}", query, model_id) for n in range(3)),
    ]
    try:
        index.upsert(probes)
        hits = _settled(lambda: index.search([mine], "", query, None, 1), settle_seconds, sleep)
        both = index.search([mine], "", query, None, 2)
    except Exception as exc:  # what the engine answered is the finding
        return [Check("vector search", False, f"the k-NN query failed: {type(exc).__name__}: {exc}")]
    finally:
        for cube in (mine, other):  # a failed clean-up must not hide the finding (the ids are unique)
            with contextlib.suppress(Exception):
                index.delete_where(cube, None)
    return _judge(hits, both, mine, near, query)


def _settled(run: Callable[[], list[Hit]], seconds: float, sleep: Callable[[float], None]) -> list[Hit]:
    """The search's answer once the probe documents are searchable (a serverless collection
    makes writes visible within about a second, with no refresh to wait for)."""
    deadline = time.monotonic() + seconds
    while True:
        hits = [h for h in run() if h.cosine is not None]
        if hits or time.monotonic() >= deadline:
            return hits
        sleep(0.5)


def _judge(hits: Sequence[Hit], both: Sequence[Hit], mine: str, near: list[float], query: list[float]) -> list[Check]:
    vector_hits = [h for h in both if h.cosine is not None]
    expected = sum(a * b for a, b in zip(near, query, strict=True))
    checks = [
        Check(
            "k-NN query runs",
            bool(vector_hits),
            f"{len(vector_hits)} vector hit(s)" if vector_hits else "no hit carried a vector score: no vector search",
        ),
        Check(
            "cube filter",
            all(h.cube_id == mine for h in both),
            "only the named cube's documents came back"
            if all(h.cube_id == mine for h in both)
            else f"documents of other cubes came back: {sorted({h.cube_id for h in both} - {mine})}",
        ),
        Check(
            "filter before the limit",
            len(hits) == 1 and hits[0].cube_id == mine,
            "the named cube's nearest came back although another cube held nearer documents"
            if len(hits) == 1 and hits[0].cube_id == mine
            else f"asked for 1, got {len(hits)}: the filter ran after the limit, so a cube's hits can be crowded out",
        ),
    ]
    if hits:
        top = hits[0]
        right = top.memory_id.endswith("-1") and top.cosine is not None and abs(top.cosine - expected) < 0.02
        checks.append(
            Check(
                "nearest first, cosine",
                right,
                f"{top.memory_id} at cosine {top.cosine:.3f} (expected the near probe at {expected:.3f})",
            )
        )
    return checks
