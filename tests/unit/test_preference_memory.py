"""Preference memory in fine mode: the reader's reply gives explicit and implicit preferences as
`PreferenceMemory` items, placed among preferences only; a changed preference supersedes the
old one (archived, with history); fast mode says why none were extracted."""

from __future__ import annotations

import json
from typing import Any

from memcube.domain.extraction import Extraction, Extractor
from memcube.domain.model import Principal, TaskState
from memcube.domain.organizer import Thresholds
from memcube.domain.preferences import FAST_MODE_NOTE, NO_LLM_NOTE, read_preferences
from memcube.domain.reader import read
from memcube_api.schemas.messages import ChatMessage, flatten
from tests.routed_llm import RoutedLLM
from tests.unit.world import ScriptedLLM, World, extraction, fact, kinds


def with_preferences(*prefs: dict[str, Any], facts: list[dict[str, Any]] | None = None) -> str:
    body = json.loads(extraction(*(facts or [])))
    body["preference_list"] = list(prefs)
    return json.dumps(body)


def pref(text: str, kind: str = "explicit_preference", reasoning: str = "said so", key: str = "") -> dict[str, Any]:
    return {"preference_type": kind, "preference": text, "reasoning": reasoning, "key": key, "tags": ["food"]}


def units(text: str) -> list[Any]:
    return flatten([ChatMessage(role="user", content=text)], "messages")


def test_the_prompt_asks_for_explicit_and_implicit_preferences_and_the_reply_is_parsed() -> None:
    reply = with_preferences(
        pref("The user prefers window seats on flights.", key="seating"),
        pref("The user likes short answers.", kind="Implicit Preference", reasoning="asked twice to be brief"),
        facts=[fact("The user flies to Porto on 2026-04-02.")],
    )
    llm = ScriptedLLM(reply)
    [window] = read(units("Book me a window seat to Porto. Keep it short."))
    result = Extractor(llm).extract(window, custom_tags=[], now="2026-03-01T00:00:00Z")
    assert isinstance(result, Extraction)
    system, _ = llm.calls[0]
    assert "explicit_preference" in system and "implicit_preference" in system and "preference_list" in system
    assert [(p.preference_type, p.title) for p in result.preferences] == [
        ("explicit_preference", "seating"),
        ("implicit_preference", "The user likes short answers."),
    ]
    assert result.preferences[1].reasoning == "asked twice to be brief"
    assert [i.value for i in result.items] == ["The user flies to Porto on 2026-04-02."]


def test_malformed_preferences_are_dropped_and_memos_own_key_names_are_read() -> None:
    found, notes = read_preferences(
        [
            {"implicit_preference": "The user cooks vegetarian food.", "reasoning": "only asks for vegetarian recipes"},
            {"preference_type": "explicit_preference"},  # no text
            "not an object",
        ]
    )
    assert [(p.preference_type, p.preference) for p in found] == [
        ("implicit_preference", "The user cooks vegetarian food.")
    ]
    assert notes == ["2 malformed preference(s) dropped from the LLM reply"]
    assert read_preferences("a string") == ([], ["preference_list was not a list; no preferences were read"])


def test_fine_mode_stores_each_preference_as_a_preference_memory_with_its_type_and_reasoning() -> None:
    reply = with_preferences(
        pref("The user prefers tea to coffee.", reasoning="said: I always pick tea", key="drinks"),
        pref("The user eats no meat.", kind="implicit_preference", reasoning="only vegetarian orders"),
        facts=[fact("The user lives in Lisbon.")],
    )
    world = World(llm=ScriptedLLM(reply))
    part = world.run("I always pick tea over coffee. Order the veggie curry again.", custom_tags=["chat"])
    assert (part.mode, kinds(part)) == ("fine", ["added", "added", "added"])
    assert [o.memory_type for o in part.outcomes] == ["UserMemory", "PreferenceMemory", "PreferenceMemory"]
    prefs = {i.memory: i for i in world.active() if i.metadata.memory_type == "PreferenceMemory"}
    tea = prefs["The user prefers tea to coffee."].metadata
    assert (tea.preference_type, tea.preference, tea.reasoning, tea.key) == (
        "explicit_preference", "The user prefers tea to coffee.", "said: I always pick tea", "drinks",
    )  # fmt: skip
    assert tea.tags == ["mode:fine", "preference", "food", "chat"]
    assert tea.sources[0].content.startswith("I always pick tea")
    assert prefs["The user eats no meat."].metadata.preference_type == "implicit_preference"
    assert {i.id for i in prefs.values()} <= world.searchable()


def test_a_preference_saying_what_a_fact_says_is_kept_beside_it_not_refused_as_its_copy() -> None:
    same = "The user prefers tea to coffee."
    world = World(llm=ScriptedLLM(with_preferences(pref(same), facts=[fact(same)])))
    part = world.run("I prefer tea to coffee.")
    assert kinds(part) == ["added", "added"]
    assert sorted(i.metadata.memory_type for i in world.active()) == ["PreferenceMemory", "UserMemory"]


