"""The rerank adapters: a Cohere-style `/rerank` endpoint over HTTP (httpx's mock transport) and
Bedrock's Rerank API on a real `bedrock-agent-runtime` client under botocore's Stubber."""

from __future__ import annotations

import json
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber

from memcube.adapters.bedrock import BedrockReranker
from memcube.adapters.http_reranker import HttpReranker
from memcube.domain.errors import Unavailable


def http_reranker(answer: Any, status: int = 200, seen: list[dict[str, Any]] | None = None) -> HttpReranker:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(
                {"url": str(request.url), "auth": request.headers.get("authorization"), **json.loads(request.content)}
            )
        return httpx.Response(status, json=answer)

    client = httpx.Client(transport=httpx.MockTransport(handle), headers={"Authorization": "Bearer k-1"})
    return HttpReranker("http://rerank.local/v1/", "bge-reranker", api_key="k-1", client=client)


def test_the_http_reranker_posts_query_and_documents_and_reads_scores_by_index() -> None:
    seen: list[dict[str, Any]] = []
    answer = {"results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}]}
    assert http_reranker(answer, seen=seen).rerank("bike?", ["a cat", "a bicycle"]) == [0.1, 0.9]
    [request] = seen
    assert request["url"] == "http://rerank.local/v1/rerank"
    assert (request["model"], request["query"], request["documents"], request["top_n"]) == (
        "bge-reranker", "bike?", ["a cat", "a bicycle"], 2,
    )  # fmt: skip


@pytest.mark.parametrize(("answer", "status"), [({"error": "overloaded"}, 503), ({"data": []}, 200)])
def test_a_failing_or_shapeless_http_reranker_is_unavailable_without_its_key(answer: Any, status: int) -> None:
    with pytest.raises(Unavailable) as raised:
        http_reranker(answer, status).rerank("q", ["d"])
    assert "rerank.local" in raised.value.message and "k-1" not in raised.value.message


def test_bedrock_rerank_sends_the_models_arn_and_every_document_and_reads_scores_by_index() -> None:
    client = boto3.client(
        "bedrock-agent-runtime", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with Stubber(client) as stubber:
        stubber.add_response(
            "rerank",
            {"results": [{"index": 1, "relevanceScore": 0.8}, {"index": 0, "relevanceScore": 0.3}]},
            {
                "queries": [{"type": "TEXT", "textQuery": {"text": "bike?"}}],
                "sources": [
                    {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t}}}
                    for t in ("a cat", "a bicycle")
                ],
                "rerankingConfiguration": {
                    "type": "BEDROCK_RERANKING_MODEL",
                    "bedrockRerankingConfiguration": {
                        "numberOfResults": 2,
                        "modelConfiguration": {
                            "modelArn": "arn:aws:bedrock:eu-west-1::foundation-model/amazon.rerank-v1:0"
                        },
                    },
                },
            },
        )
        reranker = BedrockReranker(region="eu-west-1", client=client)
        assert reranker.rerank("bike?", ["a cat", "a bicycle"]) == [0.3, 0.8]
        stubber.add_client_error("rerank", "ThrottlingException", "slow down", 429)
        with pytest.raises(Unavailable, match="ThrottlingException"):
            reranker.rerank("bike?", ["a cat"])
