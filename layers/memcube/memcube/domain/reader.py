"""Fast-mode reader, as MemOS does it: render each message as `role: [chat_time]: content`,
pack the lines into windows of about 1024 tokens with about 200 tokens of overlap, and make one
memory per window.

Files are read in **document mode** (MemOS's doc reader): each file's text is split into chunks
of about 512 tokens with about 128 tokens of overlap, at the largest boundary that fits
(paragraph, line, sentence, then tokens), one memory per chunk, whose source is the file (its
id and name) and that chunk.

Tokens are counted by a small, dependency-free rule (a CJK character, a run of word characters,
or one punctuation mark is one token). It tracks BPE counts closely enough for window sizing
and needs no tokenizer download, which offline Lambdas and laptops cannot do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from memcube.domain.model import MemoryType, SourceMessage
from memcube.domain.similarity import CJK

T = TypeVar("T")

WINDOW_TOKENS = 1024
OVERLAP_TOKENS = 200
CHUNK_TOKENS = 512
CHUNK_OVERLAP_TOKENS = 128
KEY_CHARS = 80

_PARAGRAPH_BREAK = re.compile(r"(\n\s*\n)")
_SENTENCE_BREAK = re.compile(r"((?<=[.!?;])\s+|(?<=[\u3002\uff01\uff1f\uff1b]))")
"""After a sentence's final punctuation: Latin before whitespace (so `3.14` stays whole), or CJK
full-width, which needs no space."""

_TOKEN = re.compile(rf"[{CJK}]|[^\W_{CJK}]+|[^\w\s]|_+", re.UNICODE)
"""A CJK character, a run of other word characters (so `3号` is two tokens), a punctuation mark."""


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
    title: str | None = None
    """A document chunk's title (`name (part 2 of 5)`); chat windows take their first words."""

    @property
    def key(self) -> str:
        """A short title: the given one, else the start of the first message's own words (no role
        or time prefix)."""
        if self.title:
            return self.title[:KEY_CHARS]
        first = next((s.content for s in self.sources if s.content.strip()), self.text)
        return " ".join(first.split())[:KEY_CHARS]

    @property
    def from_file(self) -> bool:
        return any(s.type == "file" for s in self.sources)


def read(units: list[SourceMessage]) -> list[Window]:
    """The windows of a message: its conversation (every unit but files) in chat windows, then
    each file in document chunks, in order. Files must already be text (the worker reads binary
    ones first)."""
    talk = [u for u in units if u.type != "file"]
    files = [u for u in units if u.type == "file"]
    return windows(talk) + [chunk for f in files for chunk in document(f)]


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
    return [_window(group) for group in _pack(_lines(units, limit, overlap), lambda line: line.tokens, limit, overlap)]


def _pack(items: list[T], tokens: Callable[[T], int], limit: int, overlap: int) -> list[list[T]]:
    """`items` in order, in groups of at most `limit` tokens; each group after the first starts
    with the previous group's last items that fit in `overlap` tokens (and leave room for the next)."""
    out: list[list[T]] = []
    current: list[T] = []
    size = 0
    fresh = 0  # items in `current` not already in the previous group
    for item in items:
        if current and size + tokens(item) > limit:
            out.append(current)
            current, size = _tail(current, tokens, min(overlap, limit - tokens(item)))
            fresh = 0
        current.append(item)
        size += tokens(item)
        fresh += 1
    if current and fresh:
        out.append(current)
    return out


def _tail(items: list[T], tokens: Callable[[T], int], room: int) -> tuple[list[T], int]:
    """The last items, in order, that fit in `room` tokens."""
    kept: list[T] = []
    size = 0
    for item in reversed(items):
        if size + tokens(item) > room:
            break
        kept.insert(0, item)
        size += tokens(item)
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


def document(unit: SourceMessage, limit: int = CHUNK_TOKENS, overlap: int = CHUNK_OVERLAP_TOKENS) -> list[Window]:
    """One file in chunks of at most `limit` tokens; each chunk repeats the previous chunk's last
    pieces (up to `overlap` tokens) so a passage spanning the boundary is kept whole in one."""
    pieces = _fit(unit.content, limit, [_paragraphs, _text_lines, _sentences])
    texts = [_joined(group) for group in _pack(pieces, lambda piece: piece[1], limit, overlap)]
    name = unit.filename or unit.file_id
    out = []
    for n, text in enumerate(texts, 1):
        source = unit.model_copy(update={"content": text, "data": None})
        title = f"{name} (part {n} of {len(texts)})" if name and len(texts) > 1 else name
        out.append(Window(text=text, sources=[source], memory_type="LongTermMemory", title=title))
    return out


def _fit(text: str, limit: int, splitters: list[Callable[[str], list[str]]]) -> list[tuple[str, int]]:
    """`text` as (piece, tokens) pieces of at most `limit` tokens, each as large a unit as fits:
    split by the first splitter, and further by the next ones only where a part is still too
    long. Pieces keep their separators, so joining them gives the text back."""
    if not text.strip():
        return []
    tokens = count_tokens(text)
    if tokens <= limit:
        return [(text, tokens)]
    if not splitters:
        return [(p + " ", count_tokens(p)) for p in _split_long(text, limit, 0)]
    parts = splitters[0](text)
    if len(parts) <= 1:
        return _fit(text, limit, splitters[1:])
    return [piece for part in parts for piece in _fit(part, limit, splitters[1:])]


def _with_separators(pieces: list[str]) -> list[str]:
    """`re.split` with a capturing group alternates text and separator: rejoin each pair."""
    return [p for p in ("".join(pieces[i : i + 2]) for i in range(0, len(pieces), 2)) if p]


def _paragraphs(text: str) -> list[str]:
    return _with_separators(_PARAGRAPH_BREAK.split(text))


def _text_lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _sentences(text: str) -> list[str]:
    return _with_separators(_SENTENCE_BREAK.split(text))


def _joined(pieces: list[tuple[str, int]]) -> str:
    return "".join(p for p, _ in pieces).strip()
