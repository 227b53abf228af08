"""The embedded index's text half scores the query's informative words: a word in more documents
than the budget is left to the vector half (it costs the most and weighs the least), a rare word
is always scored, and a word folded as the tokenizer stores it is counted, not guessed."""

from __future__ import annotations

from pathlib import Path

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
