"""Chat's rules on the doubles: citations read back (only of memories offered), markers stripped
from what is remembered, the history cut to its last turns, and refusals before anything runs."""

from __future__ import annotations

import pytest

from memcube.domain.chat import (
    ChatCommand,
    ChatService,
    Reference,
    ThinkSplitter,
    cited_references,
    strip_citations,
)
from memcube.domain.commands import SearchQuery
from memcube.domain.errors import NotConfigured
from memcube.domain.model import Principal
from memcube.ports import ChatTurn
from tests.doubles import doubles_container
from tests.unit.world import ScriptedLLM

OFFERED = [
    Reference(1, "mem-a", "alice", "Alice lives in Lisbon.", 0.9),
    Reference(2, "mem-b", "alice", "Alice has a sister, Ana.", 0.7),
]


def test_citations_by_id_or_number_count_once_in_order_and_an_unknown_marker_cites_nothing() -> None:
    text = "Ana [2:mem-b] lives near you [1] [2] [9:mem-x] [3]."
    assert [r.memory_id for r in cited_references(text, OFFERED)] == ["mem-b", "mem-a"]
    assert cited_references("No memory helped.", OFFERED) == []


def test_the_remembered_answer_has_no_citation_markers() -> None:
    assert strip_citations("You live in Lisbon [1:mem-a]. Ana [2] is your sister.") == (
        "You live in Lisbon. Ana is your sister."
    )


def command(**fields: object) -> ChatCommand:
    base: dict[str, object] = {
        "user_id": "alice",
        "query": "Where do I live?",
        "search": SearchQuery(query="Where do I live?", cube_ids=["alice"], relativity=0.0),
        "session_id": "s1",
        "writable_cube_ids": ["alice"],
    }
    return ChatCommand(**(base | fields))  # type: ignore[arg-type]


def service(llm: ScriptedLLM | None) -> ChatService:
    c = doubles_container()
    return ChatService(c.searcher, c.add, c.messages, c.directory, llm, model_name="m", sync_timeout=1)


def test_without_an_llm_nothing_is_searched_and_the_error_names_the_setting() -> None:
    with pytest.raises(NotConfigured, match="MEMCUBE_LLM"):
        service(None).prepare(command(), Principal(user_id="alice"))


def test_only_the_last_twenty_history_turns_reach_the_model_before_the_question() -> None:
    history = [ChatTurn("user" if n % 2 == 0 else "assistant", f"turn {n}") for n in range(30)]
    prepared = service(ScriptedLLM()).prepare(command(history=history), Principal(user_id="alice"))
    assert [t.content for t in prepared.turns[1:-1]] == [f"turn {n}" for n in range(10, 30)]
    assert prepared.turns[-1] == ChatTurn("user", "Where do I live?")
    assert "(no memory matched)" in prepared.turns[0].content


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 7])
def test_a_streamed_think_part_becomes_reasoning_wherever_the_pieces_cut_its_tags(cut: int) -> None:
    text = "<think>She moved in May.</think>You live in Lisbon <3."
    split = ThinkSplitter()
    events = [e for n in range(0, len(text), cut) for e in split.feed(text[n : n + cut])] + split.flush()
    kinds = {kind: "".join(t for k, t in events if k == kind) for kind in ("reasoning", "text")}
    assert kinds == {"reasoning": "She moved in May.", "text": "You live in Lisbon <3."}
