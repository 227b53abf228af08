"""The search-index contract: upsert by id, idempotent delete, per-cube ids; then text search for
the indexes that offer it (always confined to one cube)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from memcube.domain.errors import EmbeddingMismatch
from memcube.domain.model import MemoryItem
from memcube.ports import SearchIndex
from tests.contract.support import TextIndex, close, day, expiring, memory

# --- SearchIndex: every index --------------------------------------------------------------------


def test_upsert_twice_by_the_same_id_keeps_one_doc(index: SearchIndex) -> None:
    item = memory("m1", "alice likes tea")
    index.upsert([item])
    index.upsert([item])
    index.upsert([item, item.model_copy(deep=True)])
    assert index.ids("cube-a") == {"m1"}


def test_upsert_overwrites_the_previous_doc_of_that_id(index: SearchIndex) -> None:
    index.upsert([memory("m1", "alice likes tea", cube="cube-a")])
    index.upsert([memory("m1", "alice likes tea", cube="cube-b")])
    assert (index.ids("cube-a"), index.ids("cube-b")) == (set(), {"m1"})


def test_stamps_give_each_indexed_versions_updated_at_per_cube(index: SearchIndex) -> None:
    first = memory("m1", "alice likes tea", created_at="2026-01-01T00:00:00.000Z")
    index.upsert([first, memory("m2", "bob likes coffee", cube="cube-b")])
    assert index.stamps("cube-a") == {"m1": "2026-01-01T00:00:00.000Z"}
    later = first.model_copy(deep=True)
    later.metadata.updated_at = "2026-01-02T03:04:05.678Z"
    index.upsert([later])
    assert index.stamps("cube-a") == {"m1": "2026-01-02T03:04:05.678Z"}
    index.delete("cube-a", ["m1"])
    assert index.stamps("cube-a") == {}


def test_delete_is_idempotent_and_ignores_unknown_ids(index: SearchIndex) -> None:
    index.upsert([memory("m1", "alice likes tea"), memory("m2", "bob likes coffee")])
    index.delete("cube-a", ["m1"])
    index.delete("cube-a", ["m1", "never-there"])
    index.delete("cube-a", [])
    assert index.ids("cube-a") == {"m2"}


def test_ids_are_per_cube_and_follow_upserts_and_deletes(index: SearchIndex) -> None:
    assert index.ids("cube-a") == set()
    index.upsert([memory("m1", "one"), memory("m2", "two"), memory("m3", "three", cube="cube-b")])
    assert (index.ids("cube-a"), index.ids("cube-b")) == ({"m1", "m2"}, {"m3"})
    index.delete("cube-a", ["m2"])
    index.delete("cube-b", ["m3"])
    index.upsert([memory("m4", "four")])
    assert (index.ids("cube-a"), index.ids("cube-b")) == ({"m1", "m4"}, set())
    index.upsert([memory("m2", "two again")])
    assert index.ids("cube-a") == {"m1", "m2", "m4"}


def test_ids_include_docs_of_every_status(index: SearchIndex) -> None:
    """Reconciliation compares ids() with the store's items of any status."""
    archived = memory("m1", "old fact")
    archived.metadata.status = "archived"
    index.upsert([archived, memory("m2", "fact")])
    assert index.ids("cube-a") == {"m1", "m2"}


def test_docs_survive_reopening(open_index: Callable[[], SearchIndex]) -> None:
    first = open_index()
    first.upsert([memory("m1", "alice likes tea"), memory("m2", "bob likes coffee")])
    first.delete("cube-a", ["m2"])
    close(first)
    assert open_index().ids("cube-a") == {"m1"}


# --- text search ---------------------------------------------------------------------------------


