"""Recall: does what `POST /product/search` gives back hold what the agent needs, at the context
budget the agent pays for? On LoCoMo, against turn-level retrieval and mem0, in the same run.

LoCoMo (Maharana et al., ACL 2024; public repository snap-research/LoCoMo, `data/locomo10.json`,
CC BY-NC 4.0, never committed here) holds long multi-session chats between two speakers, and
questions whose evidence turns are annotated (`dia_id`s). The development half (five of the ten
conversations) is read from `--data` (default `../shared/data/locomo-dev/locomo-dev.json` from the
repository root). The replay is the one of the data's README ("The replay behind the figures"):

- a fresh `memcube serve` (own process, free port, temporary data dir, `MEMCUBE_EMBEDDER`
  minilm by default, one torch thread); one cube per conversation (user_id = cube id =
  `sample_id`), one async fast-mode `/product/add` per session (`session_id` = `session_N`);
  each turn one message, role `user` for speaker_a and `assistant` for the other, content
  `"<speaker>: <text>"` plus `" [shares a photo: <blip_caption>]"` where the turn has one,
  `chat_time` the session's `session_N_date_time`, `message_id` the turn's `dia_id`. The clock
  starts at the first add (the model is loaded and warm by then) and stops when the last task
  is seen completed (`/product/scheduler/status`): ingest messages/s = turns sent / that time.
- every question outside category 5 (adversarial) that has evidence is asked through
  `/product/search` with the request defaults (only `query` and `user_id`), and again with each
  "best settings" variant (`--variant`, JSON; default top_k 30, relativity 0, dedup "no"),
  interleaved question by question; search latency p50/p99 is measured at the client.

A result covers the evidence turns whose `dia_id` is among its `metadata.sources[*].message_id`.
Per question, then averaged per category (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop)
and overall:

- hit@k (k = 1, 5, 10): some evidence turn is covered by one of the first k results;
- recall within N words (N = 500, 1,000, 2,000): the results are packed in rank order into a
  context of N words (a result weighs `len(memory.split())` words; one that does not fit whole is
  skipped and the next is tried), and the share of the question's evidence turns covered by what
  fits is counted. This is what an agent pays for and what it can answer from; hit@k alone
  rewards returning ever longer memories;
- the words in the top 10 (median over questions): what the request costs the agent.

Side by side, on the same questions and the same turn texts:

- `turn dense`: each turn embedded alone with the same embedder, cosine, top `TOP` (what mem0
  `infer=False` stores, without mem0);
- `turn BM25`: each turn scored with Okapi BM25 (k1 1.2, b 0.75, Lucene's idf), top `TOP`;
- `mem0`: mem0 open source, `Memory.add(session, user_id=conv, run_id=session, infer=False)` per
  session with the same model files, `Memory.search(question, top_k=TOP, filters={"user_id": conv})`
  with mem0's defaults otherwise (its own ranking, threshold 0.1), in its own venv
  (`bench/mem0_recall.py`); its ingest messages/s on the same data gives the ratio memcube / mem0
  (the issue's goal: at least 3).

Evidence lists are read as LoCoMo writes them: a few entries hold several ids separated by ";" or
spaces and are split; ids that name no turn of the conversation (a few malformed ones) are dropped
and counted in the results; a question left with no evidence is not asked.

Writes `bench/results/recall.json`; `bench.report` renders it into BENCHMARKS.md with the goals of
the recall issue (request defaults: recall@1000 >= 0.80, recall@500 >= 0.65, hit@10 >= 0.90, each
at least 10 points above the better turn-level baseline; ingest >= 3x mem0; search p99).
`--synthetic` replays a small generated LoCoMo-shaped file instead (the smoke test: no data, no
model, no mem0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import CACHE, ROOT, child_env, log, measured, python, summary, torch_threads

MEM0_PYTHON = ROOT / ".tools" / "bench-mem0-venv" / "bin" / "python"
DEFAULT_DATA = "../shared/data/locomo-dev/locomo-dev.json"
"""Relative to the repository root: the development half, outside the repository."""
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
HITS = (1, 5, 10)
BUDGETS = (500, 1000, 2000)
TOP = 150
"""Results per question for the turn-level baselines and mem0 (`--top`): 150 turns are about
3,500 words, so each baseline fills every budget and its recall is limited by its ranking, never
by how deep it was asked (30 turns, about 700 words, would cap its recall within 1,000 and 2,000
words and flatter memcube)."""
DEFAULT_VARIANTS = ('{"top_k": 30, "relativity": 0, "dedup": "no"}',)


# --- the data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    dia_id: str
    role: str
    content: str


@dataclass(frozen=True)
class Session:
    session_id: str
    chat_time: str
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    sessions: tuple[Session, ...]

    def turns(self) -> list[Turn]:
        return [t for s in self.sessions for t in s.turns]


@dataclass(frozen=True)
class Question:
    conv: str
    text: str
    category: int
    evidence: frozenset[str]


@dataclass(frozen=True)
class Dataset:
    conversations: tuple[Conversation, ...]
    questions: tuple[Question, ...]
    notes: dict[str, Any]


def turn_content(speaker: str, turn: dict[str, Any]) -> str:
    text = f"{speaker}: {turn['text']}"
    if turn.get("blip_caption"):
        text += f" [shares a photo: {turn['blip_caption']}]"
    return text


def _sessions(conv: dict[str, Any]) -> tuple[Session, ...]:
    numbers = sorted(int(m.group(1)) for k in conv if (m := re.fullmatch(r"session_(\d+)", k)))
    out = []
    for n in numbers:
        raw = conv[f"session_{n}"]
        if not isinstance(raw, list) or not raw:
            continue
        turns = tuple(
            Turn(
                dia_id=t["dia_id"],
                role="user" if t["speaker"] == conv["speaker_a"] else "assistant",
                content=turn_content(t["speaker"], t),
            )
            for t in raw
        )
        out.append(Session(f"session_{n}", conv[f"session_{n}_date_time"], turns))
    return tuple(out)


def load_locomo(path: Path, conversations: int | None = None) -> Dataset:
    """The conversations and their askable questions (outside category 5, with evidence)."""
    raw = json.loads(path.read_text())
    if conversations is not None:
        raw = raw[:conversations]
    convs, questions = [], []
    dropped_ids = 0
    without_evidence = adversarial = 0
    for sample in raw:
        conv = Conversation(sample["sample_id"], _sessions(sample["conversation"]))
        convs.append(conv)
        known = {t.dia_id for t in conv.turns()}
        for qa in sample["qa"]:
            if qa["category"] == 5:
                adversarial += 1
                continue
            ids = [i for entry in qa.get("evidence") or [] for i in re.split(r"[;,\s]+", entry) if i]
            dropped_ids += sum(1 for i in ids if i not in known)
            evidence = frozenset(i for i in ids if i in known)
            if not evidence:
                without_evidence += 1
                continue
            questions.append(Question(conv.sample_id, qa["question"], qa["category"], evidence))
    notes = {
        "file": os.path.relpath(path, ROOT),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "conversations": len(convs),
        "sessions": sum(len(c.sessions) for c in convs),
        "turns": sum(len(c.turns()) for c in convs),
        "questions": len(questions),
        "questions_by_category": {CATEGORIES[k]: v for k, v in sorted(Counter(q.category for q in questions).items())},
        "category_5_not_asked": adversarial,
        "questions_without_evidence": without_evidence,
        "evidence_ids_naming_no_turn": dropped_ids,  # a count: no part of the data is written
    }
    return Dataset(tuple(convs), tuple(questions), notes)


def synthetic_locomo(path: Path) -> Path:
    """A tiny LoCoMo-shaped file (two conversations of three short sessions, a few questions of
    every category with evidence, one adversarial, one without evidence): the smoke run's data."""
    people = [("Ann", "Bob"), ("Cleo", "Dan")]
    topics = [
        ["pottery class", "violin lessons", "garden tomatoes", "marathon training"],
        ["chess club", "sourdough bread", "kayak trip", "novel writing"],
    ]
    samples = []
    for c, ((a, b), subjects) in enumerate(zip(people, topics, strict=True)):
        conv: dict[str, Any] = {"speaker_a": a, "speaker_b": b}
        qa: list[dict[str, Any]] = []
        for s in range(1, 4):
            conv[f"session_{s}_date_time"] = f"{s + 1}:15 pm on {s + 2} May, 2023"
            turns = []
            for n in range(1, 7):
                speaker = a if n % 2 else b
                subject = subjects[(s + n) % len(subjects)]
                turn: dict[str, Any] = {
                    "speaker": speaker,
                    "dia_id": f"D{s}:{n}",
                    "text": f"Talking about my {subject}, day {s}.{n}.",
                }
                if n == 3:
                    turn |= {"img_url": ["http://example.invalid/x.jpg"], "blip_caption": f"a photo of {subject}"}
                turns.append(turn)
            conv[f"session_{s}"] = turns
            qa.append(
                {"question": f"What did {a} say about {subjects[(s + 1) % 4]}?", "evidence": [f"D{s}:1"], "category": 4}
            )
        qa += [
            {"question": f"When did {b} mention {subjects[0]}?", "evidence": ["D1:2; D2:4"], "category": 2},
            {"question": f"What hobbies does {a} have?", "evidence": ["D1:1", "D3:3"], "category": 1},
            {"question": f"Would {b} enjoy {subjects[1]}?", "evidence": ["D2:2"], "category": 3},
            {"question": "Which planet is mentioned?", "evidence": [], "category": 5},
            {"question": "What is never said?", "evidence": [], "category": 4},
        ]
        samples.append({"sample_id": f"synthetic-{c + 1}", "conversation": conv, "qa": qa})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(samples, indent=1))
    return path


