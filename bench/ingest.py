"""Ingest throughput, as a user sees it: sessions posted to `memcube serve`'s HTTP API until every
task is completed, per message; against mem0 and against the embedder's own batched limit.

Two corpora per run, each replayed the same way into every contender:

- `locomo-dev`: LoCoMo's development half (`--data`, default `../shared/data/locomo-dev/locomo-dev.json`
  from the repository root; read by `bench.recall`): one cube per conversation, one add per session,
  the turns as the data's README replays them (`bench.recall.session_body`);
- `generated`: `bench.corpus` (seeded): one user's long history, some sessions sent twice (verbatim
  or with one message reworded), one add per session.

Contenders, per round and corpus in a shuffled order (the clock starts after the model is loaded):

- `memcube`: a fresh `memcube serve` (`bench.recall.memcube_server`: own process, free port,
  temporary data dir, the local all-MiniLM-L6-v2 embedder, `--torch-threads`). One async fast-mode
  `POST /product/add` per session, then `GET /product/scheduler/status` until every task is seen
  `completed` (a task that ends any other way fails the run). The clock runs from the first add to
  the last task seen completed: request handling, the durable queue, the worker (reader windows,
  batch embedding, organizer with exact and near-duplicate detection, store and index writes, task
  status) and the client's polling.
- `mem0`: mem0 open source, `Memory.add(..., infer=False)` per session (one `user_id` per cube), the
  same model files, its embedded default vector store and SQLite history (`bench/mem0_ingest.py`,
  in its own venv). No deduplication.
- `embedder limit`: a process with the same embedder and torch threads embeds exactly the texts
  memcube embeds for the corpus (its fast-mode windows, made with the reader's own function from
  the same requests) in one batched call: messages / those seconds is the rate the model alone
  would allow. memcube at 100% of it would spend nothing but embedding.

Figures (per corpus, under `corpora`): messages per second (median over rounds) per contender, and
memcube / mem0 and memcube / embedder limit (median of the per-round ratios; goals: >= 5x and
>= 0.70). The top-level `messages_per_s` and `ratio memcube/mem0` are the generated corpus's.
`--profile` runs memcube once more per corpus under py-spy (every thread of the serve process,
sampled) and writes where an add's time goes (`bench/profiles/ingest-api.txt`).
`--in-process` measures the older way instead: `AddService` and the embedded worker called
directly, no HTTP (generated corpus only).
Torch runs the same number of threads everywhere (`--torch-threads`, 1 by default: with other
work on a 2-core machine, two threads stall).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import CACHE, ROOT, child_env, log, measured, python
from bench.corpus import Message, Session, from_jsonl, generate, to_jsonl

MEM0_PYTHON = Path(os.environ.get("BENCH_MEM0_PYTHON") or ROOT / ".tools" / "bench-mem0-venv" / "bin" / "python")
"""mem0's venv (`make bench` makes it); `BENCH_MEM0_PYTHON` names another one's interpreter."""


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
        return child_result(argv, threads, f"{system} ingest")


def child_result(argv: list[str], threads: int, what: str) -> dict[str, Any]:
    """Run a contender's process; its last line of output is its JSON result."""
    done = subprocess.run(argv, env=child_env(threads), capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["messages_per_s"] = result["messages"] / result["elapsed_s"]
    return result


def corpus_file(sessions: int, seed: int) -> Path:
    """The generated corpus as JSON lines, cached by size and seed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"corpus-{sessions}-{seed}.jsonl"
    if not path.exists():
        path.write_text(to_jsonl(generate(sessions, seed=seed)))
    return path


def run_in_process(
    sessions: int, rounds: int, seed: int, threads: int, *, with_mem0: bool, embedder: str
) -> dict[str, Any]:
    """The older measurement: `AddService` and the embedded worker called in one process, no HTTP."""
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
        "mode": "in-process",
        "corpus": corpus_notes(parsed, seed),
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


def corpus_notes(sessions: list[Session], seed: int | None) -> dict[str, Any]:
    return {
        "sessions": len(sessions),
        "messages": sum(len(s.messages) for s in sessions),
        "cubes": len({s.user_id for s in sessions}),
        "repeated_sessions": sum(1 for s in sessions if s.repeat_of),
        "seed": seed,
    }


# --- the corpora ----------------------------------------------------------------------------------


def locomo_sessions(path: Path) -> list[Session]:
    """LoCoMo's sessions as the data's README replays them: a cube per conversation, the turns of
    one session one add (`bench.recall`'s reading of the file)."""
    from bench.recall import load_locomo

    return [
        Session(
            session_id=s.session_id,
            started_at=s.chat_time,
            messages=[Message(t.role, t.content, s.chat_time, t.dia_id) for t in s.turns],  # type: ignore[arg-type]
            user_id=conv.sample_id,
        )
        for conv in load_locomo(path).conversations
        for s in conv.sessions
    ]


def add_body(session: Session) -> dict[str, Any]:
    """One async fast-mode add of a session (for LoCoMo, `bench.recall.session_body`'s body)."""
    return {
        "user_id": session.user_id or "alice",
        "session_id": session.session_id,
        "mode": "fast",
        "async_mode": "async",
        "messages": [
            {"role": m.role, "content": m.content, "chat_time": m.chat_time, "message_id": m.message_id}
            for m in session.messages
        ],
    }


def embedded_texts(sessions: list[Session], max_tokens: int | None) -> list[str]:
    """The texts memcube embeds for these adds in fast mode: each request's windows, made by the
    API's conversion (`to_command`) and the reader's own function (`domain.reader.read`)."""
    from memcube.domain.reader import Sizes, read
    from memcube_api.schemas.product import AddRequest, to_command

    sizes = Sizes.for_embedder(max_tokens)
    texts: list[str] = []
    for session in sessions:
        command = to_command(AddRequest.model_validate(add_body(session)))
        texts += [w.text for w in read(command.messages, sizes)]
    return texts


def embed_limit_run(corpus: Path, embedder: str) -> dict[str, Any]:
    """Embed every text memcube embeds for the corpus, in one batched call; in a child process
    with the contenders' torch threads."""
    from memcube.settings import Settings
    from memcube_local.wiring import LocalContainer

    sessions = from_jsonl(corpus.read_text())
    model = LocalContainer(Settings(backend="embedded", embedder=embedder)).embedder  # type: ignore[arg-type]
    texts = embedded_texts(sessions, model.max_tokens)
    model.embed(["warm up the model"])
    start = time.perf_counter()
    vectors = model.embed(texts)
    elapsed = time.perf_counter() - start
    assert len(vectors) == len(texts)
    return {
        "system": "embedder limit",
        "elapsed_s": elapsed,
        "messages": sum(len(s.messages) for s in sessions),
        "texts": len(texts),
        "characters": sum(len(t) for t in texts),
    }


def limit_child(corpus: Path, embedder: str, threads: int) -> dict[str, Any]:
    argv = [python(), "-m", "bench.ingest", "--embed-limit-child", str(corpus), embedder]
    return child_result(argv, threads, "embedder limit")


# --- memcube through its API ----------------------------------------------------------------------


def _status(client: Any, user: str, task_id: str) -> dict[str, Any]:
    from bench.recall import _ok

    data: dict[str, Any] = _ok(client.get("/product/scheduler/status", params={"user_id": user, "task_id": task_id}))[
        "data"
    ][0]
    if data["status"] in {"failed", "cancelled"}:
        raise RuntimeError(f"task {task_id} of {user} ended {data['status']}: {data}")
    return data


def _wait(client: Any, user: str, task_id: str, poll: float) -> None:
    while _status(client, user, task_id)["status"] != "completed":
        time.sleep(poll)


def api_ingest(
    client: Any,
    sessions: list[Session],
    poll: float = 0.1,
    on_ready: Callable[[], None] | None = None,
    *,
    eager: bool = False,
) -> dict[str, Any]:
    """Post every session, wait until every task is completed; the clock from the first add to
    the last task seen completed. A cube's tasks complete in its order, so the client waits for
    each cube's last task, one cube at a time (a status request every `poll` seconds: polling
    every cube at once would load the server it measures), then checks every task once.
    `on_ready` is called after the warm-up add, just before the clock starts. `eager`: the
    client of the earlier figure instead (`bench.recall`'s: every pending cube every 20 ms)."""
    from bench.recall import _ok

    warm = {"user_id": "bench-warm-up", "messages": [{"role": "user", "content": "warm up"}]}
    _wait(client, "bench-warm-up", _ok(client.post("/product/add", json=warm))["task_id"], 0.2)
    if on_ready is not None:
        on_ready()
    bodies = [add_body(s) for s in sessions]
    tasks: list[tuple[str, str]] = []
    start = time.perf_counter()
    for body in bodies:
        tasks.append((body["user_id"], _ok(client.post("/product/add", json=body))["task_id"]))
    posted = time.perf_counter() - start
    pending = dict(tasks)  # user -> its last task, in the order of their first adds
    while eager and pending:
        for user, task_id in list(pending.items()):
            if _status(client, user, task_id)["status"] == "completed":
                del pending[user]
        if pending:
            time.sleep(0.02)
    for user, task_id in pending.items():
        _wait(client, user, task_id, poll)
    elapsed = time.perf_counter() - start
    late = [(u, t) for u, t in tasks if _status(client, u, t)["status"] != "completed"]
    for user, task_id in late:  # never seen so far: the figure then includes the wait for these
        _wait(client, user, task_id, poll)
        elapsed = time.perf_counter() - start
    outcomes: Counter[str] = Counter()
    stored = 0
    for user in dict.fromkeys(u for u, _ in tasks):
        page = {"mem_cube_id": user, "user_id": user, "page_size": 1}
        stored += _ok(client.post("/product/get_memory", json=page))["data"]["total"]
    for user, task_id in tasks:
        for part in _status(client, user, task_id)["cubes"]:
            outcomes.update(o["outcome"] for o in part["outcomes"])
    messages = sum(len(b["messages"]) for b in bodies)
    return {
        "system": "memcube",
        "elapsed_s": elapsed,
        "posting_s": posted,
        "messages": messages,
        "adds": len(tasks),
        "tasks_completed": len(tasks),
        "tasks_seen_late": len(late),
        "memories_stored": stored,
        "outcomes": dict(outcomes),
        "messages_per_s": messages / elapsed,
    }


def _serve_pid(port: int) -> int:
    """The pid of the `memcube serve` listening on `port` (a child of this process)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and str(port).encode() in argv:
            return int(entry.name)
    raise RuntimeError(f"no memcube serve process on port {port}")


def memcube_api_run(
    sessions: list[Session], embedder: str, threads: int, profile: Path | None = None, *, eager: bool = False
) -> dict[str, Any]:
    """One fresh `memcube serve`, the corpus through its API; under py-spy with `profile`."""
    from bench.recall import memcube_server

    with memcube_server(embedder, threads) as client:
        if profile is None:
            return api_ingest(client, sessions, eager=eager)
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        pid = _serve_pid(client.base_url.port)
        argv = [spy, "record", "--pid", str(pid), "--rate", "100", "--threads", "--format", "raw", "-o", str(profile)]
        recorders: list[subprocess.Popen[bytes]] = []

        def attach() -> None:  # after the warm-up: the model's loading is not in the profile
            recorders.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            time.sleep(1.0)

        try:
            result = api_ingest(client, sessions, on_ready=attach)
        finally:
            err = b""
            for recorder in recorders:
                recorder.send_signal(signal.SIGINT)
                err = recorder.communicate(timeout=120)[1]
        if not profile.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode()[-2000:]}")
        return result


# --- the run ----------------------------------------------------------------------------------------

CONTENDERS = ("memcube", "mem0", "embedder limit")
EAGER = "memcube, eager polling"
"""memcube with the client of the earlier figure (`--compare-polling`): what polling costs."""
GOALS = {"memcube/mem0": 5.0, "memcube/embedder limit": 0.70}


def corpus_files(data: Path | None, sessions: int, seed: int) -> dict[str, Path]:
    """Each corpus as JSON lines (`bench.corpus`), which every contender reads."""
    files = {}
    if data is not None:
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / f"locomo-{data.stem}.jsonl"
        path.write_text(to_jsonl(locomo_sessions(data)))
        files["locomo-dev"] = path
    files["generated"] = corpus_file(sessions, seed)
    return files


def one(system: str, corpus: Path, embedder: str, threads: int) -> dict[str, Any]:
    if system in ("memcube", EAGER):
        return memcube_api_run(from_jsonl(corpus.read_text()), embedder, threads, eager=system == EAGER)
    if system == "mem0":
        return run_child("mem0", corpus, embedder, threads)
    return limit_child(corpus, embedder, threads)


def corpus_figures(sessions: list[Session], runs: dict[str, list[dict[str, Any]]], seed: int | None) -> dict[str, Any]:
    rates = {s: [r["messages_per_s"] for r in rs] for s, rs in runs.items()}
    out: dict[str, Any] = {
        "corpus": corpus_notes(sessions, seed),
        "messages_per_s": {s: round(statistics.median(r), 1) for s, r in rates.items()},
    }
    memcube = rates["memcube"]
    for other in ("mem0", "embedder limit", EAGER):
        if other in rates:
            per_round = [m / o for m, o in zip(memcube, rates[other], strict=True)]
            out[f"ratio memcube/{other}"] = round(statistics.median(per_round), 3)
            out[f"ratio memcube/{other} per round"] = [round(r, 3) for r in per_round]
            if f"memcube/{other}" in GOALS:
                out[f"goal memcube/{other} met"] = out[f"ratio memcube/{other}"] >= GOALS[f"memcube/{other}"]
    out["embedded_texts"] = runs["embedder limit"][-1]["texts"] if "embedder limit" in runs else None
    out["runs"] = runs
    return out


def run(
    files: dict[str, Path],
    rounds: int,
    seed: int,
    threads: int,
    *,
    with_mem0: bool,
    embedder: str,
    compare_polling: bool = False,
) -> dict[str, Any]:
    systems = [s for s in CONTENDERS if with_mem0 or s != "mem0"] + ([EAGER] if compare_polling else [])
    rng = random.Random(seed)
    results = {name: {s: [] for s in systems} for name in files}  # type: dict[str, dict[str, list[dict[str, Any]]]]
    for n in range(rounds):
        for name, path in files.items():
            rng.shuffle(systems)
            for system in systems:
                log(f"ingest round {n + 1}/{rounds}, {name}: {system}")
                got = one(system, path, embedder, threads)
                log(f"  {got['messages_per_s']:.1f} messages/s")
                results[name][system].append(got)
    corpora = {
        name: corpus_figures(from_jsonl(path.read_text()), results[name], seed if name == "generated" else None)
        for name, path in files.items()
    }
    generated = corpora["generated"]
    figures: dict[str, Any] = {
        "mode": "api",
        "rounds": rounds,
        "torch_threads": threads,
        "embedder": embedder,
        "goals": {
            "memcube/mem0 >=": GOALS["memcube/mem0"],
            "memcube/embedder limit >=": GOALS["memcube/embedder limit"],
        },
        "corpora": corpora,
        # the generated corpus's figures where the in-process run put them (the report's older rows)
        "corpus": generated["corpus"],
        "messages_per_s": generated["messages_per_s"],
        "runs": generated["runs"],
    }
    if with_mem0:
        figures["ratio memcube/mem0"] = generated["ratio memcube/mem0"]
        figures["ratio per round"] = generated["ratio memcube/mem0 per round"]
    return figures


# --- the profile --------------------------------------------------------------------------------------

STAGES = (
    # (stage, function, file): a sample goes to the innermost frame of its stack that names a stage
    # ("*": any function of that file)
    ("embedding", "embed", "minilm.py"),
    ("embedding", "embed", "hash_embedder.py"),
    ("organizer: vector neighbours (index search)", "search", "sqlite/index.py"),
    ("organizer: near-duplicate candidates (LSH bands)", "similar_ids", "sqlite/memories.py"),
    ("organizer: text similarity (shingles, MinHash, Jaccard)", "*", "domain/similarity.py"),
    ("store write (memories)", "put_memory", "sqlite/memories.py"),
    ("store write (memories)", "update_memory", "sqlite/memories.py"),
    ("store write (memories)", "rewrite_memory", "sqlite/memories.py"),
    ("store read (memories)", "get_memories", "sqlite/memories.py"),
    ("organizer: other", "place", "domain/organizer.py"),
    ("index upsert (FTS5, vectors)", "upsert", "sqlite/index.py"),
    ("reader / windowing", "read", "domain/reader.py"),
    ("task status writes", "put_task_part", "sqlite/tasks.py"),
    ("task status writes", "create_task", "sqlite/tasks.py"),
    ("task reads", "get_task", "sqlite/tasks.py"),
    ("queue (lease, ack)", "receive", "sqlite/queue.py"),
    ("queue (lease, ack)", "ack", "sqlite/queue.py"),
    ("queue (send)", "send", "sqlite/queue.py"),
    ("worker: message parse and item building", "handle", "domain/ingest.py"),
    ("request: add (validation, task record, queue)", "add", "routes/product.py"),
    ("request: add (validation, task record, queue)", "submit", "domain/tasks.py"),
    ("request: status polls", "scheduler_status", "routes/product.py"),
    ("HTTP server (uvicorn, starlette, fastapi)", "*", "uvicorn/"),
    ("HTTP server (uvicorn, starlette, fastapi)", "*", "starlette/"),
    ("HTTP server (uvicorn, starlette, fastapi)", "*", "fastapi/"),
    ("event loop", "*", "asyncio/"),
    ("waiting (lock or condition)", "wait", "threading.py"),
)
_FRAME = re.compile(r"^(?P<fn>[^ ]+) \((?P<file>[^:)]+)")


def stage_of(frames: list[str]) -> str:
    leaf = _FRAME.match(frames[-1]) if frames else None
    if leaf is not None and leaf["fn"].endswith(".embed") and leaf["file"].endswith("minilm.py"):
        # `embed`'s own lines: taking the encode lock while the other worker thread encodes
        return "embedding: in `embed` itself (the encode lock)"
    for frame in reversed(frames):
        m = _FRAME.match(frame)
        if m is None:
            continue
        method = m["fn"].rsplit(".", 1)[-1]
        for stage, fn, file in STAGES:
            if fn in ("*", method) and file in m["file"]:
                return stage
    return "other"


def thread_group(head: str) -> str:
    """py-spy's first frame: `thread (<id>): <name>`."""
    name = head.partition(": ")[2]
    if name.startswith("memcube-worker-") and name[-1].isdigit():
        return "worker threads"
    if name == "MainThread":
        return "main thread (HTTP server, event loop)"
    if name.startswith("AnyIO worker"):
        return "request threads (AnyIO)"
    return "other threads"


def summarize_profile(raw: Path, corpus: str, result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """py-spy's raw samples (one folded stack and its count a line), by thread group and stage."""
    by_group: dict[str, Counter[str]] = {}
    self_time: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        group = thread_group(frames[0])
        by_group.setdefault(group, Counter())[stage_of(frames[1:])] += int(count)
        if frames[1:]:
            self_time[f"{group}: {frames[-1]}"] += int(count)
    figures: dict[str, Any] = {"corpus": corpus, "messages_per_s_under_profiler": round(result["messages_per_s"], 1)}
    lines = [
        f"== {corpus}: {result['adds']} adds, {result['messages']} messages, {result['elapsed_s']:.1f} s under "
        f"py-spy (100 Hz, every thread, samples on the CPU only) = {result['messages_per_s']:.1f} messages/s",
    ]
    for group, stages in sorted(by_group.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(stages.values())
        lines += ["", f"{group}: {total} samples on the CPU ({total / 100:.1f} thread-seconds)"]
        figures[group] = {"samples": total}
        for stage, n in stages.most_common():
            figures[group][stage] = round(n / total, 4)
            lines.append(f"  {n:7d}  {100 * n / total:5.1f}%  {stage}")
    lines += ["", "innermost frames (self time), top 25:"]
    lines += [f"  {n:7d}  {frame}" for frame, n in self_time.most_common(25)]
    return "\n".join(lines), figures


def profile(files: dict[str, Path], embedder: str, threads: int, out: Path) -> dict[str, Any]:
    """memcube once more per corpus, under py-spy; the summary to `out`, the figures returned."""
    texts, figures = [], {}
    for name, path in files.items():
        with tempfile.TemporaryDirectory(prefix="bench-ingest-profile-") as tmp:
            raw = Path(tmp) / "samples.txt"
            log(f"ingest profile, {name}")
            result = memcube_api_run(from_jsonl(path.read_text()), embedder, threads, profile=raw)
            text, figures[name] = summarize_profile(raw, name, result)
            texts.append(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = (
        "Where an add's time goes in `memcube serve`, from the request to its completed status\n"
        f"(python -m bench.ingest --profile; embedder {embedder}, torch threads {threads}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}).\n"
        "A sample counts for the innermost frame of its stack that names a stage; shares are of the thread\n"
        "group's samples (threads waiting in a system call are not sampled).\n\n"
    )
    out.write_text(head + "\n\n".join(texts) + "\n")
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=120, help="sessions of the generated corpus")
    parser.add_argument("--data", default="../shared/data/locomo-dev/locomo-dev.json", help="LoCoMo JSON")
    parser.add_argument("--no-locomo", action="store_true", help="the generated corpus only (no data needed)")
    parser.add_argument("--synthetic", action="store_true", help="a tiny generated LoCoMo-shaped file as the data")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--embedder", default="minilm", help="memcube's embedder (hash: no model, for smoke runs)")
    parser.add_argument("--no-mem0", action="store_true", help="memcube only (mem0's venv is not needed)")
    parser.add_argument("--profile", action="store_true", help="then one run per corpus under py-spy")
    parser.add_argument("--profile-out", default=str(ROOT / "bench" / "profiles" / "ingest-api.txt"))
    parser.add_argument("--in-process", action="store_true", help="the older measurement: no HTTP")
    parser.add_argument(
        "--compare-polling", action="store_true", help="also memcube with the earlier client's polling (20 ms)"
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    with_mem0 = not args.no_mem0
    if with_mem0 and not MEM0_PYTHON.exists():
        raise SystemExit(f"mem0's venv is missing ({MEM0_PYTHON}): run `make bench`, or pass --no-mem0")
    command = shlex.join(["python", "-m", "bench.ingest", *(argv if argv is not None else sys.argv[1:])])
    if args.in_process:
        return measured(
            "ingest",
            command,
            lambda: run_in_process(
                args.sessions, args.rounds, args.seed, args.torch_threads, with_mem0=with_mem0, embedder=args.embedder
            ),
            keep=not args.no_save,
        )
    data = None
    if args.synthetic:
        from bench.recall import synthetic_locomo

        data = synthetic_locomo(CACHE / "locomo-synthetic.json")
    elif not args.no_locomo:
        data = Path(args.data) if Path(args.data).is_absolute() else ROOT / args.data
        if not data.exists():
            raise SystemExit(f"no LoCoMo file at {data}: see BENCHMARKS.md, or pass --no-locomo")

    def ingest() -> dict[str, Any]:
        files = corpus_files(data, args.sessions, args.seed)
        figures = run(
            files,
            args.rounds,
            args.seed,
            args.torch_threads,
            with_mem0=with_mem0,
            embedder=args.embedder,
            compare_polling=args.compare_polling,
        )
        if args.profile:
            figures["profile"] = profile(files, args.embedder, args.torch_threads, Path(args.profile_out))
        return figures

    return measured("ingest", command, ingest, keep=not args.no_save)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(memcube_run(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])))
    elif len(sys.argv) == 4 and sys.argv[1] == "--embed-limit-child":
        print(json.dumps(embed_limit_run(Path(sys.argv[2]), sys.argv[3])))
    else:
        print(json.dumps(main(), indent=2))
