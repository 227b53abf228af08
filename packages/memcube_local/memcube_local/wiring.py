"""The embedded default's composition root: the layer's `Container` plus the adapters of the
`embedded` backend (SQLite stores, queue and index in `data_dir`, the MiniLM embedder). On any
other backend (`aws` from an operator's shell) it is the layer's container unchanged."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from memcube.settings import Settings
from memcube.wiring import Container

if TYPE_CHECKING:
    from memcube.ports import Embedder, SearchIndex, Stores, TaskQueue
    from memcube_local.sqlite.queue import SqliteQueue


class LocalContainer(Container):
    """The layer's container, with the embedded backend's adapters built on first use."""

    _closeable = ("local_queue", "index")

    def __init__(self, settings: Settings, **overrides: object) -> None:
        super().__init__(settings, **overrides)
        self.wakeup = threading.Condition()
        """Notified when a message is enqueued, so embedded workers start at once."""

    @property
    def embedded(self) -> bool:
        return self.settings.backend == "embedded"

    def _notify(self) -> None:
        with self.wakeup:
            self.wakeup.notify_all()

    @cached_property
    def stores(self) -> Stores:
        if not self.embedded:
            return super().stores
        from memcube_local.sqlite import open_stores

        return open_stores(self.settings.data_dir / "store.db")

    @cached_property
    def local_queue(self) -> SqliteQueue:
        from memcube_local.sqlite.queue import SqliteQueue

        return SqliteQueue(self.settings.data_dir / "queue.db", on_send=self._notify)

    @cached_property
    def queue(self) -> TaskQueue:
        return self.local_queue if self.embedded else super().queue

    @cached_property
    def index(self) -> SearchIndex:
        if not self.embedded:
            return super().index
        from memcube_local.sqlite.index import SqliteIndex

        return SqliteIndex(self.settings.data_dir / "index.db")

    @cached_property
    def embedder(self) -> Embedder:
        """MiniLM when chosen (by default on the embedded backend); else the layer's embedders."""
        if self.settings.embedder_kind != "minilm":
            return super().embedder
        from memcube_local.minilm import MiniLMEmbedder

        return MiniLMEmbedder()
