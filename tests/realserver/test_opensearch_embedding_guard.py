"""Embedding models on OpenSearch (osmem-server): the index records its model in the mapping's
_meta like the local indexes (the index contract's embedding tests, collected here against it), the
vector field takes the embedder's dimension, and a deployed index without a record is guarded too.
The local side of the guard and `memcube reindex`: tests/unit/test_embedding_guard.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from memcube.adapters.opensearch_index import IndexWriteError, OpenSearchIndex, document, mapping
from memcube.domain.errors import EmbeddingMismatch
from memcube.domain.model import MemoryItem
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


def test_opensearch_records_the_model_in_the_mapping_meta(osmem_clone: Any) -> None:
    name = f"guard-{uuid.uuid4().hex[:8]}"
    index = _opensearch(osmem_clone.url, name)
    index.upsert([_embedded("m1", "model-a")])
    mappings = index.client.indices.get_mapping(index=name)[name]["mappings"]
    assert mappings["_meta"] == {"embedding_model": "model-a", "embedding_dimension": 3}


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


def test_reset_recreates_the_vector_field_with_the_instances_dimension(osmem_clone: Any) -> None:
    name = f"guard-{uuid.uuid4().hex[:8]}"
    _opensearch(osmem_clone.url, name, dimension=3).upsert([_embedded("m1", "model-a")])
    wider = OpenSearchIndex(osmem_clone.url, index=name, service="es", auth="none", dimension=5, vector_search=False)
    wider.reset()
    mappings = wider.client.indices.get_mapping(index=name)[name]["mappings"]
    assert (mappings["properties"]["embedding"]["dimension"], mappings.get("_meta")) == (5, None)
    wider.upsert([_embedded("m2", "model-b", 5)])
    assert (wider.ids("cube-a"), wider.embedding_model()) == ({"m2"}, "model-b")


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


def test_an_upsert_into_an_index_never_bootstrapped_says_how_to_create_it(osmem_clone: Any) -> None:
    index = OpenSearchIndex(osmem_clone.url, index="never-created", service="es", auth="none", dimension=3)
    with pytest.raises(IndexWriteError, match="memcube bootstrap-index"):
        index.upsert([_embedded("m1", "model-a")])
