"""History and undo: every change keeps its previous version; undo reverts a merge or a
correction, restoring the previous active item(s) and the index."""

from __future__ import annotations

import pytest

from memcube.domain.errors import InvalidRequest, NotFound
from memcube.domain.model import Principal
from tests.unit.test_organizer import CONVERSATION, edited
from tests.unit.world import World, kinds, only

ALICE = Principal(user_id="alice")


def test_undo_of_a_merge_restores_the_survivor_and_the_merged_item() -> None:
    world = World()
    [added] = world.run(CONVERSATION, custom_tags=["relocation"]).outcomes
    merged = only(world.run(edited(CONVERSATION), custom_tags=["work"]), "merged")
    receipt = world.history.undo(added.memory_id, ALICE)
    assert (receipt.undone, receipt.reverted, receipt.restored) == ("merged", [added.memory_id], merged.related_ids)
    survivor = world.item(added.memory_id)
    assert survivor.metadata.custom_tags == ["relocation"]
    assert survivor.metadata.merged_from == []
    assert len(survivor.metadata.sources) == 3
    assert [e["action"] for e in survivor.metadata.history] == ["merged", "undone"]
    assert survivor.metadata.version == 3
    assert {i.id for i in world.active()} == {added.memory_id, *merged.related_ids}
    assert world.searchable() == {added.memory_id, *merged.related_ids}
    restored = world.item(merged.related_ids[0])
    assert restored.metadata.custom_tags == ["work"] and restored.metadata.embedding


def test_undo_of_a_correction_reactivates_the_old_item_and_archives_the_correction() -> None:
    world = World()
    [old] = world.run("Alice lives in Lisbon near the castle.").outcomes
    world.run("Bob plays the cello on Sundays.")
    part = world.run(
        [{"role": "user", "content": "No, Alice lives in Porto near the castle, not Lisbon."}], is_feedback=True
    )
    correction = only(part, "updated").memory_id
    receipt = world.history.undo(correction, ALICE)
    assert (receipt.undone, receipt.restored, receipt.archived) == ("supersedes", [old.memory_id], [correction])
    restored = world.item(old.memory_id)
    assert (restored.metadata.status, restored.metadata.covered_history) == ("activated", None)
    assert [e["action"] for e in restored.metadata.history] == ["archived", "restored"]
    assert world.item(correction).metadata.status == "archived"
    assert old.memory_id in world.searchable() and correction not in world.searchable()


def test_undo_from_the_archived_side_undoes_the_same_correction() -> None:
    world = World()
    [old] = world.run("Alice lives in Lisbon near the castle.").outcomes
    part = world.run(
        [{"role": "user", "content": "No, Alice lives in Porto near the castle, not Lisbon."}], is_feedback=True
    )
    assert sorted(kinds(part)) == ["archived", "updated"]
    receipt = world.history.undo(old.memory_id, ALICE)
    assert receipt.restored == [old.memory_id]
    assert [i.id for i in world.active()] == [old.memory_id]


def test_a_second_undo_has_nothing_left_to_undo() -> None:
    world = World()
    [added] = world.run(CONVERSATION).outcomes
    world.run(edited(CONVERSATION))
    world.history.undo(added.memory_id, ALICE)
    with pytest.raises(InvalidRequest, match="no merge or correction to undo"):
        world.history.undo(added.memory_id, ALICE)


def test_another_users_item_cannot_be_read_or_undone_and_does_not_leak() -> None:
    world = World()
    [added] = world.run(CONVERSATION).outcomes
    world.run(edited(CONVERSATION))
    mallory = Principal(user_id="mallory")
    world.stores.directory.register_user("mallory")
    with pytest.raises(NotFound):
        world.history.history(added.memory_id, mallory)
    with pytest.raises(NotFound):
        world.history.undo(added.memory_id, mallory)
    assert world.item(added.memory_id).metadata.version == 2


def test_history_lists_every_version() -> None:
    world = World()
    [added] = world.run(CONVERSATION).outcomes
    world.run(edited(CONVERSATION))
    item = world.history.history(added.memory_id, ALICE)
    [entry] = item.metadata.history
    assert entry["version"] == 2 and entry["previous"]["metadata"]["version"] == 1
    assert "embedding" not in entry["previous"]["metadata"]
