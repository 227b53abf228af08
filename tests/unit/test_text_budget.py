"""The embedded index's text half scores the query's informative words: a word in more documents
than the budget is left to the vector half (it costs the most and weighs the least), a rare word
is always scored, and a word folded as the tokenizer stores it is counted, not guessed."""

from __future__ import annotations

from pathlib import Path

from memcube.domain.filters import compile_filter
from memcube_local.sqlite.index import SqliteIndex, TermFrequencies
from tests.contract.support import memory


def index_of(tmp_path: Path, budget: int) -> SqliteIndex:
    index = SqliteIndex(tmp_path / "index.db", text_budget=budget)
    docs = [memory(f"m{n:02d}", f"the user likes tea number {n}") for n in range(30)]
    docs.append(memory("m-rare", "the user met Priya at the Café Zanzibar"))
    index.upsert(docs)
    return index


def text_hits(index: SqliteIndex, query: str) -> set[str]:
    return {h.memory_id for h in index.search(["cube-a"], query, [0.1, 0.2, 0.3], None, 50) if h.text is not None}


def test_a_word_past_the_budget_is_left_to_the_vector_half_and_a_rare_one_is_scored(tmp_path: Path) -> None:
    index = index_of(tmp_path, budget=10)
    assert text_hits(index, "the user likes tea") == set()  # 30+ documents each: nothing to score
    assert text_hits(index, "did the user meet priya") == {"m-rare"}
    assert len(index.search(["cube-a"], "the user likes tea", [0.1, 0.2, 0.3], None, 50)) == 31  # vectors still


def test_with_room_in_the_budget_every_word_is_scored(tmp_path: Path) -> None:
    index = index_of(tmp_path, budget=10_000)
    assert len(text_hits(index, "tea")) == 30


def test_words_are_counted_as_the_tokenizer_folds_them(tmp_path: Path) -> None:
    index = index_of(tmp_path, budget=10)
    frequencies = TermFrequencies(budget=10)
    with index._db.read() as cur:
        assert frequencies.informative(cur, ["CAFÉ", "Likes", "unheard"]) == ["unheard", "CAFÉ"]


def test_a_selective_filter_finds_the_best_passing_text_matches_past_the_first_ranked_rows(tmp_path: Path) -> None:
    """The text half ranks the best `8 x limit` matches first; when too few of them pass the
    filter, the rest are tested best first until `limit` pass: the answer is the passing
    documents of best BM25, as if every match had been tested."""
    index = SqliteIndex(tmp_path / "index.db")
    docs = []
    for n in range(200):  # BM25 favours the shorter documents: rank grows with n
        doc = memory(f"m{n:03d}", "tea " + "filler " * n)
        doc.metadata.info = {"topic": "travel" if n % 25 == 24 else "other"}  # 8 pass, none in the best 40
        docs.append(doc)
    index.upsert(docs)
    travel = compile_filter({"info.topic": "travel"})
    text = [h.memory_id for h in index.search(["cube-a"], "tea", [], travel, 5) if h.text is not None]
    assert text == ["m024", "m049", "m074", "m099", "m124"]
    everything = [h.memory_id for h in index.search(["cube-a"], "tea", [], travel, 50) if h.text is not None]
    assert everything == [f"m{n:03d}" for n in range(24, 200, 25)]


def test_a_kind_the_cubes_do_not_hold_is_answered_by_one_index_probe(tmp_path: Path) -> None:
    """The preference and tool-memory searches of a default search ask for kinds most cubes do
    not hold: no vector or BM25 ranking is done for them (it made such a search 7x slower)."""
    index = index_of(tmp_path, budget=10_000)
    statements: list[str] = []
    with index._db.read() as cur:
        cur.connection.set_trace_callback(statements.append)
    try:
        tools = compile_filter({"memory_type": {"in": ["ToolSchemaMemory", "ToolTrajectoryMemory"]}})
        assert index.search(["cube-a"], "tea", [0.1, 0.2, 0.3], tools, 10) == []
        assert not any("bm25" in s or "vector" in s for s in statements)
        under_a_filter = compile_filter({"and": [{"info.topic": "travel"}, {"memory_type": "ToolSchemaMemory"}]})
        assert (
            index.search(["cube-a"], "tea", [0.1, 0.2, 0.3], under_a_filter, 10) == []
        )  # the kind under the request's filter
        assert not any("bm25" in s or "vector" in s or "json_each" in s for s in statements)
        statements.clear()
        kept = compile_filter({"memory_type": "LongTermMemory"})
        assert index.search(["cube-a"], "tea", [0.1, 0.2, 0.3], kept, 10)
        assert any("bm25" in s for s in statements)
    finally:
        with index._db.read() as cur:
            cur.connection.set_trace_callback(None)
        index.close()
