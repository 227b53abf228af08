"""The MemOS APIADDRequest contract: defaults, conversions and limits."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from memcube.domain import limits
from memcube.domain.errors import InvalidRequest
from memcube_api.schemas.product import AddRequest, to_command


def command(**body: Any) -> Any:
    return to_command(AddRequest.model_validate({"user_id": "alice", "messages": "hello", **body}))


def test_defaults_follow_memos() -> None:
    cmd = command()
    assert cmd.session_id == "default_session"
    assert cmd.cube_ids == ["alice"]
    assert cmd.async_mode == "async"
    assert cmd.mode is None
    assert cmd.task_id is None
    assert cmd.is_feedback is False


def test_writable_cube_ids_are_deduplicated_in_order() -> None:
    assert command(writable_cube_ids=["b", "a", "b", "c", "a"]).cube_ids == ["b", "a", "c"]


def test_deprecated_mem_cube_id_becomes_the_target_cube() -> None:
    assert command(mem_cube_id="kb-1").cube_ids == ["kb-1"]
    assert command(mem_cube_id="kb-1", writable_cube_ids=["kb-2"]).cube_ids == ["kb-2"]


def test_deprecated_memory_content_is_appended_as_a_text_part() -> None:
    cmd = command(messages=[{"role": "user", "content": "hi"}], memory_content="extra fact")
    assert [(m.type, m.content) for m in cmd.messages] == [("chat", "hi"), ("text", "extra fact")]


def test_deprecated_source_goes_into_info_without_overwriting() -> None:
    assert command(source="web").info == {"source": "web"}
    assert command(source="web", info={"source": "app"}).info == {"source": "app"}


def test_deprecated_doc_path_is_refused_with_a_pointer_to_inline_files() -> None:
    with pytest.raises(InvalidRequest, match="doc_path: server-side file paths are never read"):
        command(doc_path="/etc/passwd")


def test_mode_is_kept_for_async_adds_so_the_worker_can_honour_or_note_it() -> None:
    assert command(mode="fast").mode == "fast"
    assert command().mode is None  # unset: fine when an LLM is configured, else fast
    assert command(mode="fast", async_mode="sync").mode == "fast"


def test_plain_string_messages_become_one_text_unit() -> None:
    [unit] = command(messages="I like tea").messages
    assert (unit.type, unit.role, unit.content) == ("text", None, "I like tea")


def test_chat_content_parts_are_split_by_modality_and_text_rejoined() -> None:
    cmd = command(
        messages=[
            {
                "role": "user",
                "chat_time": "2025-03-01T10:00:00",
                "message_id": "m1",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}},
                    {"type": "text", "text": "at this"},
                ],
            }
        ]
    )
    chat, image = cmd.messages
    assert (chat.type, chat.content, chat.chat_time, chat.message_id) == (
        "chat",
        "look\nat this",
        "2025-03-01T10:00:00",
        "m1",
    )
    assert (image.type, image.url, image.role) == ("image", "https://example.org/cat.png", "user")


def test_file_part_with_inline_text_and_text_data_url_is_read() -> None:
    cmd = command(
        messages=[
            {"type": "file", "file": {"file_data": "plain notes", "file_id": "f1", "filename": "a.txt"}},
            {"type": "file", "file": {"file_data": "data:text/plain;base64,aGVsbG8gZmlsZQ=="}},
        ]
    )
    assert [(m.content, m.file_id) for m in cmd.messages] == [("plain notes", "f1"), ("hello file", None)]


@pytest.mark.parametrize(
    ("file", "problem"),
    [
        ({"file_data": "https://example.org/a.pdf"}, "URLs are not fetched"),
        ({"file_data": "data:image/png;base64,AAAA"}, "only text and PDF data URLs are read, got image/png"),
        ({"file_data": "data:application/pdf;base64,AAAA"}, "not a PDF"),
        ({"file_data": "data:application/pdf,%25PDF-1.4"}, "must be base64"),
        ({"file_data": "data:application/pdf;base64,JVBERi0*"}, "not valid base64"),
        ({"file_id": "f1"}, "file_data: required"),
    ],
)
def test_file_parts_without_inline_text_are_refused(file: dict[str, str], problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        command(messages=[{"type": "file", "file": file}])


def test_inline_image_data_is_not_kept() -> None:
    cmd = command(
        messages=[
            {"type": "text", "text": "see picture"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]
    )
    image = cmd.messages[1]
    assert image.url is None
    assert "inline image data" in image.content


def test_an_add_without_text_is_refused_instead_of_succeeding_empty() -> None:
    with pytest.raises(InvalidRequest, match="nothing to remember"):
        command(messages=[{"role": "user", "content": "   "}])
    with pytest.raises(InvalidRequest, match="nothing to remember"):
        to_command(AddRequest.model_validate({"user_id": "alice"}))


def test_user_id_is_required() -> None:
    with pytest.raises(InvalidRequest, match="user_id: required"):
        to_command(AddRequest.model_validate({"messages": "hi"}))


def test_tool_messages_need_a_tool_call_id() -> None:
    with pytest.raises(ValidationError, match="tool_call_id"):
        AddRequest.model_validate({"user_id": "a", "messages": [{"role": "tool", "content": "42"}]})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "a b"}, "user_id"),
        ({"user_id": "x" * (limits.MAX_ID_CHARS + 1)}, "user_id"),
        ({"writable_cube_ids": [f"c{i}" for i in range(limits.MAX_CUBES_PER_REQUEST + 1)]}, "writable_cube_ids"),
        ({"custom_tags": [f"t{i}" for i in range(limits.MAX_TAGS + 1)]}, "custom_tags"),
        ({"custom_tags": ["x" * (limits.MAX_TAG_CHARS + 1)]}, "custom_tags"),
        ({"info": {"user_id": "mallory"}}, "info"),
        ({"info": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, "info"),
        ({"info": {"blob": "x" * limits.MAX_INFO_BYTES}}, "info"),
        ({"messages": [{"role": "user", "content": "x"}] * (limits.MAX_MESSAGES + 1)}, "messages"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"async_mode": "later"}, "async_mode"),
    ],
)
def test_limits_and_bad_values_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        AddRequest.model_validate({"user_id": "alice", "messages": "hi", **body})
    assert field in {str(e["loc"][0]) for e in info.value.errors()}


def test_total_text_is_bounded() -> None:
    big = "x" * (limits.MAX_CONTENT_BYTES // 2 + 1)
    with pytest.raises(InvalidRequest, match="bytes of text"):
        command(messages=[{"role": "user", "content": big}, {"role": "user", "content": big}])


def test_nan_or_infinity_in_info_is_refused() -> None:
    with pytest.raises(ValidationError, match="no NaN or Infinity"):
        AddRequest.model_validate_json(b'{"user_id": "alice", "messages": "hi", "info": {"score": NaN}}')


@pytest.mark.parametrize("value", ["alice\n", "alice\r\n", "\nalice"])
def test_an_id_with_a_line_break_is_refused_everywhere_an_id_is_checked(value: str) -> None:
    from memcube.domain.ids import check_cube_ids, check_id

    with pytest.raises(ValueError, match="is not a valid id"):
        check_id(value, "user_id")
    with pytest.raises(ValueError, match="is not a valid id"):
        check_cube_ids(["kb-team", value])
