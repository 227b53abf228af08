"""A conversation's own messages, kept per user and session (MemOS's chat history): what chat
asked and answered, and the chat messages of adds, so `get_message` and "the last N messages"
answer with the words as they were said (memories are what was extracted from them)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from memcube.domain.base import Model

MAX_MESSAGE_LIMIT = 200
"""The most messages one read returns (of one session)."""
MAX_SESSION_LIMIT = 50
"""The most sessions one read spans."""


class ConversationMessage(Model):
    """One message of a session. `seq` orders the session's messages: `<created_at>#<nn>`, the
    time it was recorded and its position among those recorded together (a question before its
    answer), so a store sorts by it as a string."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str
    user_id: str
    session_id: str
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    seq: str
    created_at: str
    chat_time: str | None = None
    """The time the client gave the message (free-form, as MemOS accepts it), if any."""
    source: Literal["chat", "add"] = "chat"
    """What recorded it: a chat exchange, or an add's messages."""
    references: list[str] = Field(default_factory=list)
    """An answer's cited memory ids."""
    task_id: str | None = None
    """The add task that turned the exchange (or the add's messages) into memories, if any."""
