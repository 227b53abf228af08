"""OpenSearch request bodies. osmem-server has no k-NN engine, so the k-NN body is pinned here to
the shape the OpenSearch documentation gives for efficient k-NN filtering ("Efficient k-NN
filtering", docs.opensearch.org, vector-search/filter-search-knn/efficient-knn-filtering): the
`filter` sits inside the vector field's clause of the `knn` query, next to `vector` and `k`."""

from __future__ import annotations

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