def test_text_search_finds_a_just_upserted_item_in_its_cube_only(text_index: TextIndex) -> None:
    text_index.upsert([memory("m1", "alice likes green tea")])
    assert text_index.text_search("cube-a", "green tea", 10) == ["m1"]
    assert text_index.text_search("cube-b", "green tea", 10) == []
    text_index.upsert([memory("m2", "alice likes green tea", cube="cube-b")])
    assert text_index.text_search("cube-a", "green tea", 10) == ["m1"]
    assert text_index.text_search("cube-b", "green tea", 10) == ["m2"]


def test_text_search_forgets_deleted_items(text_index: TextIndex) -> None:
    text_index.upsert([memory("m1", "alice likes green tea"), memory("m2", "alice likes green tea", cube="cube-b")])
    text_index.delete("cube-a", ["m1"])
    text_index.delete("cube-a", ["m1"])
    assert text_index.text_search("cube-a", "green tea", 10) == []
    assert text_index.text_search("cube-b", "green tea", 10) == ["m2"]


def test_text_search_sees_only_the_latest_text_of_a_reupserted_item(text_index: TextIndex) -> None:
    text_index.upsert([memory("m1", "alice likes green tea")])
    text_index.upsert([memory("m1", "alice moved to lisbon")])
    assert text_index.text_search("cube-a", "tea", 10) == []
    assert text_index.text_search("cube-a", "lisbon", 10) == ["m1"]


def test_text_search_returns_activated_items_only(text_index: TextIndex) -> None:
    archived = memory("m1", "alice likes green tea")
    archived.metadata.status = "archived"
    text_index.upsert([archived, memory("m2", "bob likes green tea")])
    assert text_index.text_search("cube-a", "green tea", 10) == ["m2"]


def test_text_search_needs_every_word_and_honours_the_limit(text_index: TextIndex) -> None:
    text_index.upsert([memory(f"m{n}", f"fact number {n} about tea") for n in range(5)])
    assert text_index.text_search("cube-a", "tea 3", 10) == ["m3"]
    assert len(text_index.text_search("cube-a", "tea", 2)) == 2
    assert text_index.text_search("cube-a", "tea coffee", 10) == []
    assert text_index.text_search("cube-a", "   ", 10) == []


@pytest.mark.parametrize("query", ['"', 'tea" OR "x', "tea AND", "NEAR(", "tea*", "-tea", "coffee)", "key:tea"])
def test_text_search_reads_query_syntax_as_plain_words(text_index: TextIndex, query: str) -> None:
    text_index.upsert([memory("m1", "alice likes tea")])
    assert text_index.text_search("cube-a", query, 10) in ([], ["m1"])


def test_text_search_finds_a_cjk_word_inside_a_sentence(text_index: TextIndex) -> None:
    text_index.upsert([memory("m1", "我喜欢北京")])
    assert text_index.text_search("cube-a", "北京", 10) == ["m1"]


def test_search_is_confined_to_its_cubes_activated_docs_and_the_filter(index: SearchIndex) -> None:
    from memcube.domain.filters import compile_filter

    tea = memory("m1", "alice drinks green tea")
    tea.metadata.custom_tags = ["drinks"]
    archived = memory("m2", "alice drank tea once")
    archived.metadata.status = "archived"
    index.upsert([tea, archived, memory("m3", "alice drinks tea", cube="cube-b"), memory("m4", "alice drinks milk")])
    hits = index.search(["cube-a"], "tea", [0.1, 0.2, 0.3], compile_filter({"custom_tags": "drinks"}), 10)
    assert [h.memory_id for h in hits] == ["m1"]
    assert hits[0].cube_id == "cube-a"
    both = {h.memory_id for h in index.search(["cube-a", "cube-b"], "tea", [0.1, 0.2, 0.3], None, 10)}
    assert both >= {"m1", "m3"}
    assert "m2" not in both


def _by(item_id: str, text: str, cube: str, user: str) -> MemoryItem:
    item = memory(item_id, text, cube=cube)
    item.metadata.user_id = user
    return item


