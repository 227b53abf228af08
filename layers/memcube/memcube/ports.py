"""Ports: the narrow interfaces the domain needs. Adapters implement them; the domain never
imports an adapter. Every adapter of a port passes the contract suite in tests/contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from memcube.domain.conversation import ConversationMessage
from memcube.domain.filters import Filter
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import DeadLetter, MemoryItem, Task, TaskPart, TaskRecord

if TYPE_CHECKING:  # domain.auth and domain.permissions import their ports from here
    from memcube.domain.auth import ApiKey
    from memcube.domain.permissions import CubeAcl


@dataclass(frozen=True)
class PutResult:
    """What a guarded write did: `created` a new item, found it already there (`exists`, a
    redelivery rewriting its own item), or refused it as a `duplicate` of `existing_id`."""

    status: Literal["created", "exists", "duplicate"]
    existing_id: str | None = None


@dataclass(frozen=True)
class Hit:
    """A search candidate from the index, with its raw scores (None where that half did not match):
    `cosine` between the query and item vectors, `text` the engine's BM25 score."""

    memory_id: str
    cube_id: str
    cosine: float | None
    text: float | None


# --- the system of record: one small port per concern ------------------------------------------
# Each backend (DynamoDB, SQLite, the in-memory test doubles) implements every port below over one
# shared table or connection, and hands them out together as `Stores`; a service takes only the
# ports it calls, so its constructor says what it reads and writes.


class TaskStore(Protocol):
    """Add tasks and their per-cube parts: what `/product/scheduler/status` reports."""

    def create_task(self, task: Task, parts: Sequence[TaskPart]) -> bool:
        """Store a new task with its parts atomically; False (and no write) if the id exists."""
        ...

    def get_task(self, task_id: str) -> TaskRecord | None: ...

    def list_tasks(self, user_id: str, limit: int) -> list[TaskRecord]:
        """The user's most recent tasks, newest first."""
        ...

    def put_task_part(self, task_id: str, part: TaskPart) -> None:
        """Replace one cube's part of an existing task."""
        ...


class IdempotencyKeys(Protocol):
    """Client idempotency keys, each bound to the task its first request created, so a retried
    add answers with that task instead of creating another."""

    def claim_idempotency_key(self, key: str, task_id: str) -> str:
        """Bind `key` to `task_id` unless already bound; return the task id it is bound to."""
        ...


class DeadLetterStore(Protocol):
    """The record of queued messages that will never succeed, kept for operators (list, redrive)
    and removed by an erasure that takes their bodies."""

    def record_dead_letter(self, letter: DeadLetter) -> None:
        """Keep `letter`, replacing the record with the same `DeadLetter.key` (one per task and
        cube: the latest failure's reason, attempts and message id)."""
        ...

    def list_dead_letters(self) -> list[DeadLetter]:
        """Every record, oldest failure first."""
        ...

    def delete_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        """Remove the records with these letters' keys (an erasure takes their bodies too); the count removed."""
        ...