def test_a_changed_preference_supersedes_the_old_one_which_is_archived_with_its_history() -> None:
    llm = RoutedLLM(
        [
            with_preferences(pref("The user loves sushi.", key="sushi")),
            with_preferences(pref("The user no longer eats sushi and prefers ramen.", key="sushi")),
        ],
        relation="contradictory",
    )
    world = World(llm=llm, thresholds=Thresholds(related=0.0))  # the judge sees every preference
    [first] = world.run("I love sushi!").outcomes
    second = world.run("I've gone off sushi, ramen is my thing now.")
    assert kinds(second) == ["updated", "archived"]
    updated, archived = second.outcomes
    assert (archived.memory_id, archived.memory_type) == (first.memory_id, "PreferenceMemory")
    assert archived.related_ids == [updated.memory_id] and "changed" in archived.reason
    old = world.item(first.memory_id)
    assert (old.metadata.status, old.metadata.covered_history) == ("archived", updated.memory_id)
    assert [e["action"] for e in old.metadata.history] == ["archived"]
    assert old.metadata.history[0]["previous"]["metadata"]["status"] == "activated"
    [active] = [i for i in world.active() if i.metadata.memory_type == "PreferenceMemory"]
    assert active.memory == "The user no longer eats sushi and prefers ramen."
    assert world.searchable() == {active.id}
    assert llm.judged[0] == [{"id": first.memory_id, "memory": "The user loves sushi."}]


def test_an_unchanged_preference_said_again_is_a_duplicate() -> None:
    llm = RoutedLLM([with_preferences(pref("The user loves sushi.")), with_preferences(pref("The user loves sushi."))])
    world = World(llm=llm)
    [first] = world.run("I love sushi!").outcomes
    again = world.run("Sushi is the best, I love it.")
    assert kinds(again) == ["duplicate"] and again.outcomes[0].memory_id == first.memory_id


def test_preferences_are_judged_against_preferences_only_never_against_facts() -> None:
    llm = RoutedLLM(
        [
            with_preferences(facts=[fact("The user loves sushi.")]),
            with_preferences(pref("The user loves sushi a lot.")),
        ],
        relation="redundant",
    )
    world = World(llm=llm, thresholds=Thresholds(related=0.0))
    world.run("I love sushi!")
    part = world.run("Really, I love sushi a lot.")
    assert kinds(part) == ["added"] and part.outcomes[0].memory_type == "PreferenceMemory"
    assert llm.judged == []  # the only other memory is a fact: nothing of its kind to compare with


def test_a_document_chunk_yields_no_preferences() -> None:
    assam = fact("Tea grows in Assam.", memory_type="LongTermMemory")
    reply = with_preferences(pref("The user prefers tea."), facts=[assam])
    world = World(llm=ScriptedLLM(reply))
    file = {"type": "file", "file": {"file_data": "Tea grows in Assam. I prefer tea.", "filename": "tea.txt"}}
    part = world.run([file])
    assert [o.memory_type for o in part.outcomes] == ["LongTermMemory"]


def test_a_reply_with_only_preferences_is_not_a_reply_with_nothing_worth_remembering() -> None:
    world = World(llm=ScriptedLLM(with_preferences(pref("The user likes jazz."))))
    part = world.run("Play some jazz.")
    assert kinds(part) == ["added"]
    assert not any("nothing worth remembering" in n for n in part.notes)


def test_without_an_llm_the_task_says_why_no_preferences_were_extracted() -> None:
    part = World().run("I prefer tea.")
    assert part.status is TaskState.COMPLETED and part.mode == "fast"
    assert NO_LLM_NOTE in part.notes and "no LLM is configured" in NO_LLM_NOTE


def test_mode_fast_with_an_llm_says_fast_mode_was_asked() -> None:
    part = World(llm=ScriptedLLM()).run("I prefer tea.", mode="fast")
    assert FAST_MODE_NOTE in part.notes and NO_LLM_NOTE not in part.notes


def test_a_redelivery_after_a_crash_reports_the_stored_preference_and_stores_no_second_one() -> None:
    llm = ScriptedLLM(with_preferences(pref("The user likes jazz.")), with_preferences(pref("The user likes jazz.")))
    world = World(llm=llm)
    task_id = world.submit("Play some jazz.")
    [message] = world.queue.sent
    world.deliver()
    first = world.part(task_id)
    stored = world.item(first.outcomes[0].memory_id)
    world.stores.tasks.put_task_part(task_id, first.model_copy(update={"status": TaskState.IN_PROGRESS}))
    world.queue.sent = [message]
    world.deliver()
    again = world.part(task_id)
    assert [(o.memory_id, o.outcome) for o in again.outcomes] == [(stored.id, "added")]
    assert len(world.active()) == 1


def test_undo_of_a_changed_preference_brings_the_old_one_back() -> None:
    llm = RoutedLLM(
        [
            with_preferences(pref("The user loves sushi.", key="sushi")),
            with_preferences(pref("The user no longer eats sushi.", key="sushi")),
        ],
        relation="contradictory",
    )
    world = World(llm=llm, thresholds=Thresholds(related=0.0))
    [first] = world.run("I love sushi!").outcomes
    updated, _ = world.run("No more sushi for me.").outcomes
    world.history.undo(updated.memory_id, Principal(user_id="alice"))
    [active] = [i for i in world.active() if i.metadata.memory_type == "PreferenceMemory"]
    assert (active.id, active.metadata.preference_type) == (first.memory_id, "explicit_preference")
    assert world.item(updated.memory_id).metadata.status == "archived"
    assert world.searchable() == {first.memory_id}
