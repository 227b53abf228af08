"""Profiles of the hot paths with pyinstrument (installed by `make bench`), as text.

    python -m bench.hotpaths add        # the API Lambda entry, 2000 adds (memory backend)
    python -m bench.hotpaths ingest     # the embedded worker on a 40-session corpus (MiniLM)
    python -m bench.hotpaths dedup      # 20 adds into a cube of 100k items
    python -m bench.hotpaths search     # 40 searches in a cube of 100k items
    python -m bench.hotpaths coldstart  # `python -X importtime` of the API handler, by package

`--size` changes the cube for dedup and search; `--filtered` searches with the search benchmark's
filter (`info.topic`, one item in eight). The worker runs in this thread (pyinstrument
follows one thread), exactly as `EmbeddedWorker.run_once` does in its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


def _profiled(work: Callable[[], None], interval: float = 0.0005) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(interval=interval)
    profiler.start()
    work()
    profiler.stop()
    text: str = profiler.output_text(unicode=False, color=False)
    return text


def add(calls: int = 2000) -> str:
    from bench.add_overhead import add_body, memcube_handlers, quiet_stdout, timed, v2_event

    handler, _ = memcube_handlers()
    once = timed(handler, v2_event(add_body()))
    with quiet_stdout():
        for _ in range(100):
            once()

        def work() -> None:
            for _ in range(calls):
                once()

        return _profiled(work)


def ingest(sessions: int = 40) -> str:
    from bench.corpus import from_jsonl
    from bench.ingest import corpus_file
    from memcube.settings import Settings
    from memcube_api.schemas.product import AddRequest, to_command
    from memcube_local.embedded import EmbeddedWorker
    from memcube_local.wiring import LocalContainer

    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        c = LocalContainer(Settings(backend="embedded", data_dir=Path(tmp), embedder="minilm"))
        c.embedder.embed(["warm up"])
        worker = EmbeddedWorker(c)
        for s in from_jsonl(corpus_file(sessions, 7).read_text()):
            messages = [{"role": m.role, "content": m.content, "chat_time": m.chat_time} for m in s.messages]
            request = AddRequest.model_validate({"user_id": "alice", "session_id": s.session_id, "messages": messages})
            c.add.submit(to_command(request), c.authority.acting_for(None, "alice", adding=True))

        def work() -> None:
            while worker.run_once():
                pass

        try:
            return _profiled(work, interval=0.001)
        finally:
            c.close()


def dedup(size: int, adds: int = 20) -> str:
    from bench.dedup import conversations, open_cube
    from bench.seed import working_copy
    from memcube_api.schemas.product import AddRequest, to_command

    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        c, worker, _ = open_cube(working_copy(size, Path(tmp)), "minilm")
        bodies = conversations(adds + 1)
        for body in bodies:
            request = AddRequest.model_validate(body)
            c.add.submit(to_command(request), c.authority.acting_for(None, "alice", adding=True))
        worker.run_once()  # the first add opens the cube (its vectors are loaded): not profiled

        def work() -> None:
            for _ in range(adds):
                worker.run_once()

        try:
            return _profiled(work)
        finally:
            c.close()


def search(size: int, searches: int = 20, *, filtered: bool = False) -> str:
    from bench.dedup import open_cube
    from bench.search import TOPIC, queries
    from bench.seed import working_copy
    from memcube.domain.commands import SearchQuery

    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        c, _, _ = open_cube(working_copy(size, Path(tmp)), "minilm")
        principal = c.authority.acting_for(None, "alice")
        texts = queries(searches + 1)
        flt = TOPIC if filtered else None
        c.searcher.search(SearchQuery(query=texts[0], cube_ids=["alice"], filter=flt, relativity=0.0), principal)

        def work() -> None:
            for q in texts[1:]:
                c.searcher.search(SearchQuery(query=q, cube_ids=["alice"], filter=flt, relativity=0.0), principal)

        try:
            return _profiled(work)
        finally:
            c.close()


def coldstart() -> str:
    from bench.coldstart import CONTENDERS, LAMBDA_PYTHON, importtime_top, lambda_env

    python = str(LAMBDA_PYTHON) if LAMBDA_PYTHON.exists() else sys.executable
    rows = importtime_top(python, "memcube_api.handler", lambda_env(), CONTENDERS["bare_api"], limit=30)
    return "\n".join(f"{r['package']:<28} {r['self_ms']:>8.1f} ms" for r in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", choices=["add", "ingest", "dedup", "search", "coldstart"])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--filtered", action="store_true", help="search: with the search benchmark's filter")
    args = parser.parse_args(argv)
    if args.path == "add":
        print(add())
    elif args.path == "ingest":
        print(ingest())
    elif args.path == "dedup":
        print(dedup(args.size))
    elif args.path == "search":
        print(search(args.size, filtered=args.filtered))
    else:
        print(coldstart())


if __name__ == "__main__":
    main()
