"""The composition root of the AWS backend: the one place its adapters are built, lazily, from
settings (DynamoDB, SQS, OpenSearch, Bedrock or OpenAI-compatible models). The embedded default's
adapters (SQLite, MiniLM) are not in this package: `memcube_local.wiring.LocalContainer` adds them,
and tests pass their in-memory doubles (`tests/doubles`) to this container.

Nothing here does I/O at import time; each adapter and service is built on first use and then
reused (a Lambda container keeps them warm across invocations). Every service's module is
imported when the service is first built, so each function loads only the domain it uses: the
API never loads ingest and the organizer, nor the services only some routes use (search,
deletion, history, transfer, cubes, ...); the worker never the API's add, status, deletion or
transfer (each module costs a cold start its import, and its compile where no bytecode is
shipped; see BENCHMARKS.md, `tests/unit/test_api_imports.py`, `tests/unit/test_worker_imports.py`).
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Generic, TypeVar

from memcube.ports import (
    Counter,
    DeadLetterStore,
    ErasureMarks,
    IdempotencyKeys,
    KeyStore,
    MemoryStore,
    MessageLog,
    TaskStore,
    UserDirectory,
)
from memcube.settings import Settings

if TYPE_CHECKING:
    from memcube.adapters.sqs_queue import SqsQueue
    from memcube.domain.auth import Authority, KeyService
    from memcube.domain.chat import ChatService, Conversations
    from memcube.domain.corrections import FeedbackIntake
    from memcube.domain.cubes import CubeService
    from memcube.domain.deletion import DeletionService
    from memcube.domain.edits import EditService
    from memcube.domain.expiry import ExpiryService, ExpirySweep
    from memcube.domain.history import HistoryService
    from memcube.domain.ingest import IngestService
    from memcube.domain.knowledgebases import KnowledgeBaseService
    from memcube.domain.maintenance import Maintenance
    from memcube.domain.memories import MemoryReader
    from memcube.domain.reads import MemoryReads
    from memcube.domain.scheduler import SchedulerService
    from memcube.domain.search import SearchService
    from memcube.domain.tasks import AddService, StatusService
    from memcube.domain.transfer import TransferService
    from memcube.ports import (
        LLM,
        DeadLetterSink,
        DocumentReader,
        Embedder,
        Reranker,
        SearchIndex,
        Stores,
        TaskQueue,
        Telemetry,
    )


P = TypeVar("P")


class _Port(Generic[P]):
    """A storage port of the container: the attribute of that name of `Container.stores` (an
    override of the same name, set at construction, shadows it)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, container: Container, owner: type | None = None) -> P:
        port: P = getattr(container.stores, self._name)
        return port