class MemoryStore(Protocol):
    """Memory items with their content-hash guards and near-duplicate band keys."""

    def put_memory(self, item: MemoryItem) -> PutResult:
        """Write `item` unless its cube already holds another item with the same content hash.

        The content-hash guard and the item are written in one transaction, so concurrent or
        repeated writes can never leave two items with the same content in one cube.
        """
        ...

    def update_memory(self, item: MemoryItem, expected_version: int) -> bool:
        """Replace a stored item (same id, cube and content; metadata, status and version may
        change) if its stored version is still `expected_version`. False when another writer
        changed it first or it is gone: the caller rereads and decides again."""
        ...

    def rewrite_memory(self, item: MemoryItem, expected_version: int) -> PutResult | None:
        """Replace a stored item whose text may change (same id, cube and creation time), if
        its stored version is still `expected_version`: the content guard moves to the new
        text's hash and the LSH band keys follow it, in one transaction with the item. `created`
        when written; a `duplicate` of `existing_id` (nothing written) when another item of the
        cube holds that text; None when another writer changed the item first or it is gone."""
        ...

    def similar_ids(self, cube_id: str, text: str, limit: int) -> list[str]:
        """Ids of the cube's items (any status) sharing a MinHash LSH band with `text`
        (`domain.similarity.lsh_keys`), most shared bands first: lexical near-duplicate
        candidates, visible as soon as their item is written. The caller confirms each."""
        ...

    def get_memory(self, memory_id: str) -> MemoryItem | None: ...

    def get_memories(self, memory_ids: Sequence[str]) -> list[MemoryItem]: ...

    def list_memories(
        self, cube_id: str, offset: int, limit: int, live_at: int | None = None
    ) -> tuple[list[MemoryItem], int]:
        """A page of a cube's activated items, oldest first, and the cube's total; with `live_at`
        (epoch seconds), only items not expired by then (`domain.expiry`), in the page and the total."""
        ...

    def iter_memories(self, cube_id: str | None = None) -> Iterator[MemoryItem]:
        """Every item (any status) of one cube, or of all cubes: the source for reindexing."""
        ...

    def export_page(self, cube_id: str, cursor: str | None, limit: int) -> tuple[list[MemoryItem], str | None]:
        """Up to `limit` items (any status) of a cube after `cursor`, in a stable order, and the
        cursor of the next page (None after the last): an export that never rereads a page."""
        ...

    def delete_memories(self, items: Sequence[MemoryItem]) -> int:
        """Hard-delete these items with everything stored for them (id pointer, content guard,
        history); the number that existed. Deleting a missing item is not an error."""
        ...


class ErasureMarks(Protocol):
    """When a cube (or one user's data in it) was last erased: the worker drops work submitted
    before the mark, so an erasure is not undone by an add that was already queued."""

    def mark_erased(self, cube_id: str, user_id: str | None, at: str) -> None:
        """Record that the cube (or, with `user_id`, that user's data in it) was erased at `at`:
        work submitted before then must never write there (an in-flight or queued add)."""
        ...

    def erased_at(self, cube_id: str, user_id: str) -> str | None:
        """The latest erasure mark covering `user_id`'s writes to the cube, if any."""
        ...


class UserDirectory(Protocol):
    """Who exists and who may use which cube: known users and knowledge-base cube grants, the two
    facts `domain.permissions` decides on."""

    def register_user(self, user_id: str) -> None:
        """Remember that `user_id` exists (idempotent)."""
        ...

    def is_user(self, user_id: str) -> bool: ...

    def get_cube(self, cube_id: str) -> CubeAcl | None:
        """The knowledge-base cube's owner and grants, if it was created."""
        ...

    def create_cube(self, acl: CubeAcl) -> bool:
        """Record a new cube; False (and no write) if one with that id exists."""
        ...

    def update_cube(self, acl: CubeAcl, expected_version: int) -> bool:
        """Replace the cube's grants if its stored version is still `expected_version`."""
        ...

    def delete_cube(self, cube_id: str) -> bool:
        """Forget the cube's owner and grants (after its erasure); False if it had none."""
        ...

    def cubes_of(self, user_id: str) -> list[CubeAcl]:
        """The knowledge-base cubes `user_id` owns or is granted read or write on, by cube id
        (the web console's list of a user's cubes; `permissions.allowed` still decides)."""
        ...


class KeyStore(Protocol):
    """API keys by key id (salt and digest, never the secret; `domain.auth`)."""

    def put_key(self, key: ApiKey) -> bool:
        """Store a new key; False (and no write) if its key id exists."""
        ...

    def get_key(self, key_id: str) -> ApiKey | None: ...

    def list_keys(self, user_id: str | None) -> list[ApiKey]:
        """Every key (revoked ones too) of one user, or of everyone; oldest first."""
        ...

    def revoke_key(self, key_id: str, at: str) -> bool:
        """Mark the key revoked at `at` (a second revoke keeps the first time); False if unknown."""
        ...


class Counter(Protocol):
    """Fixed-window use counters shared by every instance: rate limits and quotas (`domain.limiting`)."""

    def hit(self, key: str, limit: int, window_start: int, window_seconds: int) -> bool:
        """Count one use in the window; False (nothing counted) when `limit` uses are already in it."""
        ...