def test_delete_counts_only_the_documents_that_were_indexed(index: SearchIndex) -> None:
    index.upsert([memory("m1", "alice likes tea"), memory("m2", "bob likes coffee")])
    assert index.delete("cube-a", ["m1", "m1", "never-there"]) == 1
    assert index.delete("cube-a", ["m1"]) == 0
    assert index.ids("cube-a") == {"m2"}


def test_delete_where_removes_a_users_documents_in_one_cube_only(index: SearchIndex) -> None:
    index.upsert([
        memory("a1", "alice one"),
        memory("a2", "alice two", cube="cube-b"),
        _by("b1", "bob one", "cube-a", "bob"),
    ])  # fmt: skip
    assert index.delete_where("cube-a", "u1") == 1
    assert (index.ids("cube-a"), index.ids("cube-b")) == ({"b1"}, {"a2"})
    assert index.delete_where("cube-a", "u1") == 0


def test_delete_where_without_a_user_empties_the_cube_of_every_status(index: SearchIndex) -> None:
    archived = memory("m1", "old fact")
    archived.metadata.status = "archived"
    index.upsert(
        [archived, memory("m2", "fact"), _by("m3", "bob's", "cube-a", "bob"), memory("m4", "x", cube="cube-b")]
    )
    assert index.delete_where("cube-a", None) == 3
    assert (index.ids("cube-a"), index.ids("cube-b")) == (set(), {"m4"})


# --- the embedding model: recorded by the first vectors, others refused ----------------------------


def _embedded(memory_id: str, model: str, dimension: int, text: str = "alice likes tea") -> MemoryItem:
    item = memory(memory_id, text)
    item.metadata.embedding_model = model
    item.metadata.embedding = [1.0] + [0.0] * (dimension - 1)
    return item


def test_the_first_vectors_record_their_model(index: SearchIndex) -> None:
    assert index.embedding_model() is None
    index.upsert([_embedded("m1", "model-a", 3)])
    assert index.embedding_model() == "model-a"


def test_vectors_of_another_model_are_refused_and_nothing_of_the_batch_is_written(index: SearchIndex) -> None:
    """Cosines between two models' vectors mean nothing: a mixed index would rank at random."""
    index.upsert([_embedded("m1", "model-a", 3)])
    with pytest.raises(EmbeddingMismatch, match=r"model-a \(3-d\).*model-b \(3-d\).*memcube reindex") as caught:
        index.upsert([_embedded("m2", "model-a", 3), _embedded("m3", "model-b", 3)])
    assert (caught.value.http_status, caught.value.code) == (409, "embedding_mismatch")
    assert index.ids("cube-a") == {"m1"}
    assert index.embedding_model() == "model-a"


def test_vectors_of_another_dimension_are_refused(index: SearchIndex) -> None:
    index.upsert([_embedded("m1", "model-a", 3)])
    with pytest.raises(EmbeddingMismatch, match=r"model-a \(4-d\)"):
        index.upsert([_embedded("m2", "model-a", 4)])


def test_a_first_batch_mixing_models_is_refused_whole(index: SearchIndex) -> None:
    with pytest.raises(EmbeddingMismatch):
        index.upsert([_embedded("m1", "model-a", 3), _embedded("m2", "model-b", 3)])
    assert index.ids("cube-a") == set()


def test_items_without_a_vector_are_indexed_whatever_the_model(index: SearchIndex) -> None:
    index.upsert([_embedded("m1", "model-a", 3)])
    bare = memory("m2", "bob likes coffee")
    bare.metadata.embedding = None
    index.upsert([bare])
    assert index.ids("cube-a") == {"m1", "m2"}


def test_a_query_vector_of_another_dimension_is_refused(index: SearchIndex) -> None:
    index.upsert([_embedded("m1", "model-a", 3)])
    with pytest.raises(EmbeddingMismatch, match=r"model-a \(3-d\).*a 4-d query vector"):
        index.search(["cube-a"], "tea", [0.5, 0.5, 0.5, 0.5], None, 10)
    assert [h.memory_id for h in index.search(["cube-a"], "tea", [], None, 10)] == ["m1"]  # text alone: fine


