"""Search latency on the embedded default at 10k and 100k items per cube: p50 and p99.

Each size is a copy of a seeded cube (`bench.seed`) opened as the embedded default with the
local all-MiniLM-L6-v2 embedder. A search is `SearchService.search` with MemOS's defaults
(`top_k` 10, `relativity` 0.45, `dedup` mmr) for a short user question: the query embedding,
the index's vector and text (FTS5 BM25) candidates, the items read back from the store, the
hybrid ranking and MMR. Sizes are interleaved query by query, in a shuffled order. Also timed:
the same with a filter (`info.topic`, one item in eight passes), and the embedding alone.

Goal: p99 < 50 ms at 100k.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import interleaved, log, measured, summary
from bench.corpus import CITIES, FOODS, HOBBIES, PEOPLE, TOOLS
from bench.dedup import open_cube

QUESTIONS = (
    "where did I move to",
    "what did I say about the trip to {city}",
    "my budget for the {city} trip",
    "which {hobby} class did I want",
    "what is my favourite dish",
    "am I allergic to anything",
    "when is my dentist appointment",
    "who is {person}",
    "what are we migrating to at work",
    "did I cook {food} for friends",
    "what pet did we adopt",
    "how far do I run in the morning",
    "what did I say about learning {tool}",
    "when is my daughter's birthday party",
)


def queries(count: int, seed: int = 9) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(QUESTIONS).format(
            city=rng.choice(CITIES),
            hobby=rng.choice(HOBBIES),
            person=rng.choice(PEOPLE),
            food=rng.choice(FOODS),
            tool=rng.choice(TOOLS),
        )
        for _ in range(count)
    ]


def run(sizes: list[int], searches: int, embedder: str, warmup: int = 5) -> dict[str, Any]:
    from bench.seed import working_copy
    from memcube.domain.commands import SearchQuery

    texts = queries(searches + warmup)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        cubes = {f"{size}": open_cube(working_copy(size, Path(tmp), embedder), embedder) for size in sizes}
        position: dict[str, int] = {}
        embed_seconds: dict[str, list[float]] = {}
        hits: dict[str, list[int]] = {}

        def one_search(name: str, flt: dict[str, Any] | None) -> float:
            container, _worker, timed = cubes[name]
            key = f"{name}{'/filtered' if flt else ''}"
            n = position.get(key, 0)
            position[key] = n + 1
            request = SearchQuery(query=texts[n % len(texts)], cube_ids=["alice"], filter=flt, relativity=0.0)
            principal = container.authority.acting_for(None, "alice")
            start = time.perf_counter()
            found = container.searcher.search(request, principal)
            elapsed = time.perf_counter() - start
            embed_seconds.setdefault(key, []).append(timed.last)
            hits.setdefault(key, []).append(sum(len(r.memories) for r in found.cubes))
            return elapsed

        topic = {"info.topic": "travel"}
        contenders = {name: functools.partial(one_search, name, None) for name in cubes}
        contenders |= {f"{name}/filtered": functools.partial(one_search, name, topic) for name in cubes}
        first = {name: round(s[0] * 1000, 1) for name, s in interleaved(contenders, warmup, seed=6).items()}
        embed_seconds.clear()
        hits.clear()
        position.clear()
        log(f"search latency: {list(contenders)} x {searches} searches, interleaved")
        samples = interleaved(contenders, searches, seed=7)
        for container, _worker, _timed in cubes.values():
            container.close()
    for name, s in samples.items():
        results[name] = {
            "search": summary(s),
            "without_embedding": summary([t - e for t, e in zip(s, embed_seconds[name], strict=True)]),
            "embedding": summary(embed_seconds[name]),
            "mean_results": round(sum(hits[name]) / len(hits[name]), 1),
        }
    large = str(max(sizes))
    return {
        "sizes": sizes,
        "searches": searches,
        "embedder": embedder,
        "first_search_ms": first,
        "by_size": results,
        "goal": {f"p99 at {large} < ms": 50},
        "goal_met": results[large]["search"]["p99_ms"] < 50,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    command = f"python -m bench.search --sizes {' '.join(map(str, args.sizes))} --searches {args.searches}"
    return measured("search", command, lambda: run(args.sizes, args.searches, args.embedder), keep=not args.no_save)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