class ExpiringMemories(Protocol):
    """The store's side of expiry (`domain.expiry`): which items have expired, found without
    reading every cube."""

    def expired_memories(self, before: int, limit: int) -> list[MemoryItem]:
        """Up to `limit` items (any status but erased tombstones) of any cube whose `expires_at`
        is at or before `before` (epoch seconds), soonest expired first. May lag a write briefly
        (a secondary index): the sweep reads each item back before erasing it."""
        ...


class MessageLog(Protocol):
    """A conversation's own messages per user and session (chat's exchanges, an add's chat
    messages): what `get_message` and "the last N messages" read. Not memories: never searched."""

    def append_messages(self, messages: Sequence[ConversationMessage]) -> None:
        """Record messages (a repeat of a message id overwrites it, never doubles it)."""
        ...

    def recent_messages(self, user_id: str, session_id: str, limit: int) -> list[ConversationMessage]:
        """The session's last `limit` messages, oldest first (by `seq`)."""
        ...

    def recent_sessions(self, user_id: str, limit: int) -> list[str]:
        """The user's `limit` sessions with the latest messages, most recent first."""
        ...

    def delete_messages(self, user_id: str, session_id: str | None) -> int:
        """Erase the user's messages of one session (or of all, None); the number removed."""
        ...


@dataclass(frozen=True)
class Stores:
    """Every port of one backend's system of record, built over one shared table or connection
    (`adapters.<backend>.open_stores`): the composition root takes them apart, one per service."""

    tasks: TaskStore
    idempotency: IdempotencyKeys
    dead_letters: DeadLetterStore
    memories: MemoryStore
    erasures: ErasureMarks
    directory: UserDirectory
    api_keys: KeyStore
    counter: Counter
    messages: MessageLog
    close: Callable[[], None]
    """Releases the shared table client or connection (the ports above then stop working)."""
    expiring: ExpiringMemories
    """The memory store's expiry query (the same adapter object as `memories`)."""


class TaskQueue(Protocol):
    def send(self, messages: Sequence[QueuedAdd]) -> None:
        """Enqueue each message in its cube's FIFO group; raise on failure (nothing is half-sent
        silently: the caller retries with the same task id and deduplication absorbs repeats)."""
        ...

    def discard(self, cube_id: str, user_id: str | None) -> list[str] | None:
        """Remove the cube's waiting messages (only `user_id`'s, if given) and return their
        bodies; None where the queue cannot remove messages selectively (SQS: the worker drops
        them on delivery, by the store's erasure mark)."""
        ...


class SearchIndex(Protocol):
    def upsert(self, items: Sequence[MemoryItem]) -> None:
        """Index items by memory id (a repeat overwrites, never duplicates)."""
        ...

    def delete(self, cube_id: str, memory_ids: Sequence[str]) -> int:
        """Remove the cube's documents by id (a sharded index routes by the cube); the number
        that were indexed."""
        ...

    def delete_where(self, cube_id: str, user_id: str | None) -> int:
        """Remove every document of the cube (only `user_id`'s, if given), including any the store
        no longer knows: an erasure leaves nothing searchable. The number removed."""
        ...

    def ids(self, cube_id: str) -> set[str]:
        """Ids of the cube's indexed documents (to reconcile the index with the store)."""
        ...

    def stamps(self, cube_id: str) -> dict[str, str]:
        """The `updated_at` of each of the cube's indexed documents, by id: reconcile compares it
        with the store's to find documents left stale (say, a merge or an archival whose index
        write never happened)."""
        ...

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
        """Candidates among the cubes' activated documents that pass the filter: the top `limit`
        by vector similarity and the top `limit` by text relevance (merged by id). With `live_at`
        (epoch seconds), documents expired by then are left out before ranking (`domain.expiry`)."""
        ...

    def expired_documents(self, before: int, limit: int) -> list[tuple[str, str]]:
        """(cube id, memory id) of up to `limit` documents of any cube whose expiry is at or
        before `before` (epoch seconds): the expiry sweep removes them, including documents of
        items the store already lost (DynamoDB TTL)."""
        ...

    def embedding_model(self) -> str | None:
        """The model id of the embeddings the index holds, recorded by the first upsert into the
        empty index ("" for vectors without one; None while nothing is recorded). The index
        refuses vectors of another model or dimension (`EmbeddingMismatch`); comparing this with
        the configured embedder also catches a query vector of another model of the same size."""
        ...

    def reset(self) -> None:
        """Drop every document and the recorded model: `memcube reindex` rebuilds from empty when
        the embedder changed (OpenSearch recreates the index: its vector field has a fixed size)."""
        ...

    def select(
        self, cube_id: str, flt: Filter, offset: int, limit: int, *, live_at: int | None = None
    ) -> tuple[list[str], int]:
        """A page of ids of the cube's activated documents that pass the filter, oldest first
        (`created_at`, then id), skipping `offset`, and how many pass in all: a filtered listing
        that reads only its page (the caller keeps `offset + limit` within `domain.reads.WINDOW`).
        With `live_at` (epoch seconds), documents expired by then are out of the page and the total."""
        ...


