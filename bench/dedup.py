"""Dedup scaling: the cost of one add into a cube that already holds 1k, 10k or 100k items.

Each size is a copy of a seeded cube (`bench.seed`) opened as the embedded default with the
local all-MiniLM-L6-v2 embedder. An add is a typical 10-message conversation (one fast-mode
window), submitted through `AddService` and timed in the worker: `EmbeddedWorker.run_once`
takes the queued message and runs `IngestService` on it (embedding, the organizer's exact and
near-duplicate checks against the cube: LSH candidates from the store, vector neighbours from
the index; the guarded write, the index upsert, the task status). The sizes are interleaved
add by add, in a shuffled order. The time the embedder spends is measured too, so the figure
is given with and without it (embedding costs the same at any size).

Goals: add at 100k / add at 1k < 2; one add at 100k p99 <= 150 ms (issue 20: `add_p99_at_largest_ms`).
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import embedding_threads, interleaved, log, measured, summary
from bench.corpus import generate

ADD_P99_GOAL_MS = 150


class TimedEmbedder:
    """Wraps the embedder and keeps the seconds spent in its last `embed` call."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.last = 0.0

    @property
    def model_id(self) -> str:
        return str(self._inner.model_id)

    @property
    def dimension(self) -> int:
        return int(self._inner.dimension)

    @property
    def max_tokens(self) -> int | None:
        limit: int | None = self._inner.max_tokens
        return limit

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        start = time.perf_counter()
        try:
            vectors: list[list[float]] = self._inner.embed(texts)
            return vectors
        finally:
            self.last = time.perf_counter() - start


def conversations(count: int, seed: int = 5) -> list[dict[str, Any]]:
    """`count` distinct 10-message add bodies (each one fast-mode window)."""
    bodies = []
    for s in generate(count * 3, seed=seed, turns=(10, 10), exact_repeats=0, edited_repeats=0):
        bodies.append(
            {
                "user_id": "alice",
                "session_id": s.session_id,
                "messages": [
                    {"role": m.role, "content": m.content, "chat_time": m.chat_time, "message_id": m.message_id}
                    for m in s.messages
                ],
            }
        )
        if len(bodies) == count:
            break
    return bodies


def open_cube(data_dir: Path, embedder: str) -> tuple[Any, Any, TimedEmbedder]:
    from memcube.settings import Settings
    from memcube_local.embedded import EmbeddedWorker
    from memcube_local.wiring import LocalContainer

    settings = Settings(backend="embedded", data_dir=data_dir, embedder=embedder, workers=0)  # type: ignore[arg-type]  # validated
    base = LocalContainer(settings)
    timed = TimedEmbedder(base.embedder)
    container = LocalContainer(settings, embedder=timed)
    return container, EmbeddedWorker(container), timed


def run(sizes: list[int], adds: int, embedder: str, warmup: int = 2) -> dict[str, Any]:
    from bench.seed import working_copy
    from memcube.domain.model import TaskState
    from memcube_api.schemas.product import AddRequest, to_command

    bodies = conversations(adds + warmup)
    embed_seconds: dict[str, list[float]] = {}
    first: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        cubes = {}
        for size in sizes:
            data_dir = working_copy(size, Path(tmp), embedder)
            cubes[f"{size}"] = open_cube(data_dir, embedder)
        position = dict.fromkeys(cubes, 0)

        def one_add(name: str) -> float:
            container, worker, timed = cubes[name]
            body = bodies[position[name]]
            position[name] += 1
            request = AddRequest.model_validate(body)
            principal = container.authority.acting_for(None, request.user_id, adding=True)
            task_id = container.add.submit(to_command(request), principal).task_id
            start = time.perf_counter()
            if not worker.run_once():
                raise RuntimeError("no queued message")
            elapsed = time.perf_counter() - start
            record = container.tasks.get_task(task_id)
            if record is None or record.status is not TaskState.COMPLETED:
                raise RuntimeError(f"add into the {name}-item cube did not complete: {record}")
            embed_seconds.setdefault(name, []).append(timed.last)
            return elapsed

        contenders = {name: functools.partial(one_add, name) for name in cubes}
        warm = interleaved(contenders, warmup, seed=4)  # the first add of a process opens the cube
        first = {name: round(s[0] * 1000, 1) for name, s in warm.items()}
        embed_seconds.clear()
        log(f"dedup scaling: sizes {sizes} x {adds} adds, interleaved")
        samples = interleaved(contenders, adds, seed=5)
        for container, _worker, _timed in cubes.values():
            container.close()
    stats = {name: summary(s) for name, s in samples.items()}
    without = {
        name: summary([t - e for t, e in zip(samples[name], embed_seconds[name], strict=True)]) for name in samples
    }
    embedding = {name: summary(embed_seconds[name]) for name in samples}
    small, large = str(min(sizes)), str(max(sizes))
    return {
        "sizes": sizes,
        "adds": adds,
        "embedder": embedder,
        "torch_threads": embedding_threads(embedder),
        "first_add_ms": first,
        "add": stats,
        "add_without_embedding": without,
        "embedding": embedding,
        "ratios": {
            f"{large}/{small} add p50": round(stats[large]["p50_ms"] / stats[small]["p50_ms"], 3),
            f"{large}/{small} add without embedding p50": round(without[large]["p50_ms"] / without[small]["p50_ms"], 3),
        },
        "goal": {f"{large}/{small} <": 2},
        "add_p99_at_largest_ms": stats[large]["p99_ms"],
        "add_p99_goal": {f"p99 at {large} <= ms": ADD_P99_GOAL_MS, "met": stats[large]["p99_ms"] <= ADD_P99_GOAL_MS},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--adds", type=int, default=30)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    command = f"python -m bench.dedup --sizes {' '.join(map(str, args.sizes))} --adds {args.adds}"
    return measured("dedup", command, lambda: run(args.sizes, args.adds, args.embedder), keep=not args.no_save)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
