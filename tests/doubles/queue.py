"""`TaskQueue` as a list: a test double."""

from __future__ import annotations

from collections.abc import Sequence

from memcube.domain.messages import QueuedAdd


class InMemoryQueue:
    """Records sent messages; FIFO dedup by (task, cube) like SQS within its window."""

    def __init__(self) -> None:
        self.sent: list[QueuedAdd] = []
        self._seen: set[str] = set()
        self.fail_next = 0
        """Set >0 to make the next sends raise: a queue outage."""

    def clear(self) -> None:
        """Forget every sent message and its deduplication id (as a long benchmark needs)."""
        self.sent.clear()
        self._seen.clear()

    def send(self, messages: Sequence[QueuedAdd]) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("queue unavailable")
        for msg in messages:
            if msg.dedup_id in self._seen:
                continue
            self._seen.add(msg.dedup_id)
            self.sent.append(msg)

    def discard(self, cube_id: str, user_id: str | None) -> list[str] | None:
        gone = [m for m in self.sent if m.cube_id == cube_id and user_id in (None, m.user_id)]
        self.sent = [m for m in self.sent if m not in gone]
        return [m.model_dump_json() for m in gone]

    def send_raw(self, entries: Sequence[tuple[str, str, str]]) -> None:
        """`RawQueue` (an operator's redrive): each body as it was queued, deduplicated by its dedup id."""
        for _, dedup_id, body in entries:
            if dedup_id not in self._seen:
                self._seen.add(dedup_id)
                self.sent.append(QueuedAdd.model_validate_json(body))