class Container:
    """Adapters and services of the `aws` backend. Another backend's adapters are passed in
    `overrides` (by `memcube_local`'s container, and by tests with their doubles); one this
    container cannot build and was not given fails on first use (`NotBuiltHere`)."""

    tasks = _Port[TaskStore]()
    idempotency = _Port[IdempotencyKeys]()
    dead_letters = _Port[DeadLetterStore]()
    memories = _Port[MemoryStore]()
    erasures = _Port[ErasureMarks]()
    directory = _Port[UserDirectory]()
    api_keys = _Port[KeyStore]()
    counter = _Port[Counter]()
    messages = _Port[MessageLog]()

    def __init__(self, settings: Settings, **overrides: object) -> None:
        self.settings = settings
        for name, value in overrides.items():
            self.__dict__[name] = value  # pre-fills the cached_property of the same name

    _closeable: tuple[str, ...] = ("index",)
    """Adapters besides the stores that hold a connection, closed by `close` if built."""

    def _aws_only(self, port: str) -> None:
        if self.settings.backend != "aws":
            raise NotBuiltHere(
                f"{port}: the {self.settings.backend} backend's adapters are not built by this container "
                "(embedded: memcube_local.wiring.LocalContainer; memory: the tests pass their doubles)"
            )

    @cached_property
    def stores(self) -> Stores:
        """The system of record's ports, built together over the backend's one table (DynamoDB;
        the embedded default's: one SQLite connection). Services get them one by one, from the port
        attributes above (`tasks`, `memories`, ...)."""
        self._aws_only("stores")
        from memcube.adapters.dynamodb import open_stores as open_dynamodb
        from memcube.adapters.dynamodb.table import DynamoTable

        return open_dynamodb(DynamoTable(_required(self.settings.table_name)))

    @cached_property
    def queue(self) -> TaskQueue:
        self._aws_only("queue")
        return self.sqs_queue

    @cached_property
    def sqs_queue(self) -> SqsQueue:
        from memcube.adapters.sqs_queue import SqsQueue

        return SqsQueue(_required(self.settings.queue_url), bucket=self.settings.bucket_name)

    def resolve_body(self, body: str) -> str:
        """A queued body as the worker must parse it (claim checks resolved on AWS)."""
        return self.sqs_queue.resolve_body(body) if self.settings.backend == "aws" else body

    @cached_property
    def dead_letter_sink(self) -> DeadLetterSink | None:
        url = self.settings.dead_letter_queue_url
        if self.settings.backend != "aws" or not url:
            return None
        from memcube.adapters.sqs_queue import SqsDeadLetters

        return SqsDeadLetters(self.sqs_queue, url)

    @cached_property
    def index(self) -> SearchIndex:
        self._aws_only("index")
        from memcube.adapters.opensearch_index import OpenSearchIndex

        s = self.settings
        return OpenSearchIndex(
            _required(s.opensearch_endpoint),
            index=s.opensearch_index,
            service=s.opensearch_service,
            dimension=self.embedder.dimension,
            auth=s.opensearch_auth,
        )

    @cached_property
    def embedder(self) -> Embedder:
        """The configured embedding model (`MEMCUBE_EMBEDDER`, by default per backend). Each is
        imported only when chosen, so a backend never needs another's packages."""
        s = self.settings
        kind = s.embedder_kind
        if kind == "minilm":
            raise NotBuiltHere("the minilm embedder is the embedded default's: build it with memcube_local's container")
        if kind == "bedrock":
            from memcube.adapters.bedrock import TitanEmbedder

            return TitanEmbedder(s.embedding_model or "amazon.titan-embed-text-v2:0", dimension=s.embedding_dimension)
        if kind == "openai":
            from memcube.adapters.openai_compat import OpenAICompatibleEmbedder

            return OpenAICompatibleEmbedder(
                _required(s.embedding_base_url),
                _required(s.embedding_model),
                dimension=s.embedding_dimension,
                api_key=s.embedding_api_key.get_secret_value() if s.embedding_api_key else None,
            )
        from memcube.adapters.hash_embedder import HashEmbedder

        return HashEmbedder(s.embedding_dimension)

    @cached_property
    def llm(self) -> LLM | None:
        """The LLM for fine mode, feedback and the organizer's judge; None runs fast mode only.
        Built only by the worker side (the API just needs to know whether one is configured)."""
        s = self.settings
        secret = s.llm_api_key.get_secret_value() if s.llm_api_key else None
        if s.llm == "openai":
            from memcube.adapters.openai_compat import OpenAICompatibleLLM

            return OpenAICompatibleLLM(
                _required(s.llm_base_url),
                _required(s.llm_model),
                api_key=secret,
                timeout=s.llm_timeout_seconds,
                max_retries=s.llm_max_retries,
                max_output_tokens=s.llm_max_output_tokens,
            )
        if s.llm == "bedrock":
            from memcube.adapters.bedrock import BedrockLLM

            return BedrockLLM(_required(s.llm_model), timeout=s.llm_timeout_seconds, max_retries=s.llm_max_retries)
        return None

    @cached_property
    def telemetry(self) -> Telemetry:
        if self.settings.backend == "aws":
            from memcube.observability import MetricsTelemetry

            return MetricsTelemetry()
        from memcube.ports import NoTelemetry

        return NoTelemetry()

    @cached_property
    def keys(self) -> KeyService:
        from memcube.domain.auth import KeyService

        return KeyService(self.api_keys, self.directory)

    @cached_property
    def cubes(self) -> CubeService:
        from memcube.domain.cubes import CubeService  # cube creation and grants: their routes' first request

        return CubeService(self.directory, self.api_keys)

    @cached_property
    def authority(self) -> Authority:
        from memcube.domain.auth import Authority, TokenRules
        from memcube.domain.limiting import Limits

        s = self.settings
        limits = None
        if s.rate_limit_per_minute or s.daily_add_quota:
            limits = Limits(self.counter, per_minute=s.rate_limit_per_minute, adds_per_day=s.daily_add_quota)
        tokens = None
        if s.jwt_api_id:  # only a Lambda event from that API carries a verified token
            tokens = TokenRules(s.jwt_user_claim, s.jwt_service_scope, s.jwt_admin_scope)
        return Authority(self.keys if s.auth_mode == "keys" else None, limits, tokens, self.directory)

    @cached_property
    def add(self) -> AddService:
        from memcube.domain.tasks import AddService

        return AddService(
            self.tasks,
            self.idempotency,
            self.dead_letters,
            self.directory,
            self.queue,
            fine_available=self.settings.llm != "none",
        )

    @cached_property
    def status(self) -> StatusService:
        from memcube.domain.tasks import StatusService

        return StatusService(self.tasks)

    @cached_property
    def reader(self) -> MemoryReader:
        from memcube.domain.memories import MemoryReader

        return MemoryReader(self.memories, self.directory)

    @cached_property
    def reads(self) -> MemoryReads:
        """Filtered pages, reads by ids and `get_all`: the index selects, the store answers."""
        from memcube.domain.reads import MemoryReads

        return MemoryReads(self.memories, self.directory, self.index, self.embedder)

    @cached_property
    def scheduler(self) -> SchedulerService:
        from memcube.domain.scheduler import SchedulerService

        return SchedulerService(self.tasks, self.status)

    @cached_property
    def ingest(self) -> IngestService:
        from memcube.domain.ingest import IngestService
        from memcube.domain.organizer import Thresholds

        return IngestService(
            tasks=self.tasks,
            dead_letters=self.dead_letters,
            users=self.directory,
            memories=self.memories,
            erasures=self.erasures,
            index=self.index,
            embedder=self.embedder,
            llm=self.llm,
            thresholds=Thresholds(
                jaccard=self.settings.near_duplicate_jaccard,
                cosine=self.settings.near_duplicate_cosine,
                related=self.settings.related_cosine,
            ),
            feedback_cosine=self.settings.feedback_cosine,
            open_cubes=self.settings.auth_mode == "none",
            telemetry=self.telemetry,
            sink=self.dead_letter_sink,
            documents=self.documents,
        )

    def warm_api(self) -> None:
        """Build what API requests use, short of AWS clients: services, settings, the AWS SDK's
        service models (a throwaway client of each service parses them into the default session,
        no network). Run in init before a SnapStart snapshot, so a restored function does not."""
        _ = (self.authority, self.add, self.status, self.reader, self.history, self.deleter, self.transfer)
        self.warm_aws("dynamodb", "sqs")

    def warm_aws(self, *services: str) -> None:
        """Parse the AWS SDK's service models of `services` into the default session (a throwaway
        client each, no network) and import the OpenSearch client: run before a SnapStart snapshot,
        so a restored function does not (its first request then builds clients from parsed models).
        Nothing on the other backends."""
        if self.settings.backend != "aws":
            return
        import opensearchpy  # noqa: F401  # the index's client library, imported on its first use otherwise

        from memcube.adapters import aws_session

        for service in services:
            aws_session.client(service).close()

    def warm_worker(self) -> None:
        """Make the worker ready to process a message at once: its stores, index and services
        built, and the embedding model loaded (seconds for a local model). Called before the
        first message is taken, so a worker never holds a message while it is still starting
        (a kill then would cost that message an attempt it never made). Safe to repeat."""
        _ = self.ingest
        warm = getattr(self.embedder, "warm", None)  # only local models have something to load
        if callable(warm):
            warm()

    @cached_property
    def documents(self) -> DocumentReader:
        """Reads binary files (PDF) on the worker side; pypdf loads on the first PDF."""
        from memcube.adapters.documents import FileTextReader

        return FileTextReader()

    @cached_property
    def history(self) -> HistoryService:
        from memcube.domain.history import HistoryService
        from memcube.domain.model import iso, utcnow

        return HistoryService(self.memories, self.directory, self.index, self.embedder, lambda: iso(utcnow()))

    @cached_property
    def searcher(self) -> SearchService:
        from memcube.domain.search import SearchService  # the first search's, not the API's import

        return SearchService(
            self.memories, self.index, self.embedder, self.directory, reranker=self.reranker, llm=self.llm
        )

    @cached_property
    def reranker(self) -> Reranker | None:
        """The rerank model searches use (`MEMCUBE_RERANKER`); by default the LLM, if one is
        configured. Built on the first search, so the API imports no model client before."""
        s = self.settings
        if s.reranker == "http":
            from memcube.adapters.http_reranker import HttpReranker

            assert s.reranker_base_url and s.reranker_model  # settings validate both
            key = s.reranker_api_key.get_secret_value() if s.reranker_api_key else None
            return HttpReranker(s.reranker_base_url, s.reranker_model, api_key=key)
        if s.reranker == "bedrock":
            from memcube.adapters.bedrock import BedrockReranker

            return BedrockReranker(s.reranker_model or "amazon.rerank-v1:0")
        if s.reranker in {"llm", None} and self.llm is not None:
            from memcube.domain.llm_search import LLMReranker

            return LLMReranker(self.llm)
        return None

    @cached_property
    def deleter(self) -> DeletionService:
        from memcube.domain.deletion import DeletionService

        return DeletionService(
            memories=self.memories,
            erasures=self.erasures,
            tasks=self.tasks,
            dead_letters=self.dead_letters,
            users=self.directory,
            index=self.index,
            queue=self.queue,
            messages=self.messages,
        )

    @cached_property
    def knowledgebases(self) -> KnowledgeBaseService:
        from memcube.domain.knowledgebases import KnowledgeBaseService  # the API's alone: the worker never loads it

        return KnowledgeBaseService(self.directory, self.deleter, self.cubes)

    @cached_property
    def transfer(self) -> TransferService:
        from memcube.domain.transfer import TransferService

        return TransferService(self.memories, self.directory, self.index, self.embedder)

    @cached_property
    def maintenance(self) -> Maintenance:
        from memcube.domain.maintenance import Maintenance

        return Maintenance(self.memories, self.index, self.embedder)

    @cached_property
    def expiry(self) -> ExpiryService:
        """Setting and clearing one memory's expiry (for the update route)."""
        from memcube.domain.expiry import ExpiryService

        return ExpiryService(self.memories, self.directory, self.index)

    @cached_property
    def sweeper(self) -> ExpirySweep:
        """Erases expired memories (the embedded worker's loop; the AWS worker's schedule)."""
        from memcube.domain.expiry import ExpirySweep

        return ExpirySweep(self.memories, self.stores.expiring, self.index, self.deleter)

    @cached_property
    def chat(self) -> ChatService:
        """Chat with memory (the API's alone): the LLM is built on the first chat, not before."""
        from memcube.domain.chat import ChatService

        s = self.settings
        return ChatService(
            self.searcher,
            self.add,
            self.messages,
            self.directory,
            self.llm,
            model_name=s.llm_model,
            sync_timeout=s.sync_timeout_seconds,
        )

    @cached_property
    def conversations(self) -> Conversations:
        from memcube.domain.chat import Conversations

        return Conversations(self.messages)

    @cached_property
    def editor(self) -> EditService:
        from memcube.domain.edits import EditService
        from memcube.domain.model import iso, utcnow

        return EditService(self.memories, self.directory, self.index, self.embedder, lambda: iso(utcnow()))

    @cached_property
    def feedback(self) -> FeedbackIntake:
        from memcube.domain.corrections import FeedbackIntake

        return FeedbackIntake(self.add, self.memories, self.directory, self.llm)

    def close(self) -> None:
        stores = self.__dict__.get("stores")
        if stores is not None:
            stores.close()
        for name in self._closeable:
            adapter = self.__dict__.get(name)
            close = getattr(adapter, "close", None)
            if close is not None:
                close()


class NotBuiltHere(RuntimeError):
    """An adapter of a backend this container does not build, and was not given."""


def _required(value: str | None) -> str:
    if not value:  # Settings validates these for the aws backend; this guards direct use
        raise RuntimeError("a required MEMCUBE_* setting for the aws backend is missing")
    return value


_lock = threading.Lock()
_container: Container | None = None


def forget_container() -> None:
    """Close and drop the process-wide container: the next `container_from_env` builds a new one
    (after a SnapStart restore, so no client of the snapshot's is used)."""
    global _container
    with _lock:
        old, _container = _container, None
    if old is not None:
        old.close()


def container_from_env() -> Container:
    """The process-wide container (Lambda handlers use it; built on first call)."""
    global _container  # noqa: PLW0603 - the one process-wide cache, by design
    with _lock:
        if _container is None:
            _container = Container(Settings())
        return _container
