"""Domain services built on a whole `Stores` (each takes only the ports it uses), for tests that
wire services by hand instead of through a `Container`."""

from __future__ import annotations

from typing import Any

from memcube.domain.deletion import DeletionService
from memcube.domain.ingest import IngestService
from memcube.domain.tasks import AddService
from memcube.ports import Embedder, SearchIndex, Stores, TaskQueue


def add_service(stores: Stores, queue: TaskQueue, **options: Any) -> AddService:
    return AddService(stores.tasks, stores.idempotency, stores.dead_letters, stores.directory, queue, **options)


def ingest_service(stores: Stores, index: SearchIndex, embedder: Embedder, **options: Any) -> IngestService:
    return IngestService(
        tasks=stores.tasks,
        dead_letters=stores.dead_letters,
        users=stores.directory,
        memories=stores.memories,
        erasures=stores.erasures,
        index=index,
        embedder=embedder,
        **options,
    )


def deletion_service(stores: Stores, index: SearchIndex, queue: TaskQueue, **options: Any) -> DeletionService:
    return DeletionService(
        memories=stores.memories,
        erasures=stores.erasures,
        tasks=stores.tasks,
        dead_letters=stores.dead_letters,
        users=stores.directory,
        index=index,
        queue=queue,
        **options,
    )
