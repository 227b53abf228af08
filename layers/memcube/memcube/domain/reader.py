"""Fast-mode reader, as MemOS does it: render each message as `role: [chat_time]: content`,
pack the lines into windows of about 1024 tokens with about 200 tokens of overlap, and make one
memory per window.

Tokens are counted by a small, dependency-free rule (a CJK character, a run of word characters,
or one punctuation mark is one token). It tracks BPE counts closely enough for window sizing
and needs no tokenizer download, which offline Lambdas and laptops cannot do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memcube.domain.model import MemoryType, SourceMessage

WINDOW_TOKENS = 1024
OVERLAP_TOKENS = 200
KEY_CHARS = 80

_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+|[^\w\s]|_+",
    re.UNICODE,
)


def count_tokens(text: str) -> int:
    return sum(1 for _ in _TOKEN.finditer(text))


def render(unit: SourceMessage) -> str:
    """One line per message; raw parts (no role) are rendered as their text alone."""
    if unit.role is None:
        return unit.content
    return f"{unit.role}: [{unit.chat_time or ''}]: {unit.content}"


@dataclass(frozen=True)
class _Line:
    text: str
    tokens: int
    source: SourceMessage


@dataclass(frozen=True)
class Window:
    """The text of one fast-mode memory and the messages it came from."""

    text: str
    sources: list[SourceMessage]
    memory_type: MemoryType

    @property
    def key(self) -> str:
        """A short title: the start of the first message's own words (no role or time prefix)."""
        first = next((s.content for s in self.sources if s.content.strip()), self.text)
        return " ".join(first.split())[:KEY_CHARS]


def _split_long(text: str, limit: int, overlap: int) -> list[str]:
    """Split one oversized line into token-bounded pieces that overlap, before packing."""
    spans = [m.span() for m in _TOKEN.finditer(text)]
    pieces: list[str] = []
    start = 0
    while start < len(spans):
        end = min(start + limit, len(spans))
        pieces.append(text[spans[start][0] : spans[end - 1][1]])
        if end == len(spans):
            break
        start = end - overlap
    return pieces


def _lines(units: list[SourceMessage], limit: int, overlap: int) -> list[_Line]:
    lines: list[_Line] = []
    for unit in units:
        if not unit.content.strip():
            continue
        text = render(unit)
        tokens = count_tokens(text)
        if tokens <= limit:
            lines.append(_Line(text, tokens, unit))
            continue
        for piece in _split_long(text, limit, overlap):
            lines.append(_Line(piece, count_tokens(piece), unit))
    return lines


def windows(units: list[SourceMessage], limit: int = WINDOW_TOKENS, overlap: int = OVERLAP_TOKENS) -> list[Window]:
    """Pack rendered lines into windows; each new window repeats the previous window's last
    lines (up to `overlap` tokens) so a fact spanning the boundary is kept whole in one memory."""
    lines = _lines(units, limit, overlap)
    out: list[Window] = []
    current: list[_Line] = []
    size = 0
    fresh = 0  # lines in `current` not already emitted in the previous window
    for line in lines:
        if current and size + line.tokens > limit:
            out.append(_window(current))
            current, size = _tail(current, overlap, limit - line.tokens)
            fresh = 0
        current.append(line)
        size += line.tokens
        fresh += 1
    if current and fresh:
        out.append(_window(current))
    return out


def _tail(lines: list[_Line], overlap: int, room: int) -> tuple[list[_Line], int]:
    kept: list[_Line] = []
    size = 0
    for line in reversed(lines):
        if size + line.tokens > min(overlap, room):
            break
        kept.insert(0, line)
        size += line.tokens
    return kept, size


def _window(lines: list[_Line]) -> Window:
    sources: list[SourceMessage] = []
    for line in lines:
        if not sources or sources[-1] is not line.source:
            sources.append(line.source)
    only_user = all(s.role == "user" for s in sources)
    return Window(
        text="\n".join(line.text for line in lines),
        sources=sources,
        memory_type="UserMemory" if only_user else "LongTermMemory",
    )
