"""OpenSearch request bodies. osmem-server has no k-NN engine, so the k-NN body is pinned here to
the shape the OpenSearch documentation gives for efficient k-NN filtering ("Efficient k-NN
filtering", docs.opensearch.org, vector-search/filter-search-knn/efficient-knn-filtering): the
`filter` sits inside the vector field's clause of the `knn` query, next to `vector` and `k`."""

from __future__ import annotations

from typing import Any

import pytest

from memcube.adapters.opensearch_index import KNN_ENGINE, KNN_SPACE, knn_query, mapping, scope_filter, text_query


def test_knn_query_has_the_documented_efficient_filter_shape() -> None:
    body = knn_query([0.1, 0.2, 0.3], 5, ["alice", "kb-1"])
    assert body["size"] == 5
    clause = body["query"]["knn"]["embedding"]
    assert set(clause) == {"vector", "k", "filter"}
    assert clause["vector"] == [0.1, 0.2, 0.3]
    assert clause["k"] == 5
    assert clause["filter"] == {
        "bool": {"filter": [{"terms": {"cube_id": ["alice", "kb-1"]}}, {"term": {"status": "activated"}}]}
    }
    assert body["_source"] == {"excludes": ["embedding"]}


def test_every_query_is_confined_to_named_cubes() -> None:
    assert text_query("tea", 3, ["alice"])["query"]["bool"]["filter"][0] == {"terms": {"cube_id": ["alice"]}}
    with pytest.raises(ValueError, match="at least one cube"):
        scope_filter([])


def test_vector_field_uses_an_engine_that_supports_efficient_filtering() -> None:
    method = mapping(384)["mappings"]["properties"]["embedding"]["method"]
    assert method == {"name": "hnsw", "engine": KNN_ENGINE, "space_type": KNN_SPACE}
    assert KNN_ENGINE in {"faiss", "lucene"}  # nmslib has no efficient filtering
    assert mapping(384)["settings"] == {"index": {"knn": True}}


@pytest.mark.parametrize("service", ["es", "aoss"])
def test_the_aws_client_signs_with_sigv4_for_its_service(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from opensearchpy import AWSV4SignerAuth

    from memcube.adapters.opensearch_index import OpenSearchIndex

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    index = OpenSearchIndex("https://search.example.internal", service=service, region="eu-west-1")  # type: ignore[arg-type]
    auth = index.client.transport.kwargs["http_auth"]  # built lazily: no request is sent
    assert isinstance(auth, AWSV4SignerAuth)
    assert (auth.service, auth.signer.region) == (service, "eu-west-1")


def test_filters_translate_to_dsl_inside_the_knn_clause() -> None:
    from memcube.domain.filters import compile_filter

    flt = compile_filter({"or": [{"custom_tags": "drinks"}, {"info.app_id": {"in": ["a1", "a2"]}}], "key": {"ne": "x"}})
    body = knn_query([0.1], 3, ["alice"], flt)
    [_cubes, _status, extra] = body["query"]["knn"]["embedding"]["filter"]["bool"]["filter"]
    assert extra == {
        "bool": {
            "filter": [
                {
                    "bool": {
                        "should": [{"term": {"custom_tags": "drinks"}}, {"terms": {"info.app_id": ["a1", "a2"]}}],
                        "minimum_should_match": 1,
                    }
                },
                {"bool": {"must_not": [{"term": {"key.raw": "x"}}]}},
            ]
        }
    }


class _Searches:
    """An opensearch-py client stand-in that records search bodies and finds one k-NN hit."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def search(self, index: str, body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        hits = [{"_id": "m1", "_score": 1.5, "_source": {"cube_id": "alice"}}] if "knn" in body["query"] else []
        return {"hits": {"hits": hits}}


@pytest.mark.parametrize("text", ["", "  "])
def test_a_search_without_words_sends_only_the_knn_query(text: str) -> None:
    # An analyzed query of no terms matches no document (OpenSearch's zero_terms_query "none"):
    # the organizer's vector-only look at a cube costs one request, not two.
    from memcube.adapters.opensearch_index import OpenSearchIndex

    client = _Searches()
    index = OpenSearchIndex("https://search.example.internal", client=client)
    index._embedding_read = True  # the recorded model is not what this test is about
    [hit] = index.search(["alice"], text, [1.0, 0.0], None, 9)
    assert (hit.memory_id, hit.cosine, hit.text) == ("m1", 0.5, None)
    assert [next(iter(b["query"])) for b in client.bodies] == ["knn"]


def test_a_search_with_words_sends_the_knn_and_the_text_query() -> None:
    from memcube.adapters.opensearch_index import OpenSearchIndex

    client = _Searches()
    index = OpenSearchIndex("https://search.example.internal", client=client)
    index._embedding_read = True
    index.search(["alice"], "tea", [1.0, 0.0], None, 9)
    assert [next(iter(b["query"])) for b in client.bodies] == ["knn", "bool"]