# --- scoring -----------------------------------------------------------------------------------

Ranked = list[tuple[frozenset[str], int]]
"""A system's answer to one question, in rank order: per result, the dia_ids it covers and its words."""


def words(text: str) -> int:
    return len(text.split())


def score(ranked: Ranked, evidence: frozenset[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in HITS:
        out[f"hit@{k}"] = float(any(ids & evidence for ids, _ in ranked[:k]))
    for budget in BUDGETS:
        used, covered = 0, set[str]()
        for ids, weight in ranked:
            if used + weight > budget:
                continue  # does not fit whole: skipped, the next is tried
            used += weight
            covered |= ids & evidence
        out[f"recall@{budget}"] = len(covered) / len(evidence)
    out["words_top10"] = float(sum(weight for _, weight in ranked[:10]))
    return out


def aggregate(questions: Sequence[Question], answers: Sequence[Ranked]) -> dict[str, Any]:
    """Means of hit@k and recall@N, and the median words in the top 10, overall and per category."""
    scored = [(q.category, score(a, q.evidence)) for q, a in zip(questions, answers, strict=True)]

    def block(rows: list[dict[str, float]]) -> dict[str, float]:
        out = {k: round(statistics.fmean(r[k] for r in rows), 4) for k in rows[0] if k != "words_top10"}
        out["words_top10_median"] = statistics.median(r["words_top10"] for r in rows)
        out["questions"] = len(rows)
        return out

    by_category = {
        CATEGORIES[c]: block([s for cat, s in scored if cat == c]) for c in sorted({cat for cat, _ in scored})
    }
    return {"overall": block([s for _, s in scored]), "by_category": by_category}


# --- turn-level baselines ------------------------------------------------------------------------

TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class BM25:
    """Okapi BM25 over a fixed list of documents (k1 1.2, b 0.75; idf log(1 + (N - n + .5) / (n + .5)),
    Lucene's, never negative)."""

    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.docs = [Counter(tokens(d)) for d in documents]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = statistics.fmean(self.lengths) if self.lengths else 0.0
        self.k1, self.b = k1, b
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def scores(self, query: str) -> list[float]:
        terms = [t for t in set(tokens(query)) if t in self.idf]
        out = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.avg) if self.avg else self.k1
            out.append(sum(self.idf[t] * doc[t] * (self.k1 + 1) / (doc[t] + norm) for t in terms if t in doc))
        return out

    def top(self, query: str, k: int) -> list[int]:
        s = self.scores(query)
        return sorted(range(len(s)), key=lambda i: (-s[i], i))[:k]


def turn_baselines(data: Dataset, embedder_kind: str, threads: int, top: int = TOP) -> dict[str, Any]:
    """Each turn alone: dense (the same embedder, cosine) and BM25, the `top` best per question."""
    from memcube.settings import Settings
    from memcube_local.wiring import LocalContainer

    embedder = LocalContainer(Settings(backend="embedded", embedder=embedder_kind)).embedder  # type: ignore[arg-type]
    with torch_threads(threads):
        return _turn_baselines(data, embedder, top)


def _turn_baselines(data: Dataset, embedder: Any, top: int) -> dict[str, Any]:
    import numpy as np

    dense: list[Ranked] = []
    lexical: list[Ranked] = []
    started = time.perf_counter()
    by_conv = {c.sample_id: c.turns() for c in data.conversations}
    matrices = {
        cid: np.asarray(embedder.embed([t.content for t in turns]), dtype=np.float32) for cid, turns in by_conv.items()
    }
    bm25 = {cid: BM25([t.content for t in turns]) for cid, turns in by_conv.items()}
    embedded_turns = time.perf_counter() - started
    queries = np.asarray(embedder.embed([q.text for q in data.questions]), dtype=np.float32)
    for q, vector in zip(data.questions, queries, strict=True):
        turns = by_conv[q.conv]
        cosines = matrices[q.conv] @ vector / (np.linalg.norm(matrices[q.conv], axis=1) * np.linalg.norm(vector))
        order = np.argsort(-cosines, kind="stable")[:top]
        dense.append([(frozenset([turns[i].dia_id]), words(turns[i].content)) for i in order])
        lexical.append([(frozenset([turns[i].dia_id]), words(turns[i].content)) for i in bm25[q.conv].top(q.text, top)])
    return {
        "turn dense": dense,
        "turn BM25": lexical,
        "seconds": {"embedding turns": round(embedded_turns, 1), "all": round(time.perf_counter() - started, 1)},
    }


# --- memcube through its API ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def memcube_server(embedder: str, threads: int) -> Iterator[Any]:
    """A fresh `memcube serve` on a free port and a temporary data dir; yields an httpx client."""
    import httpx

    script = Path(sys.executable).with_name("memcube")
    with tempfile.TemporaryDirectory(prefix="bench-recall-") as tmp:
        port = free_port()
        cli = [str(script)] if script.exists() else [python(), "-c", "from memcube_local.cli import main; main()"]
        argv = [*cli, "serve", "--port", str(port), "--data-dir", str(Path(tmp) / "data")]
        logfile = Path(tmp) / "serve.log"
        env = child_env(threads, fresh=True) | {"MEMCUBE_EMBEDDER": embedder}
        with logfile.open("w") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"memcube serve exited {proc.returncode}:\n{logfile.read_text()[-3000:]}")
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"memcube serve did not start:\n{logfile.read_text()[-3000:]}")
                time.sleep(0.1)
            yield client
        finally:
            client.close()
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ok(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or body.get("code") != 200:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.status_code} {body}")
    return body