class Embedder(Protocol):
    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int | None:
        """The longest text (in the reader's `count_tokens`) the model reads whole; None when any
        length is read. The reader cuts memories to fit it, so no stored text is left out of its
        vector; an adapter given a longer text anyway must still read all of it (in parts)."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, computed in one batch."""
        ...


class Reranker(Protocol):
    """Scores search candidates against the query with a model that reads both together (a
    cross-encoder), which ranks more exactly than comparing two separate vectors."""

    @property
    def model_id(self) -> str: ...

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        """A relevance score in [0, 1] per document, in their order; `Unavailable` when the model
        cannot answer (the search then keeps its own order and says so)."""
        ...


@dataclass(frozen=True)
class ChatTurn:
    """One message of a conversation handed to the LLM."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Sampling:
    """How the model samples a chat answer (None: the provider's default)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None


class LLM(Protocol):
    """A chat model behind one call. Adapters own timeouts and retries with backoff; when the
    provider still cannot answer they raise `LLMUnavailable`, so the queued message is retried
    and its task part shows why. The reply is data to validate, never instructions to follow."""

    @property
    def model_id(self) -> str: ...

    def complete(self, system: str, user: str, *, json_output: bool = True) -> str:
        """The model's reply to one system + user turn (JSON mode where the provider has it)."""
        ...

    def stream(self, turns: Sequence[ChatTurn], sampling: Sampling) -> Iterator[str]:
        """A free-text answer to the conversation, piece by piece as the model writes it (chat).
        `LLMUnavailable` before the first piece or between pieces (a provider error, a read that
        timed out): a stream never hangs past the adapter's timeout, and never ends silently short."""
        ...


class DocumentReader(Protocol):
    """Reads the text of a binary file (a PDF) for document mode. Worker side only: the API
    passes such files on as bytes and never loads a parser."""

    def text(self, data: bytes, mime: str) -> str:
        """The file's text; `UnreadableFile` when it has none that can be read (scanned images,
        encryption, corruption) or its type is not supported."""
        ...


class Telemetry(Protocol):
    """Business metrics (one per outcome). Powertools Metrics on AWS; a no-op embedded."""

    def count(self, name: str, value: int = 1) -> None: ...


class NoTelemetry:
    def count(self, name: str, value: int = 1) -> None:
        return None


class RawQueue(Protocol):
    """Sends bodies as they are (an operator's redrive of dead letters), bypassing `TaskQueue`'s
    message model."""

    def send_raw(self, entries: Sequence[tuple[str, str, str]]) -> None:
        """Enqueue (group id, dedup id, body) triples."""
        ...


class DeadLetterSink(Protocol):
    """Where a message that will never succeed is parked besides the store's record (the SQS DLQ
    on AWS, so operators see it there and can redrive it)."""

    def park(self, body: str, reason: str, group_id: str | None) -> None: ...
