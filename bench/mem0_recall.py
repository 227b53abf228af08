"""The mem0 side of the recall benchmark; runs in mem0's own venv (.tools/bench-mem0-venv).

mem0 open source set up as in `bench/mem0_ingest.py` (`build`: its embedded qdrant on disk, SQLite
history, the same all-MiniLM-L6-v2 files as memcube, no LLM call). The job file (written by
`bench/recall.py`) holds the LoCoMo conversations and the questions. Every session is one
`Memory.add(messages, user_id=<conversation>, run_id=<session>, infer=False, metadata=...)`:
mem0 stores each message as its own memory, embedded alone. Each message carries its turn's
`dia_id` as its `name`, which mem0 keeps as the memory's `actor_id` (only metadata: it is not
embedded and not part of the text), so a result maps back to the turn it came from. Then every
question is one `Memory.search(question, top_k=30, filters={"user_id": <conversation>})` (mem0 2.x
spells `user_id=..., limit=30` so), with mem0's own defaults otherwise: its ranking (the vector
search, plus its keyword and entity scores when their optional packages are installed: the venv
of `bench/mem0-requirements.txt` has neither fastembed nor spaCy, so mem0 ranks by the vector
alone, as a plain `pip install mem0ai` does) and score threshold 0.1.

Prints one JSON object: the ingest (messages, seconds from the first add to the last return,
memories stored), the search seconds of each question, and per question the results in rank
order (their text and the dia_ids they map to).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MEM0_TELEMETRY", "False")

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # see bench/mem0_ingest.py
sys.path.insert(0, str(HERE.parent))

from bench.mem0_ingest import build  # noqa: E402  (after the sys.path fix above)


def dia_ids(result: dict[str, Any], by_text: dict[str, list[str]]) -> list[str]:
    """The turn a mem0 result came from: its actor_id (the message's name), else its text."""
    actor = result.get("actor_id") or (result.get("metadata") or {}).get("actor_id")
    if actor:
        return [actor]
    return by_text.get(result["memory"], [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    job = json.loads(args.job.read_text())
    memory = build(args.data_dir)
    memory.embedding_model.embed("warm up the model", "add")  # load and warm before the clock starts
    sent = stored = 0
    start = time.perf_counter()
    for conv in job["conversations"]:
        for session in conv["sessions"]:
            messages = [{"role": t["role"], "content": t["content"], "name": t["dia_id"]} for t in session["turns"]]
            result = memory.add(
                messages,
                user_id=conv["user_id"],
                run_id=session["run_id"],
                metadata={"session": session["run_id"], "chat_time": session["chat_time"]},
                infer=False,
            )
            sent += len(messages)
            stored += len(result["results"])
    elapsed = time.perf_counter() - start
    by_text: dict[str, dict[str, list[str]]] = {}  # per conversation, a turn's text -> its dia_ids
    for conv in job["conversations"]:
        texts = by_text.setdefault(conv["user_id"], {})
        for session in conv["sessions"]:
            for t in session["turns"]:
                texts.setdefault(t["content"], []).append(t["dia_id"])
    seconds, results = [], []
    for q in job["questions"]:
        t0 = time.perf_counter()
        found = memory.search(q["query"], top_k=job["limit"], filters={"user_id": q["user_id"]})
        seconds.append(time.perf_counter() - t0)
        texts = by_text[q["user_id"]]
        results.append([{"memory": r["memory"], "dia_ids": dia_ids(r, texts)} for r in found["results"]])
    ingest = {"messages": sent, "elapsed_s": round(elapsed, 2), "messages_per_s": round(sent / elapsed, 1)}
    ingest["memories_stored"] = stored
    print(json.dumps({"ingest": ingest, "search_seconds": seconds, "results": results}))


if __name__ == "__main__":
    main()
