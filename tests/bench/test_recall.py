"""The recall benchmark's definitions (bench/recall.py): how a LoCoMo file is replayed and read,
and how a ranked answer is scored. No server, no model: the smoke run covers the rest."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bench.recall import BM25, Conversation, load_locomo, score, session_body, synthetic_locomo


def test_hits_and_recall_within_a_word_budget_skip_what_does_not_fit_whole() -> None:
    ranked = [
        (frozenset({"D1:1"}), 400),  # fits 500
        (frozenset({"D1:2", "D1:3"}), 300),  # does not fit 500 (700): skipped, the next is tried
        (frozenset({"D1:4"}), 100),  # fits 500 (500)
    ]
    s = score(ranked, frozenset({"D1:3", "D1:4"}))
    assert s["hit@1"] == 0.0
    assert s["hit@5"] == s["hit@10"] == 1.0
    assert s["recall@500"] == 0.5  # D1:4 only
    assert s["recall@1000"] == s["recall@2000"] == 1.0
    assert s["words_top10"] == 800


def test_bm25_scores_as_okapi_with_lucene_idf() -> None:
    docs = ["the cat sat", "the dog sat down", "a bird"]
    bm25 = BM25(docs)
    avg = (3 + 4 + 2) / 3
    idf_cat = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    expected = idf_cat * 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * 3 / avg))
    assert math.isclose(bm25.scores("Cat!")[0], expected)
    assert bm25.top("dog sat", 2) == [1, 0]
    assert bm25.scores("unknown words") == [0.0, 0.0, 0.0]


def test_the_replay_and_the_questions_follow_the_data_readme(tmp_path: Path) -> None:
    data = load_locomo(synthetic_locomo(tmp_path / "locomo.json"))
    conv: Conversation = data.conversations[0]
    body = session_body(conv, conv.sessions[0])
    assert body["user_id"] == "synthetic-1"
    assert body["session_id"] == "session_1"
    assert (body["mode"], body["async_mode"]) == ("fast", "async")
    first, second, photo = body["messages"][0], body["messages"][1], body["messages"][2]
    assert first["role"] == "user" and first["content"].startswith("Ann: ")
    assert second["role"] == "assistant" and second["content"].startswith("Bob: ")
    assert photo["content"].endswith("[shares a photo: a photo of pottery class]")
    assert first["chat_time"] == "2:15 pm on 3 May, 2023"
    assert first["message_id"] == "D1:1"
    # category 5 and a question without evidence are not asked; "D1:2; D2:4" is two ids
    assert data.notes["category_5_not_asked"] == 2
    assert data.notes["questions_without_evidence"] == 2
    assert {q.category for q in data.questions} == {1, 2, 3, 4}
    temporal = next(q for q in data.questions if q.category == 2)
    assert temporal.evidence == frozenset({"D1:2", "D2:4"})


def test_the_turn_baselines_leave_torch_on_the_threads_they_found(tmp_path: Path) -> None:
    """`python -m bench` runs every benchmark in one process: a thread count left behind here ran
    the later runs of dedup and search on one thread."""
    torch = pytest.importorskip("torch")
    from bench.recall import turn_baselines

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        data = load_locomo(synthetic_locomo(tmp_path / "locomo.json"))
        baselines = turn_baselines(data, "hash", threads=1)
        assert len(baselines["turn dense"]) == len(data.questions)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
