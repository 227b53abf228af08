"""The Reranker port over a `/rerank` HTTP endpoint, the shape Cohere made common and most
serving stacks speak (Cohere, Jina, Voyage, vLLM, Hugging Face TEI, LiteLLM, Infinity):
`POST {base_url}/rerank {model, query, documents, top_n}` answers
`{results: [{index, relevance_score}]}`. A failure is `Unavailable` naming the endpoint and
status, never the key; the search then answers in its own order and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from memcube.domain.errors import Unavailable


class HttpReranker:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/rerank"
        self._model = model
        self._api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=timeout, headers=headers)

    @property
    def model_id(self) -> str:
        return f"rerank:{self._model}"

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        body = {"model": self._model, "query": query, "documents": list(documents), "top_n": len(documents)}
        try:
            response = self._client.post(self._url, json=body)
            response.raise_for_status()
            data: Any = response.json()
        except httpx.HTTPStatusError as exc:
            raise Unavailable(f"reranker at {self._url}: HTTP {exc.response.status_code}") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"reranker at {self._url}: {type(exc).__name__}") from exc
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise Unavailable(f"reranker at {self._url}: the reply has no `results` list")
        scores = [0.0] * len(documents)
        for result in results:
            if not isinstance(result, dict):
                continue
            index, score = result.get("index"), result.get("relevance_score", result.get("score"))
            if isinstance(index, int) and 0 <= index < len(documents) and isinstance(score, int | float):
                scores[index] = float(score)
        return scores
