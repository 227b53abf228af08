"""Fast-mode reader: rendering, token windows with overlap, memory types."""

from __future__ import annotations

import itertools

from memcube.domain.model import Role, SourceMessage
from memcube.domain.reader import WINDOW_TOKENS, Sizes, count_tokens, render, windows


def chat(role: Role, content: str, chat_time: str | None = "2025-01-02") -> SourceMessage:
    return SourceMessage(type="chat", role=role, content=content, chat_time=chat_time)


def test_prompt_lines_are_role_time_content_without_empty_brackets() -> None:
    assert render(chat("user", "hi")) == "user: [2025-01-02]: hi"
    assert render(chat("assistant", "yo", None)) == "assistant: yo"
    assert render(SourceMessage(type="text", content="raw note")) == "raw note"


def test_a_window_shows_each_time_once_where_it_changes_and_no_missing_time() -> None:
    units = [
        chat("user", "I moved to Lisbon.", "1:56 pm on 8 May, 2023"),
        chat("assistant", "Nice city.", "1:56 pm on 8 May, 2023"),
        chat("user", "Back home.", "2023-05-09"),
        chat("user", "No time here.", None),
        chat("user", "Someday.", "8 May"),
    ]
    [win] = windows(units)
    assert win.text == (
        "[2023-05-08 13:56]\nuser: I moved to Lisbon.\nassistant: Nice city.\n"
        "[2023-05-09]\nuser: Back home.\nuser: No time here.\n[8 May]\nuser: Someday."
    )


def test_token_count_treats_each_cjk_character_as_a_token() -> None:
    assert count_tokens("我喜欢北京") == 5
    assert count_tokens("Hello, world!") == 4


def test_a_short_conversation_is_one_window_with_all_sources() -> None:
    units = [chat("user", "I moved to Lisbon."), chat("assistant", "Nice city.")]
    [win] = windows(units)
    assert win.text == "[2025-01-02]\nuser: I moved to Lisbon.\nassistant: Nice city."
    assert win.sources == units
    assert win.memory_type == "LongTermMemory"


def test_user_only_windows_are_user_memory() -> None:
    [win] = windows([chat("user", "a"), chat("user", "b")])
    assert win.memory_type == "UserMemory"


def test_long_conversations_pack_into_bounded_windows_each_message_once() -> None:
    units = [chat("user" if i % 2 else "assistant", f"message {i} " + "word " * 30) for i in range(60)]
    wins = windows(units)
    assert len(wins) > 5
    assert all(count_tokens(w.text) <= WINDOW_TOKENS for w in wins)  # time lines included
    assert [s for w in wins for s in w.sources] == units  # no overlap: every message once, in order


def test_windows_overlap_when_asked() -> None:
    units = [chat("user" if i % 2 else "assistant", f"message {i} " + "word " * 90) for i in range(60)]
    wins = windows(units, limit=1024, overlap=200)
    assert len(wins) > 5
    assert all(count_tokens(w.text) <= 1024 for w in wins)
    for before, after in itertools.pairwise(wins):
        shared = [s for s in after.sources if s in before.sources]
        assert shared, "consecutive windows share their boundary messages"
        assert sum(count_tokens(f"{s.role}: {s.content}") for s in shared) <= 200
    # every message appears in some window, in order
    seen = [s for w in wins for s in w.sources]
    assert [s for s in units if s in seen] == units


def test_an_oversized_message_is_split_before_packing() -> None:
    text = " ".join(f"w{i}" for i in range(3000))
    wins = windows([chat("user", text)])
    assert len(wins) >= 3
    assert all(count_tokens(w.text) <= WINDOW_TOKENS for w in wins)
    assert "w0" in wins[0].text
    assert "w2999" in wins[-1].text


def test_empty_messages_make_no_windows() -> None:
    assert windows([chat("user", "  ")]) == []


def test_sizes_fit_the_embedder_and_an_unbounded_embedder_keeps_the_defaults() -> None:
    assert Sizes.for_embedder(None) == Sizes()
    small = Sizes.for_embedder(100)
    assert (small.window, small.chunk, small.chunk_overlap) == (100, 100, 25)
    assert Sizes.for_embedder(10_000).window == WINDOW_TOKENS