def test_reset_drops_every_document_and_the_recorded_model(index: SearchIndex) -> None:
    index.upsert([_embedded("m1", "model-a", 3), _embedded("m2", "model-a", 3)])
    index.reset()
    assert (index.ids("cube-a"), index.embedding_model()) == (set(), None)
    index.upsert([_embedded("m3", "model-b", 3)])
    assert (index.ids("cube-a"), index.embedding_model()) == ({"m3"}, "model-b")


def test_an_emptied_local_index_takes_any_model_again(index: SearchIndex) -> None:
    """Local indexes only: OpenSearch keeps its record until `reset()` (its document count is only
    eventually consistent on Serverless, and its vector field's size is fixed anyway)."""
    index.upsert([_embedded("m1", "model-a", 3), _embedded("m2", "model-a", 3)])
    index.delete("cube-a", ["m1"])
    assert index.embedding_model() == "model-a"  # a document is left: still recorded
    index.delete_where("cube-a", None)
    assert index.embedding_model() is None
    index.upsert([_embedded("m3", "model-b", 4)])
    assert index.embedding_model() == "model-b"


def test_the_recorded_model_survives_reopening(open_index: Callable[[], SearchIndex]) -> None:
    first = open_index()
    first.upsert([_embedded("m1", "model-a", 3)])
    close(first)
    again = open_index()
    assert again.embedding_model() == "model-a"
    with pytest.raises(EmbeddingMismatch):
        again.upsert([_embedded("m2", "model-b", 3)])


# --- vector search: exact nearest neighbours, in step with every write ------------------------------


def _pointing(item_id: str, vector: list[float], cube: str = "cube-a") -> MemoryItem:
    item = memory(item_id, f"note {item_id}", cube=cube)
    item.metadata.embedding = vector
    return item


def _nearest(index: SearchIndex, cubes: list[str], vector: list[float], limit: int = 10) -> list[str]:
    hits = [h for h in index.search(cubes, "", vector, None, limit) if h.cosine is not None]
    return [h.memory_id for h in sorted(hits, key=lambda h: (-(h.cosine or 0.0), h.memory_id))]


def test_vector_search_ranks_by_cosine_across_cubes_and_honours_the_limit(index: SearchIndex) -> None:
    index.upsert(
        [
            _pointing("far", [0.0, 1.0, 0.0]),
            _pointing("near", [1.0, 0.0, 0.0]),
            _pointing("mid", [0.6, 0.8, 0.0]),
            _pointing("other-cube", [0.8, 0.6, 0.0], cube="cube-b"),
        ]
    )
    assert _nearest(index, ["cube-a"], [1.0, 0.0, 0.0]) == ["near", "mid", "far"]
    assert _nearest(index, ["cube-a", "cube-b"], [1.0, 0.0, 0.0], limit=2) == ["near", "other-cube"]
    hit = next(h for h in index.search(["cube-a"], "", [1.0, 0.0, 0.0], None, 1) if h.memory_id == "near")
    assert hit.cosine == pytest.approx(1.0)


def test_vector_search_follows_upserts_archivals_and_deletes_made_after_it_ran(index: SearchIndex) -> None:
    """An index that keeps vectors in memory must never answer from a stale copy."""
    index.upsert([_pointing("a", [1.0, 0.0, 0.0]), _pointing("b", [0.0, 1.0, 0.0]), _pointing("c", [0.0, 0.0, 1.0])])
    assert _nearest(index, ["cube-a"], [1.0, 0.0, 0.0]) == ["a", "b", "c"]
    closer = _pointing("d", [0.9, 0.1, 0.0])
    archived = _pointing("a", [1.0, 0.0, 0.0])
    archived.metadata.status = "archived"
    moved = _pointing("b", [1.0, 0.0, 0.0])  # b's vector changes: now the nearest
    index.upsert([closer, archived, moved])
    index.delete("cube-a", ["c"])
    assert _nearest(index, ["cube-a"], [1.0, 0.0, 0.0]) == ["b", "d"]
    assert index.delete_where("cube-a", None) == 3
    assert _nearest(index, ["cube-a"], [1.0, 0.0, 0.0]) == []
    index.upsert([_pointing("e", [0.0, 1.0, 0.0])])
    assert _nearest(index, ["cube-a"], [1.0, 0.0, 0.0]) == ["e"]
    index.reset()
    assert _nearest(index, ["cube-a"], [1.0, 0.0, 0.0]) == []


