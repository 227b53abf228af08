"""The worker's own check of a feedback's `retrieved_memory_ids` (a direct producer sends them
unchecked): only activated items of the part's cube, written by the feedback's user and not by
this feedback, are offered; each one left out is noted with why."""

from __future__ import annotations

from datetime import UTC, datetime

from memcube.domain.feedback import given_candidates
from memcube.domain.model import MemoryItem
from tests.contract.support import memory


def item(memory_id: str, text: str, *, cube: str = "cube-a", user: str = "u1", status: str = "activated") -> MemoryItem:
    base = memory(memory_id, text, cube=cube)
    meta = base.metadata.model_copy(update={"user_id": user, "status": status, "task_id": f"task-of-{memory_id}"})
    return base.model_copy(update={"metadata": meta})


def test_only_the_feedback_users_activated_items_of_its_cube_are_offered_and_the_rest_noted() -> None:
    probe = item("probe", "alice lives in porto now", user="u1")
    found = [
        item("mine", "alice lives in lisbon"),
        item("elsewhere", "alice lives in lisbon", cube="cube-b"),
        item("archived", "alice lived in faro", status="archived"),
        item("theirs", "alice lives in braga", user="u2"),
        item("same-task", "alice lives in porto"),
    ]
    notes: list[str] = []
    task = "task-of-same-task"
    offered = given_candidates(
        probe, ["mine", "elsewhere", "archived", "theirs", "same-task", "gone"], found, task, notes
    )
    assert [n.item.id for n in offered] == ["mine"]
    assert notes == [
        "feedback: retrieved memory 'elsewhere' is in another cube ('cube-b'); it is not corrected",
        "feedback: retrieved memory 'archived' is archived; it is not corrected",
        "feedback: retrieved memory 'theirs' was written by another user; it is not corrected",
        "feedback: retrieved memory 'same-task' was written by this feedback; it is not corrected",
        "feedback: retrieved memory 'gone' is gone; it is not corrected",
    ]


def test_an_expired_retrieved_item_is_not_offered_and_the_note_says_it_expired() -> None:
    probe = item("probe", "alice lives in porto now")
    probe.metadata.created_at = "2026-01-01T00:00:10.000Z"
    lasting, expired = item("lasting", "alice lives in lisbon"), item("expired", "alice lived in faro")
    expired.metadata.expires_at = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    lasting.metadata.expires_at = expired.metadata.expires_at + 3600
    notes: list[str] = []
    offered = given_candidates(probe, ["lasting", "expired"], [lasting, expired], "task-x", notes)
    assert [n.item.id for n in offered] == ["lasting"]
    assert notes == ["feedback: retrieved memory 'expired' has expired; it is not corrected"]
