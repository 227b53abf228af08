"""Embedding models: the container builds the configured embedder, the OpenSearch index records
its model like the local indexes (the index contract's embedding tests, on osmem-server), and
switching `MEMCUBE_EMBEDDER` takes one `memcube reindex`, which embeds everything again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memcube.adapters.hash_embedder import HashEmbedder
from memcube.adapters.memory import InMemoryIndex
from memcube.adapters.memory.memories import InMemoryMemories
from memcube.adapters.opensearch_index import IndexWriteError, OpenSearchIndex, document, mapping
from memcube.adapters.sqlite.index import SqliteIndex
from memcube.cli import main
from memcube.domain.errors import Conflict, EmbeddingMismatch
from memcube.domain.maintenance import Maintenance
from memcube.domain.model import MemoryItem
from memcube.ports import MemoryStore, SearchIndex
from memcube.settings import Settings
from memcube.wiring import Container
from tests.contract.support import memory
from tests.contract.test_index_contract import (  # noqa: F401 - collected here against OpenSearch
    test_a_first_batch_mixing_models_is_refused_whole,
    test_a_query_vector_of_another_dimension_is_refused,
    test_items_without_a_vector_are_indexed_whatever_the_model,
    test_reset_drops_every_document_and_the_recorded_model,
    test_the_first_vectors_record_their_model,
    test_the_recorded_model_survives_reopening,
    test_vectors_of_another_dimension_are_refused,
    test_vectors_of_another_model_are_refused_and_nothing_of_the_batch_is_written,
)

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
    embedder = Container(Settings(data_dir=tmp_path, **settings)).embedder
    assert type(embedder).__name__ == kind
    assert embedder.dimension == dimension
    if model_id is not None:
        assert embedder.model_id == model_id


@pytest.mark.realserver
def test_the_opensearch_vector_field_takes_the_embedders_dimension(osmem_clone: Any) -> None:
    settings = Settings(
        backend="aws",
        queue_url="http://127.0.0.1:9/queue",
        table_name="memcube",
        opensearch_endpoint=osmem_clone.url,
        opensearch_service="es",
        opensearch_auth="none",
        embedder="hash",
        embedding_dimension=64,
    )
    index = Container(settings).index
    assert isinstance(index, OpenSearchIndex)
    index.bootstrap()
    got = index.client.indices.get_mapping(index=settings.opensearch_index)[settings.opensearch_index]
    assert got["mappings"]["properties"]["embedding"]["dimension"] == 64


# --- OpenSearch: the record lives in the mapping's _meta (osmem-server) ------------------------------


def _opensearch(url: str, name: str, dimension: int = 3) -> OpenSearchIndex:
    # osmem-server has no k-NN engine: the record and the checks do not need one.
    index = OpenSearchIndex(url, index=name, service="es", auth="none", dimension=dimension, vector_search=False)
    index.bootstrap()
    return index


@pytest.fixture
def index(osmem_clone: Any) -> OpenSearchIndex:
    return _opensearch(osmem_clone.url, f"guard-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def open_index(osmem_clone: Any) -> Callable[[], OpenSearchIndex]:
    """Each call is a new client on the same index, as another process (a Lambda) would be."""
    name = f"guard-{uuid.uuid4().hex[:8]}"
    return lambda: _opensearch(osmem_clone.url, name)


def _embedded(memory_id: str, model: str, dimension: int = 3) -> MemoryItem:
    item = memory(memory_id, "alice likes tea")
    item.metadata.embedding_model = model
    item.metadata.embedding = [1.0] + [0.0] * (dimension - 1)
    return item


@pytest.mark.realserver
def test_opensearch_records_the_model_in_the_mapping_meta(osmem_clone: Any) -> None:
    name = f"guard-{uuid.uuid4().hex[:8]}"
    index = _opensearch(osmem_clone.url, name)
    index.upsert([_embedded("m1", "model-a")])
    mappings = index.client.indices.get_mapping(index=name)[name]["mappings"]
    assert mappings["_meta"] == {"embedding_model": "model-a", "embedding_dimension": 3}


@pytest.mark.realserver
def test_a_client_that_read_the_record_before_a_rebuild_follows_the_rebuild(
    open_index: Callable[[], OpenSearchIndex],
) -> None:
    """A warm Lambda caches the record; after `memcube reindex` rebuilt the index with another
    model elsewhere, it rereads the mapping before refusing anything."""
    warm, operator = open_index(), open_index()
    warm.upsert([_embedded("m1", "model-a")])
    operator.reset()
    operator.upsert([_embedded("m2", "model-b")])
    warm.upsert([_embedded("m3", "model-b")])
    assert warm.ids("cube-a") == {"m2", "m3"}


@pytest.mark.realserver
def test_reset_recreates_the_vector_field_with_the_instances_dimension(osmem_clone: Any) -> None:
    name = f"guard-{uuid.uuid4().hex[:8]}"
    _opensearch(osmem_clone.url, name, dimension=3).upsert([_embedded("m1", "model-a")])
    wider = OpenSearchIndex(osmem_clone.url, index=name, service="es", auth="none", dimension=5, vector_search=False)
    wider.reset()
    mappings = wider.client.indices.get_mapping(index=name)[name]["mappings"]
    assert (mappings["properties"]["embedding"]["dimension"], mappings.get("_meta")) == (5, None)
    wider.upsert([_embedded("m2", "model-b", 5)])
    assert (wider.ids("cube-a"), wider.embedding_model()) == ({"m2"}, "model-b")


@pytest.mark.realserver
def test_an_index_written_before_records_existed_takes_the_model_of_its_documents(osmem_clone: Any) -> None:
    """Deployed indexes have documents and no `_meta`: they must not accept a new model silently."""
    name = f"guard-{uuid.uuid4().hex[:8]}"
    index = OpenSearchIndex(osmem_clone.url, index=name, service="es", auth="none", dimension=3)
    index.client.indices.create(index=name, body=mapping(3))
    old = _embedded("m1", "hash-v1-3")
    index.client.bulk(body=[{"index": {"_index": name, "_id": "m1"}}, document(old)], params={"refresh": "true"})
    assert index.embedding_model() == "hash-v1-3"
    with pytest.raises(EmbeddingMismatch, match=r"hash-v1-3 \(3-d\).*model-b"):
        index.upsert([_embedded("m2", "model-b")])


@pytest.mark.realserver
def test_an_upsert_into_an_index_never_bootstrapped_says_how_to_create_it(osmem_clone: Any) -> None:
    index = OpenSearchIndex(osmem_clone.url, index="never-created", service="es", auth="none", dimension=3)
    with pytest.raises(IndexWriteError, match="memcube bootstrap-index"):
        index.upsert([_embedded("m1", "model-a")])


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
    before = Container(Settings(backend="embedded", data_dir=tmp_path, embedder="hash"))
    _stored(before.memories, before.index)
    before.close()
    env = {"MEMCUBE_BACKEND": "embedded", "MEMCUBE_EMBEDDER": "hash", "MEMCUBE_EMBEDDING_DIMENSION": "64"}
    result = CliRunner().invoke(main, ["reindex", "--data-dir", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    assert f"reindexed {len(TEXTS)} memories" in result.output
    after = Container(Settings(backend="embedded", data_dir=tmp_path, embedder="hash", embedding_dimension=64))
    try:
        assert after.index.embedding_model() == "hash-v1-64"
        assert {i.metadata.embedding_model for i in after.memories.iter_memories()} == {"hash-v1-64"}
    finally:
        after.close()