def test_vector_search_applies_the_filter_before_the_limit(index: SearchIndex) -> None:
    from memcube.domain.filters import compile_filter

    items = [_pointing(f"m{n}", [1.0, n / 10, 0.0]) for n in range(6)]
    items[5].metadata.custom_tags = ["rare"]  # the farthest one is the only match
    index.upsert(items)
    hits = index.search(["cube-a"], "", [1.0, 0.0, 0.0], compile_filter({"custom_tags": "rare"}), 2)
    assert [h.memory_id for h in hits] == ["m5"]


def test_text_candidates_come_from_the_searched_cubes_even_when_others_match_better(index: SearchIndex) -> None:
    from memcube.domain.filters import compile_filter

    crowd = [memory(f"b{n:02d}", "tea tea tea tea", cube="cube-b") for n in range(40)]  # the best matches
    mine = [memory("a1", "green tea with mint and honey"), memory("a2", "a long story about tea and a cat")]
    mine[1].metadata.custom_tags = ["story"]
    index.upsert([*crowd, *mine])
    texts = [h for h in index.search(["cube-a"], "tea", [], None, 2) if h.text]
    assert sorted(h.memory_id for h in texts) == ["a1", "a2"]
    assert all(h.cube_id == "cube-a" for h in texts)
    story = [h.memory_id for h in index.search(["cube-a"], "tea", [], compile_filter({"custom_tags": "story"}), 2)]
    assert story == ["a2"]


# --- expiry (domain.expiry) ----------------------------------------------------------------------


def test_search_live_at_leaves_expired_documents_out_before_ranking(index: SearchIndex) -> None:
    index.upsert(
        [
            expiring("m1", "alice drinks tea", None),
            expiring("m2", "alice drinks tea daily", 1_000),
            expiring("m3", "alice drinks tea often", 3_000),
        ]
    )
    live = {h.memory_id for h in index.search(["cube-a"], "tea", [0.1, 0.2, 0.3], None, 10, live_at=2_000)}
    assert live == {"m1", "m3"}
    assert {h.memory_id for h in index.search(["cube-a"], "tea", [0.1, 0.2, 0.3], None, 10)} == {"m1", "m2", "m3"}


def test_expired_documents_names_each_documents_cube_across_cubes(index: SearchIndex) -> None:
    index.upsert(
        [
            expiring("m1", "alice drinks tea", None),
            expiring("m2", "alice drinks coffee", 2_000),
            expiring("m3", "bob drinks cocoa", 1_000, cube="cube-b"),
            expiring("m4", "alice drinks juice", 9_000),
        ]
    )
    assert index.expired_documents(5_000, 10) == [("cube-b", "m3"), ("cube-a", "m2")]
    index.delete("cube-b", ["m3"])
    assert index.expired_documents(5_000, 10) == [("cube-a", "m2")]


# --- select: a filtered listing's page ----------------------------------------------------------


def _tagged(item_id: str, text: str, created: int, tags: list[str], cube: str = "cube-a") -> MemoryItem:
    item = memory(item_id, text, cube=cube, created_at=day(created))
    item.metadata.custom_tags = tags
    item.metadata.info = {"year": f"202{created % 2}"}
    return item