def session_body(conv: Conversation, session: Session, **extra: Any) -> dict[str, Any]:
    return {
        "user_id": conv.sample_id,
        "session_id": session.session_id,
        "mode": "fast",
        "async_mode": "async",
        "messages": [
            {"role": t.role, "content": t.content, "chat_time": session.chat_time, "message_id": t.dia_id}
            for t in session.turns
        ],
        **extra,
    }


def memcube_ingest(client: Any, data: Dataset) -> dict[str, Any]:
    # Warm up: the model loads and the worker runs once, in a cube of its own, before the clock.
    warm = {"user_id": "bench-warm-up", "messages": [{"role": "user", "content": "warm up"}]}
    warm_task = _ok(client.post("/product/add", json=warm))["task_id"]
    while True:  # the model may load slower than a sync add waits on a busy machine: poll instead
        params = {"user_id": "bench-warm-up", "task_id": warm_task}
        state = _ok(client.get("/product/scheduler/status", params=params))["data"][0]["status"]
        if state == "completed":
            break
        if state in {"failed", "cancelled"}:
            raise RuntimeError(f"the warm-up add ended {state}")
        time.sleep(0.2)
    tasks: list[tuple[str, str]] = []
    start = time.perf_counter()
    for conv in data.conversations:
        for session in conv.sessions:
            body = _ok(client.post("/product/add", json=session_body(conv, session)))
            tasks.append((conv.sample_id, body["task_id"]))

    def status(user: str, task_id: str) -> str:
        body = _ok(client.get("/product/scheduler/status", params={"user_id": user, "task_id": task_id}))
        state: str = body["data"][0]["status"]
        if state in {"failed", "cancelled"}:
            raise RuntimeError(f"task {task_id} of {user}: {body['data']}")
        return state

    # A cube's tasks complete in order: poll each cube's last task, then check every task once.
    pending = dict(tasks)  # user -> its last task id
    elapsed = 0.0
    while pending:
        for user, task_id in list(pending.items()):
            if status(user, task_id) == "completed":
                del pending[user]
        elapsed = time.perf_counter() - start
        if pending:
            time.sleep(0.02)
    late = [(u, t) for u, t in tasks if status(u, t) != "completed"]
    while late:  # never seen so far: the figure would then include the wait for these
        time.sleep(0.05)
        late = [(u, t) for u, t in late if status(u, t) != "completed"]
        elapsed = time.perf_counter() - start
    turns = sum(len(c.turns()) for c in data.conversations)
    stored = {}
    for conv in data.conversations:
        page = {"mem_cube_id": conv.sample_id, "user_id": conv.sample_id, "page_size": 1}
        stored[conv.sample_id] = _ok(client.post("/product/get_memory", json=page))["data"]["total"]
    return {
        "messages": turns,
        "adds": len(tasks),
        "elapsed_s": round(elapsed, 2),
        "messages_per_s": round(turns / elapsed, 1),
        "memories_stored": stored,
    }


