"""OpenSearch: the derived search index on AWS (text + k-NN), via opensearch-py.

- **Auth**: SigV4 through opensearch-py's `AWSV4SignerAuth` with service `es` (managed domain) or
  `aoss` (OpenSearch Serverless); `auth="none"` for local test servers.
- **Mapping**: `memory`/`key` as text, the filter fields as keywords, `info` as `flat_object`
  (OpenSearch 2.7+; it keeps arbitrary user keys from exploding the mapping), dates, and an
  `embedding` `knn_vector` sized to the embedder with HNSW on faiss and `innerproduct` (our
  vectors are unit length, so inner product is cosine and avoids a per-query normalization).
- **Index lifecycle**: `bootstrap()` creates the index; it runs from deployment or
  `memcube bootstrap-index`, never in a constructor or on a cold start.
- **Embedding model**: the first upsert records the model id and dimension of its vectors in
  the mapping's `_meta` (read once per process and cached); vectors or query vectors of another
  raise `EmbeddingMismatch`. Switching models goes through `reset()` (`memcube reindex`), which
  recreates the index: the `knn_vector` field's dimension cannot change in place. Deleting every
  document keeps the record (a count is only eventually consistent on Serverless).
- **Writes**: `_bulk` index ops with `_id` = memory id (a repeat overwrites, never duplicates).
- **Read-your-writes**: on a managed domain every write uses `refresh=wait_for`, so an item of a
  completed task is searchable as soon as the task says so. OpenSearch Serverless accepts no
  refresh parameter and makes writes searchable within its documented refresh interval (about
  10 s); the duplicate check never depends on the index (it uses the store's content-hash
  guard), so exactly-once holds on both, and search on Serverless is eventually consistent.
- **Outages**: a connection failure, a timeout, throttling (429) or a 5xx after opensearch-py's
  own retries raises `IndexUnavailable`, so the worker still stores adds (by wording alone for
  near duplicates) and says they are not yet searchable while it retries the index write.
- **Isolation**: every query carries a `terms` filter on `cube_id` (and `status: activated`);
  on managed domains documents and queries are also routed by cube id. Serverless does not
  support custom routing, so there the filter alone confines a query.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from memcube.domain.errors import EmbeddingMismatch, IndexUnavailable
from memcube.domain.filters import And, Filter, Or, event_span
from memcube.domain.model import MemoryItem
from memcube.ports import Hit

Service = Literal["es", "aoss"]
KNN_ENGINE = "faiss"
KNN_SPACE = "innerproduct"


def mapping(dimension: int) -> dict[str, Any]:
    """Index settings and mappings (created by bootstrap)."""
    keyword = {"type": "keyword"}
    return {
        "settings": {"index": {"knn": True}},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "memory_id": keyword,
                "memory": {"type": "text"},
                "key": {"type": "text", "fields": {"raw": keyword}},
                "cube_id": keyword,
                "user_id": keyword,
                "session_id": keyword,
                "status": keyword,
                "memory_type": keyword,
                "tags": keyword,
                "custom_tags": keyword,
                "embedding_model": keyword,
                "info": {"type": "flat_object"},
                "created_at": {"type": "date"},
                "updated_at": {"type": "date"},
                "event_time": {"type": "date"},
                "expires_at": {"type": "long"},
                "embedding": {
                    "type": "knn_vector",
                    "dimension": dimension,
                    "method": {"name": "hnsw", "engine": KNN_ENGINE, "space_type": KNN_SPACE},
                },
            },
        },
    }


def document(item: MemoryItem) -> dict[str, Any]:
    meta = item.metadata
    doc: dict[str, Any] = {
        "memory_id": item.id,
        "memory": item.memory,
        "key": meta.key,
        "cube_id": meta.cube_id,
        "user_id": meta.user_id,
        "session_id": meta.session_id,
        "status": meta.status,
        "memory_type": meta.memory_type,
        "tags": meta.tags,
        "custom_tags": meta.custom_tags,
        "embedding_model": meta.embedding_model,
        "info": meta.info,
        "created_at": meta.created_at,
        "updated_at": meta.updated_at,
        "event_time": event_span(item),
    }
    if meta.expires_at is not None:  # absent: never expires (as documents written before expiry existed)
        doc["expires_at"] = meta.expires_at
    if meta.embedding:
        doc["embedding"] = meta.embedding
    return doc


def scope_filter(
    cube_ids: Sequence[str], *, activated_only: bool = True, flt: Filter | None = None, live_at: int | None = None
) -> list[dict[str, Any]]:
    """The filter clauses every query carries: never a query without its cubes. With `live_at`,
    documents expired by then are left out (one without `expires_at` never expires)."""
    if not cube_ids:
        raise ValueError("a search must name at least one cube")
    clauses: list[dict[str, Any]] = [{"terms": {"cube_id": list(cube_ids)}}]
    if activated_only:
        clauses.append({"term": {"status": "activated"}})
    if flt is not None:
        clauses.append(filter_query(flt))
    if live_at is not None:
        clauses.append(live_query(live_at))
    return clauses


def live_query(live_at: int) -> dict[str, Any]:
    """Documents not expired at `live_at`: no `expires_at`, or one after it."""
    never = {"bool": {"must_not": [{"exists": {"field": "expires_at"}}]}}
    return {"bool": {"should": [never, {"range": {"expires_at": {"gt": live_at}}}], "minimum_should_match": 1}}


def filter_query(flt: Filter) -> dict[str, Any]:
    """A compiled filter as query DSL. `info` is a flat_object: its values compare as keywords
    (strings), so ranges on info values are lexicographic there (ISO dates compare correctly)."""
    if isinstance(flt, And):
        return {"bool": {"filter": [filter_query(p) for p in flt.parts]}}
    if isinstance(flt, Or):
        return {"bool": {"should": [filter_query(p) for p in flt.parts], "minimum_should_match": 1}}
    field = "key.raw" if flt.field == "key" else flt.field
    value = flt.value
    if flt.op == "eq":
        return {"term": {field: value}}
    if flt.op == "ne":
        return {"bool": {"must_not": [{"term": {field: value}}]}}
    if flt.op == "in":
        return {"terms": {field: list(value) if isinstance(value, tuple) else [value]}}
    if flt.op == "nin":
        return {"bool": {"must_not": [{"terms": {field: list(value) if isinstance(value, tuple) else [value]}}]}}
    if flt.op == "contains":
        escaped = str(value).replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
        return {"wildcard": {field: {"value": f"*{escaped}*"}}}
    return {"range": {field: {flt.op: value}}}


def knn_query(
    vector: Sequence[float], k: int, cube_ids: Sequence[str], flt: Filter | None = None, live_at: int | None = None
) -> dict[str, Any]:
    """A k-NN search with efficient filtering: the filter sits inside the `knn` clause so the
    engine (faiss HNSW, OpenSearch 2.9+) filters during the graph search and still returns k hits
    for a small cube in a large index (post-filtering would return fewer)."""
    return {
        "size": k,
        "_source": {"excludes": ["embedding"]},
        "query": {
            "knn": {
                "embedding": {
                    "vector": list(vector),
                    "k": k,
                    "filter": {"bool": {"filter": scope_filter(cube_ids, flt=flt, live_at=live_at)}},
                }
            }
        },
    }


def text_query(
    text: str,
    size: int,
    cube_ids: Sequence[str],
    flt: Filter | None = None,
    *,
    all_words: bool = True,
    live_at: int | None = None,
) -> dict[str, Any]:
    """BM25 over memory and key, confined to the cubes (and the filter)."""
    return {
        "size": size,
        "_source": {"excludes": ["embedding"]},
        "query": {
            "bool": {
                "must": [
                    {
                        "multi_match": {
                            "query": text,
                            "fields": ["memory", "key^2"],
                            "operator": "and" if all_words else "or",
                        }
                    }
                ],
                "filter": scope_filter(cube_ids, flt=flt, live_at=live_at),
            }
        },
    }


class IndexWriteError(RuntimeError):
    """A bulk request reported per-document failures."""


TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@contextmanager
def _unavailable() -> Iterator[None]:
    """Report the cluster's being down, slow or throttling as `IndexUnavailable`; a request it
    refused (400, 404 ...) stays what it is."""
    from opensearchpy.exceptions import ConnectionError as Unreachable
    from opensearchpy.exceptions import TransportError

    try:
        yield
    except Unreachable as exc:  # includes timeouts
        raise IndexUnavailable(f"OpenSearch unreachable: {exc.__class__.__name__}: {exc.info or exc.error}") from exc
    except TransportError as exc:
        if exc.status_code in TRANSIENT_STATUSES:
            raise IndexUnavailable(f"OpenSearch answered {exc.status_code}: {exc.error}") from exc
        raise


class OpenSearchIndex:
    def __init__(
        self,
        endpoint: str,
        *,
        index: str = "memcube-memories",
        service: Service = "aoss",
        region: str | None = None,
        dimension: int = 384,
        auth: Literal["sigv4", "none"] = "sigv4",
        client: Any | None = None,
        vector_search: bool = True,
    ) -> None:
        self._vector_search = vector_search
        """False only against an OpenSearch-API server without the k-NN plugin (tests)."""
        self._endpoint = endpoint
        self._index = index
        self._service = service
        self._region = region
        self._dimension = dimension
        self._auth = auth
        self._client = client
        self._embedding: tuple[str, int] | None = None
        self._embedding_read = False

    @property
    def client(self) -> Any:
        """The opensearch-py client, built on first use."""
        if self._client is None:
            from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection

            kwargs: dict[str, Any] = {
                "hosts": [self._endpoint],
                "timeout": 10,
                "max_retries": 3,
                "retry_on_timeout": True,
            }
            if self._auth == "sigv4":
                from memcube.adapters import aws_session

                credentials, default_region = aws_session.credentials()  # resolved once per process
                kwargs |= {
                    "http_auth": AWSV4SignerAuth(credentials, self._region or default_region, self._service),
                    "use_ssl": True,
                    "verify_certs": True,
                    "connection_class": RequestsHttpConnection,
                    "pool_maxsize": 20,
                }
            self._client = OpenSearch(**kwargs)
        return self._client

    @property
    def _managed(self) -> bool:
        return self._service == "es"

    def _write_params(self) -> dict[str, Any]:
        return {"refresh": "wait_for"} if self._managed else {}

    def bootstrap(self) -> bool:
        """Create the index with its mapping if it does not exist; True if created. An index made
        before a field existed gets the field (adding a field is all a mapping allows in place)."""
        if self.client.indices.exists(index=self._index):
            fields = mapping(self._dimension)["mappings"]["properties"]
            added = {name: fields[name] for name in ("event_time", "expires_at")}
            self.client.indices.put_mapping(index=self._index, body={"properties": added})
            return False
        self.client.indices.create(index=self._index, body=mapping(self._dimension))
        return True

    def embedding_model(self) -> str | None:
        recorded = self._recorded(fresh=True)
        return recorded[0] if recorded else None

    def reset(self) -> None:
        """Delete the index and create it again, empty and unrecorded, with this instance's
        vector `dimension` (on Serverless the caller needs `aoss:DeleteIndex`)."""
        if self.client.indices.exists(index=self._index):
            self.client.indices.delete(index=self._index)
        self._embedding, self._embedding_read = None, True
        self.bootstrap()

    def _recorded(self, *, fresh: bool = False) -> tuple[str, int] | None:
        """The index's (model id, dimension), read from the mapping once and then cached."""
        if fresh or not self._embedding_read:
            self._embedding = self._read_record()
            self._embedding_read = True
        return self._embedding

    def _read_record(self) -> tuple[str, int] | None:
        from opensearchpy.exceptions import NotFoundError

        try:
            with _unavailable():
                response = self.client.indices.get_mapping(index=self._index)
        except NotFoundError:
            return None  # not bootstrapped: the first upsert says so
        mappings: dict[str, Any] = next(iter(response.values()))["mappings"]
        meta = mappings.get("_meta") or {}
        if "embedding_model" in meta and "embedding_dimension" in meta:
            return str(meta["embedding_model"] or ""), int(meta["embedding_dimension"])
        # An index written before records existed: its vector field's size, one document's model.
        dimension = mappings.get("properties", {}).get("embedding", {}).get("dimension")
        body = {"size": 1, "_source": ["embedding_model"], "query": {"exists": {"field": "embedding_model"}}}
        hits = self.client.search(index=self._index, body=body)["hits"]["hits"]
        if dimension is None or not hits:
            return None
        return str(hits[0]["_source"]["embedding_model"]), int(dimension)

    def _check_embeddings(self, items: Sequence[MemoryItem]) -> None:
        """Refuse vectors of another model than the recorded one; record the first."""
        offered = [(i.metadata.embedding_model or "", len(i.metadata.embedding)) for i in items if i.metadata.embedding]
        recorded = self._recorded()
        try:
            accepted = EmbeddingMismatch.check(recorded, offered)
        except EmbeddingMismatch:  # another process may have rebuilt the index since this one read it
            recorded = self._recorded(fresh=True)
            accepted = EmbeddingMismatch.check(recorded, offered)
        if accepted is None or accepted == recorded:
            return
        from opensearchpy.exceptions import NotFoundError

        model, dimension = accepted
        try:
            self.client.indices.put_mapping(
                index=self._index, body={"_meta": {"embedding_model": model, "embedding_dimension": dimension}}
            )
        except NotFoundError as exc:
            raise IndexWriteError(f"index {self._index} does not exist: run `memcube bootstrap-index`") from exc
        self._embedding = accepted

    def upsert(self, items: Sequence[MemoryItem]) -> None:
        if not items:
            return
        self._check_embeddings(items)
        body: list[dict[str, Any]] = []
        for item in items:
            action: dict[str, Any] = {"_index": self._index, "_id": item.id}
            if self._managed:
                action["routing"] = item.metadata.cube_id
            body += [{"index": action}, document(item)]
        self._bulk(body)

    def delete(self, cube_id: str, memory_ids: Sequence[str]) -> int:
        """Bulk deletes by id, routed by the cube on a managed domain (as `upsert` placed them)."""
        return self._delete_docs(cube_id, list(dict.fromkeys(memory_ids)))

    def delete_where(self, cube_id: str, user_id: str | None) -> int:
        """Finds the documents page by page and bulk-deletes them by id: `_delete_by_query` is
        not available on every OpenSearch Serverless collection type, bulk deletes are."""
        clauses = scope_filter([cube_id], activated_only=False)
        if user_id is not None:
            clauses.append({"term": {"user_id": user_id}})
        doomed = self._all_ids(clauses, cube_id)
        return sum(self._delete_docs(cube_id, doomed[start : start + 500]) for start in range(0, len(doomed), 500))

    def _delete_docs(self, cube_id: str, memory_ids: Sequence[str]) -> int:
        if not memory_ids:
            return 0
        body: list[dict[str, Any]] = []
        for memory_id in memory_ids:
            action: dict[str, Any] = {"_index": self._index, "_id": memory_id}
            if self._managed:
                action["routing"] = cube_id
            body.append({"delete": action})
        response = self._bulk(body, missing_ok=True)
        return sum(1 for entry in response.get("items", []) if entry.get("delete", {}).get("result") == "deleted")

    def _bulk(self, body: list[dict[str, Any]], *, missing_ok: bool = False) -> dict[str, Any]:
        with _unavailable():
            response: dict[str, Any] = self.client.bulk(body=body, params=self._write_params())
        if not response.get("errors"):
            return response
        failures = []
        for entry in response.get("items", []):
            result = next(iter(entry.values()))
            status = int(result.get("status", 500))
            if status >= 300 and not (missing_ok and status == 404):
                failures.append(f"{result.get('_id')}: {status} {result.get('error')}")
        if failures:
            raise IndexWriteError(f"{len(failures)} documents failed: {'; '.join(failures[:3])}")
        return response

    def ids(self, cube_id: str) -> set[str]:
        """Every indexed id of a cube (any status)."""
        return set(self._all_ids(scope_filter([cube_id], activated_only=False), cube_id))

    def stamps(self, cube_id: str) -> dict[str, str]:
        hits = self._all_hits(scope_filter([cube_id], activated_only=False), cube_id, ["updated_at"])
        return {h["_id"]: str(h["_source"].get("updated_at")) for h in hits}

    def _all_ids(self, clauses: list[dict[str, Any]], cube_id: str) -> list[str]:
        return [h["_id"] for h in self._all_hits(clauses, cube_id, False)]

    def _all_hits(
        self, clauses: list[dict[str, Any]], cube_id: str, source: list[str] | Literal[False]
    ) -> list[dict[str, Any]]:
        """The documents matching `clauses` (with `source` fields), paged with search_after on memory_id."""
        found: list[dict[str, Any]] = []
        after: list[str] | None = None
        while True:
            body: dict[str, Any] = {
                "size": 1000,
                "_source": source,
                "query": {"bool": {"filter": clauses}},
                "sort": [{"memory_id": "asc"}],
                "fields": ["memory_id"],
            }
            if after:
                body["search_after"] = after
            hits = self._search(body, [cube_id])
            if not hits:
                return found
            found.extend(hits)
            after = hits[-1]["sort"]

    def search(
        self,
        cube_ids: Sequence[str],
        text: str,
        vector: Sequence[float],
        flt: Filter | None,
        limit: int,
        *,
        live_at: int | None = None,
    ) -> list[Hit]:
        recorded = self._recorded()
        if len(vector) and recorded and len(vector) != recorded[1]:
            recorded = self._recorded(fresh=True)  # the index may have been rebuilt since it was read
            if recorded and len(vector) != recorded[1]:
                raise EmbeddingMismatch(recorded, ("", len(vector)), query=True)
        hits: dict[str, Hit] = {}
        if self._vector_search and len(vector):
            for h in self._search(knn_query(vector, limit, cube_ids, flt, live_at), cube_ids):
                hits[h["_id"]] = Hit(h["_id"], h["_source"]["cube_id"], _cosine_from_score(h["_score"]), None)
        if not text.strip():  # no words match nothing (the organizer's vector-only look): no request
            return list(hits.values())
        for h in self._search(text_query(text, limit, cube_ids, flt, all_words=False, live_at=live_at), cube_ids):
            known = hits.get(h["_id"])
            cosine = known.cosine if known else None
            hits[h["_id"]] = Hit(h["_id"], h["_source"]["cube_id"], cosine, float(h["_score"]))
        return list(hits.values())

    def expired_documents(self, before: int, limit: int) -> list[tuple[str, str]]:
        """Across every cube (no routing: the sweep is no cube's query), soonest expired first."""
        body = {
            "size": limit,
            "_source": ["cube_id"],
            "query": {"bool": {"filter": [{"range": {"expires_at": {"lte": before}}}]}},
            "sort": [{"expires_at": "asc"}, {"memory_id": "asc"}],
        }
        with _unavailable():
            response = self.client.search(index=self._index, body=body)
        return [(str(h["_source"]["cube_id"]), str(h["_id"])) for h in response["hits"]["hits"]]

    def select(
        self, cube_id: str, flt: Filter, offset: int, limit: int, *, live_at: int | None = None
    ) -> tuple[list[str], int]:
        """One search with from/size, sorted by `created_at` then `memory_id` (a total order, so
        pages never overlap), with the exact total (`track_total_hits`); ids only."""
        body: dict[str, Any] = {
            "from": offset,
            "size": limit,
            "_source": False,
            "track_total_hits": True,
            "query": {"bool": {"filter": scope_filter([cube_id], flt=flt, live_at=live_at)}},
            "sort": [{"created_at": "asc"}, {"memory_id": "asc"}],
        }
        params: dict[str, Any] = {"routing": cube_id} if self._managed else {}
        with _unavailable():
            response = self.client.search(index=self._index, body=body, params=params)
        total = response["hits"]["total"]
        count = int(total["value"] if isinstance(total, dict) else total)
        return [h["_id"] for h in response["hits"]["hits"]], count

    def text_search(self, cube_id: str, query: str, limit: int) -> list[str]:
        return [h["_id"] for h in self._search(text_query(query, limit, [cube_id]), [cube_id])]

    def _search(self, body: dict[str, Any], cube_ids: Sequence[str]) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if self._managed:
            params["routing"] = ",".join(cube_ids)
        with _unavailable():
            response = self.client.search(index=self._index, body=body, params=params)
        hits: list[dict[str, Any]] = response["hits"]["hits"]
        return hits


def _cosine_from_score(score: float) -> float:
    """Undo the k-NN plugin's innerproduct scoring (ip + 1 when ip >= 0, else 1 / (1 - ip));
    for unit vectors the inner product is the cosine."""
    return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score
