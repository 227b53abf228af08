"""Embedding models: the container builds the configured embedder, and switching
`MEMCUBE_EMBEDDER` takes one `memcube reindex`, which embeds everything again. The OpenSearch
index's record of its model (on osmem-server): tests/realserver/test_opensearch_embedding_guard.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memcube.adapters.hash_embedder import HashEmbedder
from memcube.domain.errors import Conflict, EmbeddingMismatch
from memcube.domain.maintenance import Maintenance
from memcube.domain.model import MemoryItem
from memcube.ports import MemoryStore, SearchIndex
from memcube.settings import Settings
from memcube_local.cli import main
from memcube_local.sqlite.index import SqliteIndex
from memcube_local.wiring import LocalContainer
from tests.contract.support import memory
from tests.doubles import InMemoryIndex
from tests.doubles.memories import InMemoryMemories

# --- the container builds what MEMCUBE_EMBEDDER names -------------------------------------------


@pytest.mark.parametrize(
    ("settings", "kind", "model_id", "dimension"),
    [
        ({"backend": "memory"}, "HashEmbedder", "hash-v1-384", 384),
        ({"backend": "embedded"}, "MiniLMEmbedder", "minilm-l6-v2-384", 384),
        ({"backend": "embedded", "embedder": "hash", "embedding_dimension": 64}, "HashEmbedder", "hash-v1-64", 64),
        ({"backend": "memory", "embedder": "bedrock", "embedding_dimension": 1024}, "TitanEmbedder", None, 1024),
        (
            {
                "backend": "memory",
                "embedder": "openai",
                "embedding_base_url": "http://127.0.0.1:9/v1",
                "embedding_model": "text-embedding-3-small",
                "embedding_dimension": 512,
                "embedding_api_key": "sk-test",
            },
            "OpenAICompatibleEmbedder",
            None,
            512,
        ),
    ],
    ids=["memory-default", "embedded-default", "hash", "bedrock", "openai"],
)
def test_the_container_builds_the_configured_embedder_without_calling_it(
    settings: dict[str, Any], kind: str, model_id: str | None, dimension: int, tmp_path: Path
) -> None:
    """Built lazily and for free: no model loaded, no endpoint called (the port is bound here)."""
    embedder = LocalContainer(Settings(data_dir=tmp_path, **settings)).embedder
    assert type(embedder).__name__ == kind
    assert embedder.dimension == dimension
    if model_id is not None:
        assert embedder.model_id == model_id


# --- switching models: reindex embeds everything again ---------------------------------------------

TEXTS = ["alice likes green tea", "bob moved to Lisbon", "carol plays the cello", "dave drinks coffee"]


@pytest.fixture(params=["memory", "sqlite"])
def local_index(request: pytest.FixtureRequest, tmp_path: Path) -> SearchIndex:
    return InMemoryIndex() if request.param == "memory" else SqliteIndex(tmp_path / "index.db")


def _by(embedder: HashEmbedder, memory_id: str, text: str, cube: str = "c1") -> MemoryItem:
    """An item as the worker writes it: embedded by `embedder`."""
    item = memory(memory_id, text, cube=cube)
    item.metadata.embedding, item.metadata.embedding_model = embedder.embed([text])[0], embedder.model_id
    return item


def _stored(store: MemoryStore, index: SearchIndex) -> None:
    """TEXTS written and indexed by the 384-d hash embedder, in two cubes."""
    items = [_by(HashEmbedder(384), f"m{n}", text, "c1" if n % 2 else "c2") for n, text in enumerate(TEXTS)]
    for item in items:
        store.put_memory(item)
    index.upsert(items)


def test_reindex_after_an_embedder_switch_rebuilds_the_index_and_the_stored_vectors(local_index: SearchIndex) -> None:
    store, new = InMemoryMemories(), HashEmbedder(64)
    _stored(store, local_index)
    with pytest.raises(EmbeddingMismatch):  # what the worker meets after the switch, until the reindex
        local_index.upsert([_by(new, "m9", "erin likes jazz")])
    assert Maintenance(store, local_index, new).reindex() == len(TEXTS)
    assert local_index.embedding_model() == "hash-v1-64"
    assert local_index.ids("c1") | local_index.ids("c2") == {"m0", "m1", "m2", "m3"}
    for item in store.iter_memories():
        assert (item.metadata.embedding_model, item.metadata.embedding) == (new.model_id, new.embed([item.memory])[0])
        assert item.metadata.version == 1  # the memory did not change, only how it is embedded
    [query] = new.embed(["bob moved to Lisbon"])
    best = max(local_index.search(["c1", "c2"], "", query, None, 10), key=lambda h: h.cosine or -1.0)
    assert best.memory_id == "m1"


def test_reindex_of_one_cube_refuses_an_embedder_switch(local_index: SearchIndex) -> None:
    """Rebuilding for another model empties the whole index: one cube alone would lose the rest."""
    store = InMemoryMemories()
    _stored(store, local_index)
    with pytest.raises(Conflict, match=r"hash-v1-384.*hash-v1-64.*without --cube"):
        Maintenance(store, local_index, HashEmbedder(64)).reindex("c1")
    assert (local_index.embedding_model(), local_index.ids("c1")) == ("hash-v1-384", {"m1", "m3"})


def test_reindex_with_the_same_embedder_rewrites_nothing_in_the_store(local_index: SearchIndex) -> None:
    class CountingStore(InMemoryMemories):
        updates = 0

        def update_memory(self, item: MemoryItem, expected_version: int) -> bool:
            self.updates += 1
            return super().update_memory(item, expected_version)

    store = CountingStore()
    _stored(store, local_index)
    assert Maintenance(store, local_index, HashEmbedder(384)).reindex() == len(TEXTS)
    assert store.updates == 0


def test_reconcile_repairs_with_the_current_embedders_vectors(local_index: SearchIndex) -> None:
    store = InMemoryMemories()
    _stored(store, local_index)
    local_index.delete("c1", ["m1"])
    store_item = store.get_memory("m1")
    assert store_item is not None
    store.update_memory(_by(HashEmbedder(32), "m1", store_item.memory), expected_version=1)  # an older model's
    report = Maintenance(store, local_index, HashEmbedder(384)).reconcile("c1", repair=True)
    assert (report.missing_from_index, local_index.ids("c1")) == (["m1"], {"m1", "m3"})
    repaired = store.get_memory("m1")
    assert repaired is not None
    assert repaired.metadata.embedding_model == "hash-v1-384"


def test_switching_memcube_embedder_then_running_reindex_rebuilds_the_embedded_index(tmp_path: Path) -> None:
    before = LocalContainer(Settings(backend="embedded", data_dir=tmp_path, embedder="hash"))
    _stored(before.memories, before.index)
    before.close()
    env = {"MEMCUBE_BACKEND": "embedded", "MEMCUBE_EMBEDDER": "hash", "MEMCUBE_EMBEDDING_DIMENSION": "64"}
    result = CliRunner().invoke(main, ["reindex", "--data-dir", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    assert f"reindexed {len(TEXTS)} memories" in result.output
    after = LocalContainer(Settings(backend="embedded", data_dir=tmp_path, embedder="hash", embedding_dimension=64))
    try:
        assert after.index.embedding_model() == "hash-v1-64"
        assert {i.metadata.embedding_model for i in after.memories.iter_memories()} == {"hash-v1-64"}
    finally:
        after.close()