def memcube_ranked(body: dict[str, Any]) -> Ranked:
    out: Ranked = []
    for block in body["data"]["text_mem"]:
        for m in block["memories"]:
            ids = frozenset(s["message_id"] for s in m["metadata"].get("sources", []) if s.get("message_id"))
            out.append((ids, words(m["memory"])))
    return out


def memcube_search(client: Any, data: Dataset, variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every question with each variant, interleaved question by question (the order rotates)."""
    answers: dict[str, list[Ranked]] = {name: [] for name in variants}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    results: dict[str, list[int]] = {name: [] for name in variants}
    names = list(variants)
    for n, q in enumerate(data.questions):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            body = {"query": q.text, "user_id": q.conv, **variants[name]}
            t0 = time.perf_counter()
            response = client.post("/product/search", json=body)
            seconds[name].append(time.perf_counter() - t0)
            ranked = memcube_ranked(_ok(response))
            answers[name].append(ranked)
            results[name].append(len(ranked))
    return {
        "answers": answers,
        "latency": {n: summary(s) for n, s in seconds.items()},
        "results_mean": {n: round(statistics.fmean(r), 1) for n, r in results.items()},
    }


# --- mem0 ----------------------------------------------------------------------------------------


def mem0_job(data: Dataset, top: int = TOP) -> dict[str, Any]:
    """What `bench/mem0_recall.py` replays and asks: the same sessions, turn texts and questions."""

    def turns(session: Session) -> list[dict[str, str]]:
        return [{"role": t.role, "content": t.content, "dia_id": t.dia_id} for t in session.turns]

    conversations = [
        {
            "user_id": c.sample_id,
            "sessions": [{"run_id": s.session_id, "chat_time": s.chat_time, "turns": turns(s)} for s in c.sessions],
        }
        for c in data.conversations
    ]
    questions = [{"user_id": q.conv, "query": q.text} for q in data.questions]
    return {"conversations": conversations, "questions": questions, "limit": top}


def mem0_run(data: Dataset, threads: int, top: int = TOP) -> dict[str, Any]:
    """mem0 open source in its own venv (`bench/mem0_recall.py`): ingest, then every question."""
    with tempfile.TemporaryDirectory(prefix="bench-recall-mem0-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps(mem0_job(data, top)))
        argv = [str(MEM0_PYTHON), str(ROOT / "bench" / "mem0_recall.py"), "--job", str(job), "--data-dir", tmp]
        done = subprocess.run(
            argv, env=child_env(threads, fresh=True), capture_output=True, text=True, check=False, cwd=ROOT
        )
    if done.returncode != 0:
        raise RuntimeError(f"mem0 failed:\n{done.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["answers"] = [[(frozenset(r["dia_ids"]), words(r["memory"])) for r in rs] for rs in out.pop("results")]
    return out


# --- the run -------------------------------------------------------------------------------------


def goals(systems: dict[str, dict[str, Any]], ingest: dict[str, Any], latency: dict[str, Any]) -> list[dict[str, Any]]:
    """The recall issue's goals, on this run's figures."""
    defaults = systems["memcube defaults"]["overall"]
    turn = {k: max(systems[s]["overall"][k] for s in ("turn dense", "turn BM25")) for k in defaults}
    rows = []
    for key, target, label in (
        ("recall@1000", 0.80, "recall within 1,000 words, request defaults"),
        ("recall@500", 0.65, "recall within 500 words, request defaults"),
        ("hit@10", 0.90, "hit@10, request defaults"),
    ):
        value = defaults[key]
        rows.append({"goal": label, "target": f">= {target:.2f}", "measured": f"{value:.2f}", "met": value >= target})
        margin = value - turn[key]
        rows.append(
            {
                "goal": f"{label}: above the better turn-level baseline ({turn[key]:.2f})",
                "target": ">= +0.10",
                "measured": f"{margin:+.2f}",
                "met": margin >= 0.10 - 1e-9,
            }
        )
    if "ratio memcube/mem0" in ingest:
        ratio = ingest["ratio memcube/mem0"]
        rows.append(
            {
                "goal": "ingest messages/s, memcube / mem0 (`infer=False`), same data and model",
                "target": ">= 3x",
                "measured": f"{ratio:.2f}x ({ingest['memcube']['messages_per_s']:.0f} vs "
                f"{ingest['mem0']['messages_per_s']:.0f})",
                "met": ratio >= 3,
            }
        )
    p99 = latency["memcube defaults"]["p99_ms"]
    rows.append(
        {
            "goal": "search p99, request defaults, at this benchmark's cube sizes (the 100k-item figure: "
            "Search latency)",
            "target": "<= 100 ms",
            "measured": f"{p99:.0f} ms (p50 {latency['memcube defaults']['p50_ms']:.0f} ms)",
            "met": p99 <= 100,
        }
    )
    return rows


def run(
    data: Dataset,
    *,
    embedder: str,
    threads: int,
    variants: Sequence[dict[str, Any]],
    with_mem0: bool,
    top: int = TOP,
) -> dict[str, Any]:
    named: dict[str, dict[str, Any]] = {"memcube defaults": {}} | {f"memcube {json.dumps(v)}": v for v in variants}
    log(
        f"recall: {data.notes['conversations']} conversations, {data.notes['turns']} turns, "
        f"{data.notes['questions']} questions; memcube serve ({embedder})"
    )
    with memcube_server(embedder, threads) as client:
        ingest = {"memcube": memcube_ingest(client, data)}
        log(f"recall: memcube ingested {ingest['memcube']['messages_per_s']} messages/s; searching")
        searched = memcube_search(client, data, named)
    answers: dict[str, list[Ranked]] = dict(searched["answers"])
    log("recall: turn-level baselines")
    baselines = turn_baselines(data, embedder, threads, top)
    answers["turn dense"], answers["turn BM25"] = baselines["turn dense"], baselines["turn BM25"]
    latency = dict(searched["latency"])
    if with_mem0:
        log("recall: mem0")
        mem0 = mem0_run(data, threads, top)
        answers["mem0"] = mem0["answers"]
        latency["mem0"] = summary(mem0["search_seconds"])
        ingest["mem0"] = {k: mem0["ingest"][k] for k in ("messages", "elapsed_s", "messages_per_s", "memories_stored")}
        ingest["ratio memcube/mem0"] = round(ingest["memcube"]["messages_per_s"] / ingest["mem0"]["messages_per_s"], 2)
    systems = {name: aggregate(data.questions, a) for name, a in answers.items()}
    for name, figures in systems.items():
        if name in latency:
            figures["search_latency"] = latency[name]
        if name in searched["results_mean"]:
            figures["results_per_search_mean"] = searched["results_mean"][name]
    figures = {
        "data": data.notes,
        "embedder": embedder,
        "torch_threads": threads,
        "variants": named,
        "baseline_top": top,
        "ingest": ingest,
        "systems": systems,
        "baseline_seconds": baselines["seconds"],
        "goals": goals(systems, ingest, latency),
    }
    return figures


def parse_variant(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a variant is a JSON object of search fields: {text}")
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="LoCoMo JSON (relative paths: from the repository root)")
    parser.add_argument("--synthetic", action="store_true", help="generate and use a tiny LoCoMo-shaped file")
    parser.add_argument("--conversations", type=int, default=None, help="only the first N conversations")
    parser.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        help=f"a 'best settings' variant, JSON search fields (repeatable; default {DEFAULT_VARIANTS[0]})",
    )
    parser.add_argument("--embedder", default="minilm", help="memcube's and the dense baseline's (hash: no model)")
    parser.add_argument("--top", type=int, default=TOP, help="results per question of the turn baselines and mem0")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--no-mem0", action="store_true", help="without mem0 (its venv is not needed)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    with_mem0 = not args.no_mem0
    if with_mem0 and not MEM0_PYTHON.exists():
        raise SystemExit(f"mem0's venv is missing ({MEM0_PYTHON}): run `make bench`, or pass --no-mem0")
    if args.synthetic:
        path = synthetic_locomo(CACHE / "locomo-synthetic.json")
    else:
        path = Path(args.data) if Path(args.data).is_absolute() else ROOT / args.data
        if not path.exists():
            raise SystemExit(
                f"no LoCoMo file at {path}: get data/locomo10.json from github.com/snap-research/LoCoMo "
                "(CC BY-NC 4.0) and pass it with --data"
            )
    variants = args.variant or [parse_variant(v) for v in DEFAULT_VARIANTS]
    command = shlex.join(["python", "-m", "bench.recall", *(argv if argv is not None else sys.argv[1:])])
    data = load_locomo(path, args.conversations)

    def recall() -> dict[str, Any]:
        return run(
            data,
            embedder=args.embedder,
            threads=args.torch_threads,
            variants=variants,
            with_mem0=with_mem0,
            top=args.top,
        )

    return measured("recall", command, recall, keep=not args.no_save)


if __name__ == "__main__":
    result = main()
    overall = {name: s["overall"] for name, s in result["systems"].items()}
    print(json.dumps({"ingest": result["ingest"], "overall": overall, "goals": result["goals"]}, indent=2))
