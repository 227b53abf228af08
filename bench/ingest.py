"""Ingest throughput: one long multi-session conversation into memcube and into mem0, per message.

The corpus (`bench.corpus`, seeded) is one user's history: many sessions of two speakers with
timestamps, some sessions sent twice (verbatim or with one message reworded). Each session is
one add. Contenders, each a fresh process with a fresh data directory, alternated round by round
(the order shuffled each round); the clock starts after the embedding model is loaded:

- `memcube`: the embedded default (`memcube serve`'s container: SQLite store, durable SQLite
  queue, SQLite FTS5 + vector index, worker threads) in fast mode with the local
  all-MiniLM-L6-v2 embedder. Every session goes through the API's use case (`AddRequest`,
  `AddService.submit`: task record, queued message) and the worker (`IngestService`: reader
  windows, batch embedding, organizer with exact and near-duplicate detection, guarded writes,
  index upserts, task status). The clock stops when the last task is completed.
- `mem0`: mem0 open source, `Memory.add(..., infer=False)` per session, the same model files,
  its embedded default vector store (qdrant local, on disk) and SQLite history
  (`bench/mem0_ingest.py`, in its own venv). No deduplication.

Figure: messages per second (messages sent / elapsed), the median over rounds, and the ratio
memcube / mem0 (goal: at least 3). Torch runs the same number of threads in both
(`--torch-threads`, 1 by default: with other work on a 2-core machine, two threads stall).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import CACHE, ROOT, child_env, log, measured, python
from bench.corpus import from_jsonl, generate, to_jsonl

MEM0_PYTHON = ROOT / ".tools" / "bench-mem0-venv" / "bin" / "python"


def memcube_run(corpus: Path, data_dir: Path, embedder: str, user: str = "alice") -> dict[str, Any]:
    """Ingest the corpus into a fresh embedded default; called in a child process."""
    from memcube.domain.model import TaskState
    from memcube.settings import Settings
    from memcube_api.schemas.product import AddRequest, to_command
    from memcube_local.embedded import EmbeddedWorker
    from memcube_local.wiring import LocalContainer

    sessions = from_jsonl(corpus.read_text())
    container = LocalContainer(Settings(backend="embedded", data_dir=data_dir, embedder=embedder))  # type: ignore[arg-type]  # validated
    container.embedder.embed(["warm up the model"])  # load and warm before the clock starts
    _ = container.stores, container.index, container.local_queue  # open the databases
    worker = EmbeddedWorker(container)
    bodies = [
        {
            "user_id": user,
            "session_id": s.session_id,
            "messages": [
                {"role": m.role, "content": m.content, "chat_time": m.chat_time, "message_id": m.message_id}
                for m in s.messages
            ],
        }
        for s in sessions
    ]
    start = time.perf_counter()
    worker.start()
    task_ids = []
    for body in bodies:
        request = AddRequest.model_validate(body)
        principal = container.authority.acting_for(None, request.user_id, adding=True)
        task_ids.append(container.add.submit(to_command(request), principal).task_id)
    last = container.add.wait(task_ids[-1], timeout=3600, poll=0.01)  # one cube: tasks finish in order
    elapsed = time.perf_counter() - start
    worker.stop()
    outcomes: dict[str, int] = {}
    for task_id in task_ids:
        record = container.tasks.get_task(task_id)
        if record is None or record.status is not TaskState.COMPLETED:
            raise RuntimeError(f"task {task_id} did not complete: {record}")
        for part in record.parts:
            for o in part.outcomes:
                outcomes[o.outcome] = outcomes.get(o.outcome, 0) + 1
    stored = sum(1 for _ in container.memories.iter_memories(user))
    container.close()
    assert last.status is TaskState.COMPLETED
    return {
        "system": "memcube",
        "elapsed_s": elapsed,
        "messages": sum(len(b["messages"]) for b in bodies),
        "memories_stored": stored,
        "outcomes": outcomes,
    }


def run_child(system: str, corpus: Path, embedder: str, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{system}-") as tmp:
        if system == "memcube":
            argv = [python(), "-m", "bench.ingest", "--child", str(corpus), tmp, embedder]
        else:
            script = str(ROOT / "bench" / "mem0_ingest.py")
            argv = [str(MEM0_PYTHON), script, "--corpus", str(corpus), "--data-dir", tmp]
        done = subprocess.run(argv, env=child_env(threads), capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{system} ingest failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["messages_per_s"] = result["messages"] / result["elapsed_s"]
    return result


def corpus_file(sessions: int, seed: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"corpus-{sessions}-{seed}.jsonl"
    if not path.exists():
        path.write_text(to_jsonl(generate(sessions, seed=seed)))
    return path


def run(sessions: int, rounds: int, seed: int, threads: int, *, with_mem0: bool, embedder: str) -> dict[str, Any]:
    corpus = corpus_file(sessions, seed)
    parsed = from_jsonl(corpus.read_text())
    systems = ["memcube", "mem0"] if with_mem0 else ["memcube"]
    rng = random.Random(seed)
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for n in range(rounds):
        rng.shuffle(systems)
        for system in systems:
            log(f"ingest round {n + 1}/{rounds}: {system}")
            results[system].append(run_child(system, corpus, embedder, threads))
    rates = {s: [r["messages_per_s"] for r in rs] for s, rs in results.items()}
    figures: dict[str, Any] = {
        "corpus": {
            "sessions": len(parsed),
            "messages": sum(len(s.messages) for s in parsed),
            "repeated_sessions": sum(1 for s in parsed if s.repeat_of),
            "seed": seed,
        },
        "rounds": rounds,
        "torch_threads": threads,
        "embedder": embedder,
        "messages_per_s": {s: round(statistics.median(r), 1) for s, r in rates.items()},
        "runs": results,
    }
    if with_mem0:
        per_round = [m / o for m, o in zip(rates["memcube"], rates["mem0"], strict=True)]
        figures["ratio memcube/mem0"] = round(statistics.median(rates["memcube"]) / statistics.median(rates["mem0"]), 2)
        figures["ratio per round"] = [round(r, 2) for r in per_round]
        figures["goal"] = {"memcube/mem0 >=": 3}
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--embedder", default="minilm", help="memcube's embedder (hash: no model, for smoke runs)")
    parser.add_argument("--no-mem0", action="store_true", help="memcube only (mem0's venv is not needed)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    with_mem0 = not args.no_mem0
    if with_mem0 and not MEM0_PYTHON.exists():
        raise SystemExit(f"mem0's venv is missing ({MEM0_PYTHON}): run `make bench`, or pass --no-mem0")
    command = (
        f"python -m bench.ingest --sessions {args.sessions} --rounds {args.rounds} --torch-threads {args.torch_threads}"
    )

    def ingest() -> dict[str, Any]:
        return run(
            args.sessions, args.rounds, args.seed, args.torch_threads, with_mem0=with_mem0, embedder=args.embedder
        )

    return measured("ingest", command, ingest, keep=not args.no_save)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(memcube_run(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])))
    else:
        print(json.dumps(main(), indent=2))