def test_select_pages_the_cubes_activated_docs_that_pass_the_filter_oldest_first(index: SearchIndex) -> None:
    from memcube.domain.filters import compile_filter

    archived = _tagged("m0", "an archived trip", 1, ["travel"])
    archived.metadata.status = "archived"
    index.upsert(
        [
            _tagged("m5", "a fifth trip", 5, ["travel"]),
            _tagged("m3", "a third trip", 3, ["travel"]),
            _tagged("m2", "bread", 2, ["food"]),
            _tagged("m4", "a fourth trip", 4, ["travel", "food"]),
            _tagged("m3b", "another trip that day", 3, ["travel"]),
            archived,
            _tagged("x1", "someone else's trip", 1, ["travel"], cube="cube-b"),
        ]
    )
    travel = compile_filter({"custom_tags": "travel"})
    assert travel is not None
    pages = [index.select("cube-a", travel, offset, 2) for offset in (0, 2, 4)]
    assert pages == [(["m3", "m3b"], 4), (["m4", "m5"], 4), ([], 4)]  # created_at, then id
    both = compile_filter({"and": [{"custom_tags": "travel"}, {"info.year": "2021"}]})
    assert both is not None
    assert index.select("cube-a", both, 0, 10) == (["m3", "m3b", "m5"], 3)
    either = compile_filter({"or": [{"custom_tags": {"in": ["food"]}}, {"memory": "x"}]})
    assert either is not None
    assert index.select("cube-a", either, 0, 10) == (["m2", "m4"], 2)
    assert index.select("cube-c", travel, 0, 10) == ([], 0)


def test_select_live_at_leaves_expired_documents_out_of_the_page_and_the_total(index: SearchIndex) -> None:
    from memcube.domain.filters import compile_filter

    index.upsert(
        [
            expiring("m1", "alice drinks tea", None),
            expiring("m2", "alice drinks tea daily", 1_000),
            expiring("m3", "alice drinks tea often", 3_000),
        ]
    )
    flt = compile_filter({"memory_type": "LongTermMemory"})
    assert flt is not None
    assert index.select("cube-a", flt, 0, 10, live_at=2_000) == (["m1", "m3"], 2)
    assert index.select("cube-a", flt, 0, 10, live_at=3_000) == (["m1"], 1)  # the expiry instant is expired
    assert index.select("cube-a", flt, 0, 10)[1] == 3  # without live_at: every activated document


def test_memory_type_filters_select_by_kind_with_each_equality_operator(index: SearchIndex) -> None:
    """Kind filters (what the preference and tool-memory searches send) give the same answers on
    every adapter, including none for a kind the cube does not hold."""
    from memcube.domain.filters import compile_filter

    user = memory("m1", "alice drinks tea")
    user.metadata.memory_type = "UserMemory"
    tool = memory("m2", "alice called the tea tool")
    tool.metadata.memory_type = "ToolTrajectoryMemory"
    other_cube = memory("m4", "alice drinks tea too", cube="cube-b")
    other_cube.metadata.memory_type = "ToolSchemaMemory"
    index.upsert([user, tool, memory("m3", "alice drinks tea daily"), other_cube])

    def found(raw: dict[str, object]) -> set[str]:
        flt = compile_filter(raw)
        return {h.memory_id for h in index.search(["cube-a"], "tea", [0.1, 0.2, 0.3], flt, 10)}

    assert found({"memory_type": "UserMemory"}) == {"m1"}
    assert found({"memory_type": {"ne": "UserMemory"}}) == {"m2", "m3"}
    assert found({"memory_type": {"in": ["ToolSchemaMemory", "ToolTrajectoryMemory"]}}) == {"m2"}
    assert found({"memory_type": {"nin": ["ToolTrajectoryMemory", "LongTermMemory"]}}) == {"m1"}
    assert found({"memory_type": {"in": ["ToolSchemaMemory"]}}) == set()  # held only by another cube
    assert found({"and": [{"memory_type": "UserMemory"}, {"memory_type": {"ne": "UserMemory"}}]}) == set()
    assert found({"or": [{"memory_type": "UserMemory"}, {"memory_type": "LongTermMemory"}]}) == {"m1", "m3"}
