"""The ingest benchmark's definitions (bench/ingest.py): the LoCoMo replay it sends, the texts it
gives the embedder-limit run, and how a profile sample is attributed. The smoke run covers the rest."""

from __future__ import annotations

from pathlib import Path

from bench.corpus import generate, to_jsonl
from bench.ingest import add_body, embedded_texts, locomo_sessions, memcube_run, stage_of, thread_group
from bench.recall import load_locomo, session_body, synthetic_locomo


def test_the_locomo_replay_is_the_recall_benchmarks_one_add_per_session(tmp_path: Path) -> None:
    path = synthetic_locomo(tmp_path / "locomo.json")
    expected = [session_body(c, s) for c in load_locomo(path).conversations for s in c.sessions]
    assert [add_body(s) for s in locomo_sessions(path)] == expected
    assert {b["user_id"] for b in expected} == {"synthetic-1", "synthetic-2"}  # one cube per conversation


def test_the_embedder_limit_embeds_as_many_texts_as_the_worker_places(tmp_path: Path) -> None:
    """One outcome per embedded draft in fast mode: the limit run embeds exactly the worker's texts."""
    from memcube.settings import Settings
    from memcube_local.wiring import LocalContainer

    sessions = generate(4, seed=3, turns=(20, 60))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(to_jsonl(sessions))
    placed = memcube_run(corpus, tmp_path / "data", "hash")
    embedder = LocalContainer(Settings(backend="embedded", data_dir=tmp_path / "other", embedder="hash")).embedder
    texts = embedded_texts(sessions, embedder.max_tokens)
    assert len(texts) > len(sessions)  # long sessions: several windows each
    assert sum(placed["outcomes"].values()) == len(texts)


def test_a_profile_sample_counts_for_its_innermost_named_stage() -> None:
    organizer = "Organizer.place (memcube/domain/organizer.py:200)"
    search = "SqliteIndex.search (memcube_local/sqlite/index.py:300)"
    tx = "SqliteDb.tx (memcube_local/sqlite/db.py:42)"
    assert stage_of(["Thread.run (threading.py:982)", organizer, search, tx]) == (
        "organizer: vector neighbours (index search)"
    )
    assert stage_of([organizer, "cosine (memcube/domain/organizer.py:126)"]) == "organizer: other"
    assert stage_of(["IngestService.handle (memcube/domain/ingest.py:10)", tx]) == (
        "worker: message parse and item building"
    )
    assert stage_of(["MiniLMEmbedder.embed (memcube_local/minilm.py:92)"]).startswith("embedding: in `embed` itself")
    assert stage_of(["f (x.py:1)"]) == "other"
    assert thread_group("thread (123): memcube-worker-1") == "worker threads"
    assert thread_group("thread (123): memcube-worker-start") == "other threads"
    assert thread_group("thread (9): MainThread") == "main thread (HTTP server, event loop)"
