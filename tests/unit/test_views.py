"""The public views of stored entities: explicit, and the same JSON as the stored form minus what
clients never see."""

from __future__ import annotations

from memcube.domain.model import MemoryItem, MemoryMetadata, SourceMessage
from memcube_api.schemas.views import METADATA_VIEW, memory_view


def test_the_memory_view_shows_every_stored_field_but_the_embedding_in_the_stored_order() -> None:
    """The answer's view of a memory names its fields: a field added to the stored form must be
    decided on (shown or not) in `memcube_api.schemas.views.METADATA_VIEW`."""
    assert set(MemoryMetadata.model_fields) - METADATA_VIEW == {"embedding"}
    meta = MemoryMetadata(
        user_id="alice", session_id="s", cube_id="alice", memory_type="LongTermMemory", key="k",
        sources=[SourceMessage(type="chat", role="user", content="hi")], embedding=[0.1, 0.2],
        created_at="2026-01-01T00:00:00.000Z", updated_at="2026-01-01T00:00:00.000Z", content_hash="h", task_id="t",
    )  # fmt: skip
    item = MemoryItem(id="m1", memory="Alice likes tea.", metadata=meta)
    stored = item.model_dump(mode="json")
    del stored["metadata"]["embedding"]
    assert memory_view(item) == stored
    assert list(memory_view(item)["metadata"]) == list(stored["metadata"])
