"""Point 2, crash points: the worker dies (or fails) at each step of an add, the message is
delivered again, and the result is exactly the crash-free one: the same items, the same outcomes
per memory, the store and the index in agreement (`memcube reconcile`: zero differences), which
reconcile can also repair when differences are injected."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import TaskState
from memcube.domain.tasks import scoped_task_id
from memcube.settings import Settings
from memcube.wiring import Container
from memcube_local.cli import main
from memcube_local.sqlite.index import SqliteIndex
from memcube_local.wiring import LocalContainer
from tests.reliability.conftest import Figures
from tests.reliability.faults import CRASH_POINTS, Crash, CrashPoint, Fault, Faulty
from tests.reliability.harness import CONVERSATION, RuleLLM, Stack, _edited, _long, dumps, holdings, outcomes


def fine_rule(system: str, user: str) -> str:
    """Extraction: one fact per city named; the judge: another city contradicts; feedback: UPDATE."""
    if "extract long-term memories" in system:
        cities = [c for c in ("Lisbon", "Porto") if c in user.split("</conversation>", maxsplit=1)[0]]
        items = [{"key": "home", "memory_type": "UserMemory", "value": f"The user lives in {c}."} for c in cities]
        return json.dumps({"memory_list": items, "summary": "where the user lives"})
    if "free of duplicates and stale facts" in system:
        ask = json.loads(user)
        relation = "redundant" if all(e["memory"] == ask["new"] for e in ask["existing"]) else "contradictory"
        return json.dumps(
            {"judgements": [{"id": e["id"], "relation": relation, "reason": "moved"} for e in ask["existing"]]}
        )
    ask = json.loads(user)  # feedback
    decisions = [{"operation": "UPDATE", "id": r["id"], "memory": "The user lives in Porto.", "reason": "corrected"}
                 for r in ask["related"] if "Lisbon" in r["memory"]]  # fmt: skip
    if "dog" in ask["feedback"]:
        decisions.append({"operation": "ADD", "memory": "The user has a dog called Rex.", "key": "pet"})
    return json.dumps({"decisions": decisions})


Scenario = tuple[list[dict[str, Any]], dict[str, Any], bool]
"""(adds processed first, the add that crashes, uses the LLM)"""

SCENARIOS: dict[str, Scenario] = {
    "several memories": (
        [{"user_id": "ann", "messages": "Ann keeps a diary."}],
        {"user_id": "ann", "task_id": "target", "messages": _long("ann", lines=70, words=40)},
        False,
    ),
    "merge into an existing item": (
        [{"user_id": "ann", "messages": CONVERSATION}],
        {"user_id": "ann", "task_id": "target", "messages": _edited(CONVERSATION)},
        False,
    ),
    "feedback that supersedes": (
        [{"user_id": "ann", "messages": "Alice lives in Lisbon near the castle."},
         {"user_id": "ann", "messages": "Bob plays the cello on Sundays."}],
        {"user_id": "ann", "task_id": "target", "is_feedback": True, "messages": [
            {"role": "user", "content": "Where does Alice live?"},
            {"role": "user", "content": "No, Alice lives in Porto near the castle, not Lisbon."}]},
        False,
    ),
    "LLM judge supersedes (fine mode)": (
        [{"user_id": "ann", "messages": "I live in Lisbon."}],
        {"user_id": "ann", "task_id": "target", "messages": "I moved to Porto last week."},
        True,
    ),
    "LLM feedback update": (
        [{"user_id": "ann", "messages": "I live in Lisbon."}],
        {"user_id": "ann", "task_id": "target", "is_feedback": True, "messages": [
            {"role": "assistant", "content": "You live in Lisbon."},
            {"role": "user", "content": "Wrong, I live in Porto now."}]},
        True,
    ),
    "LLM feedback with two decisions": (
        [{"user_id": "ann", "messages": "I live in Lisbon."}],
        {"user_id": "ann", "task_id": "target", "is_feedback": True, "messages": [
            {"role": "assistant", "content": "You live in Lisbon."},
            {"role": "user", "content": "Wrong, I live in Porto now, with my dog Rex."}]},
        True,
    ),
}  # fmt: skip

CRASHES: dict[str, Callable[[], BaseException]] = {
    "hard": lambda: Crash("the worker died here"),
    "soft": lambda: RuntimeError("injected failure"),
}


def run(scenario: Scenario, point: CrashPoint | None, kind: str) -> tuple[Stack, Fault | None]:
    before, target, with_llm = scenario
    stack = Stack(llm=RuleLLM(fine_rule) if with_llm else None)
    with stack.serving():
        for n, body in enumerate(before):
            stack.add(body | {"task_id": f"before-{n}"})
        stack.sqs.drain_all()
        fault = None
        if point is not None:
            port = stack.index if point.port == "index" else getattr(stack.stores, point.port)
            fault = port.arm(Fault(point.method, point.when, point.nth, CRASHES[kind]))
        stack.add(target)
        stack.sqs.drain_all()
    return stack, fault


@pytest.fixture(scope="module")
def oracles() -> dict[str, tuple[Any, Any]]:
    found = {}
    for name, scenario in SCENARIOS.items():
        stack, _ = run(scenario, None, "hard")
        found[name] = (outcomes(stack, ["target"], "ann"), holdings(stack))
    kinds = {name: [k for _, _, memories in o["target"] for k, _, _ in memories] for name, (o, _) in found.items()}
    assert kinds["merge into an existing item"] == ["merged"], kinds
    assert sorted(kinds["feedback that supersedes"]) == ["archived", "updated"], kinds
    assert sorted(kinds["LLM judge supersedes (fine mode)"]) == ["archived", "updated"], kinds
    assert sorted(kinds["LLM feedback update"]) == ["archived", "updated"], kinds
    assert sorted(kinds["LLM feedback with two decisions"]) == ["added", "archived", "updated"], kinds
    assert kinds["several memories"].count("added") >= 3, kinds
    return found


@pytest.mark.parametrize("kind", list(CRASHES))
@pytest.mark.parametrize("point", CRASH_POINTS, ids=[p.name for p in CRASH_POINTS])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_crash_at_each_step_then_redelivery_gives_the_crash_free_result(
    name: str, point: CrashPoint, kind: str, oracles: dict[str, tuple[Any, Any]], figures: Figures
) -> None:
    stack, fault = run(SCENARIOS[name], point, kind)
    assert fault is not None and fault.fired, f"the crash point was never reached: {point}"
    result, held = outcomes(stack, ["target"], "ann"), holdings(stack)
    assert result == oracles[name][0], dumps({"got": result, "want": oracles[name][0]})
    assert held == oracles[name][1]
    assert stack.differences() == 0  # store and index agree, versions included
    record = stack.memory.tasks.get_task(scoped_task_id("ann", "target"))
    assert record is not None and record.status is TaskState.COMPLETED
    assert record.parts[0].error is None
    assert stack.memory.dead_letters.list_dead_letters() == []
    done = figures.points.get("2 crash points", {}).get("cases", 0)
    figures.record("2 crash points", cases=done + 1, scenarios=len(SCENARIOS), points=len(CRASH_POINTS),
                   kinds=len(CRASHES), differences_after_redelivery=0)  # fmt: skip


def _embedded(data: Path) -> tuple[Container, Faulty]:
    index = Faulty(SqliteIndex(data / "index.db"))
    return LocalContainer(Settings(backend="embedded", embedder="hash", data_dir=data), index=index), index


def _reconcile(data: Path, cube: str, *repair: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["reconcile", "--data-dir", str(data), "--cube", cube, *repair], env={"MEMCUBE_EMBEDDER": "hash"}
    )
    return result.exit_code, result.output


def test_memcube_reconcile_sees_a_crash_between_store_and_index_and_the_redelivery_clears_it(
    tmp_path: Path, figures: Figures
) -> None:
    """On the embedded default's SQLite files: a crash after the store write leaves the index
    behind (reconcile says so and exits 1); the redelivery catches up (zero differences); then
    reconcile repairs what is injected: a missing, an orphaned and a stale document."""
    data = tmp_path / "data"
    container, index = _embedded(data)
    msg = QueuedAdd.model_validate(
        {"task_id": "t1", "cube_id": "ann", "user_id": "ann", "messages": [{"type": "text", "content": "fact one"}]}
    )
    other = QueuedAdd.model_validate(
        {"task_id": "t2", "cube_id": "ann", "user_id": "ann", "messages": [{"type": "text", "content": "fact two"}]}
    )
    assert container.ingest.handle(Delivery(other.model_dump_json(), "m2", 1, 5)) is Verdict.DONE
    index.arm(Fault("upsert", "before"))
    with pytest.raises(Crash):
        container.ingest.handle(Delivery(msg.model_dump_json(), "m1", 1, 5))
    container.close()
    code, out = _reconcile(data, "ann")
    assert (code, out.strip()) == (
        1,
        "cube ann: 1 missing from the index, 0 in the index but not the store, 0 stale in the index",
    )

    container, index = _embedded(data)
    assert container.ingest.handle(Delivery(msg.model_dump_json(), "m1", 2, 5)) is Verdict.DONE
    items = {i.memory: i for i in container.memories.iter_memories("ann")}
    # Inject one difference of each kind: a document dropped, one the store never had, one stale.
    container.index.delete("ann", [items["fact one"].id])
    ghost = items["fact two"].model_copy(update={"id": "ghost"})
    stale = items["fact two"].model_copy(deep=True)
    stale.metadata.updated_at = "2000-01-01T00:00:00.000Z"
    container.index.upsert([ghost, stale])
    container.close()
    code, out = _reconcile(data, "ann")
    assert (code, out.strip()) == (
        1,
        "cube ann: 1 missing from the index, 1 in the index but not the store, 1 stale in the index",
    )
    code, out = _reconcile(data, "ann", "--repair")
    assert code == 0 and out.strip().endswith("(repaired)"), out
    assert _reconcile(data, "ann") == (
        0,
        "cube ann: 0 missing from the index, 0 in the index but not the store, 0 stale in the index\n",
    )
    figures.record("2 crash points", reconcile_repaired="1 missing + 1 orphan + 1 stale -> 0")


def test_an_llm_that_answers_differently_on_redelivery_orphans_nothing() -> None:
    """The first reply extracted two facts and the worker died after storing them; the second reply
    (same conversation) extracts only one: both stored items are reported and indexed."""
    replies = iter([["Lisbon", "Porto"], ["Lisbon"]])

    def changing(system: str, user: str) -> str:
        if "extract long-term memories" not in system:  # the judge: the two cities are independent facts
            existing = json.loads(user)["existing"]
            return json.dumps({"judgements": [{"id": e["id"], "relation": "independent"} for e in existing]})
        cities = next(replies)
        items = [{"key": c, "memory_type": "UserMemory", "value": f"The user has lived in {c}."} for c in cities]
        return json.dumps({"memory_list": items, "summary": "cities"})

    stack = Stack(llm=RuleLLM(changing))
    stack.index.arm(Fault("upsert", "before"))
    with stack.serving():
        stack.add({"user_id": "ann", "task_id": "target", "messages": "I lived in Lisbon, then in Porto."})
        stack.sqs.drain_all()
    [part] = outcomes(stack, ["target"], "ann")["target"]
    assert part[1] == "completed"
    assert [kind for kind, _, _ in part[2]] == ["added", "added"]
    assert sorted(i.memory for i in stack.memory.memories.iter_memories()) == [
        "The user has lived in Lisbon.",
        "The user has lived in Porto.",
    ]
    assert stack.differences() == 0
