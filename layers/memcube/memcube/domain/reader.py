"""Fast-mode reader: render each message as `role: content`, pack the lines into windows that
the embedder reads whole, and make one memory per window.

MemOS packs windows of 1024 tokens with 200 of overlap. memcube cuts smaller windows on purpose
(`Sizes`): a memory is what a search gives back and what an agent pays for in its context, and
all-MiniLM-L6-v2 reads only its first 256 word pieces, so three quarters of a 1024-token window
never reached its vector. Windows of about 224 tokens without overlap held the most evidence
per word on the LoCoMo development half (BENCHMARKS.md, "Recall"), and never exceed what the
configured embedder reads (`Embedder.max_tokens`). A message's time is written once, as a
`[2023-05-08 13:56]` line, where it changes, not on every line (a missing time is simply
absent; a time that does not parse is shown as sent).

Files are read in **document mode** (MemOS's doc reader): each file's text is split into chunks
of about 512 tokens with about 128 tokens of overlap (less where the embedder reads less), at the
largest boundary that fits (paragraph, line, sentence, then tokens), one memory per chunk, whose
source is the file (its id and name) and that chunk.

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
from memcube.domain.when import shown

T = TypeVar("T")

WINDOW_TOKENS = 224
"""A chat window's size: the most evidence per word on LoCoMo's development half (see above)."""
OVERLAP_TOKENS = 0
"""Chat windows do not overlap: a repeated turn costs an agent's context twice."""
CHUNK_TOKENS = 512
CHUNK_OVERLAP_TOKENS = 128
KEY_CHARS = 80


@dataclass(frozen=True)
class Sizes:
    """How the reader cuts text, fitted to what the embedder reads (`Embedder.max_tokens`)."""

    window: int = WINDOW_TOKENS
    overlap: int = OVERLAP_TOKENS
    chunk: int = CHUNK_TOKENS
    chunk_overlap: int = CHUNK_OVERLAP_TOKENS

    @classmethod
    def for_embedder(cls, max_tokens: int | None) -> Sizes:
        """Windows and chunks no longer than `max_tokens` (None: the embedder reads any length);
        a chunk's overlap stays a quarter of it, as MemOS's 128 of 512."""
        if max_tokens is None:
            return cls()
        window = min(WINDOW_TOKENS, max_tokens)
        chunk = min(CHUNK_TOKENS, max_tokens)
        return cls(window=window, overlap=0, chunk=chunk, chunk_overlap=min(CHUNK_OVERLAP_TOKENS, chunk // 4))


_PARAGRAPH_BREAK = re.compile(r"(\n\s*\n)")
_SENTENCE_BREAK = re.compile(r"((?<=[.!?;])\s+|(?<=[\u3002\uff01\uff1f\uff1b]))")
"""After a sentence's final punctuation: Latin before whitespace (so `3.14` stays whole), or CJK
full-width, which needs no space."""

_TOKEN = re.compile(rf"[{CJK}]|[^\W_{CJK}]+|[^\w\s]|_+", re.UNICODE)
"""A CJK character, a run of other word characters (so `3号` is two tokens), a punctuation mark."""


def count_tokens(text: str) -> int:
    return sum(1 for _ in _TOKEN.finditer(text))


def render(unit: SourceMessage) -> str:
    """One message as a line for an LLM prompt, `role: [time]: content` (no brackets without a
    time); raw parts (no role) are their text alone."""
    if unit.role is None:
        return unit.content
    when = f"[{unit.chat_time}]: " if unit.chat_time else ""
    return f"{unit.role}: {when}{unit.content}"


def _line(unit: SourceMessage) -> str:
    """One message as a line of a memory: its time goes on a `[time]` line of its own."""
    return unit.content if unit.role is None else f"{unit.role}: {unit.content}"


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


def read(units: list[SourceMessage], sizes: Sizes | None = None) -> list[Window]:
    """The windows of a message: its conversation (every unit but files) in chat windows, then
    each file in document chunks, in order. Files must already be text (the worker reads binary
    ones first)."""
    sizes = sizes or Sizes()
    talk = [u for u in units if u.type != "file"]
    files = [u for u in units if u.type == "file"]
    chunks = [c for f in files for c in document(f, sizes.chunk, sizes.chunk_overlap)]
    return windows(talk, sizes.window, sizes.overlap) + chunks


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
        text = _line(unit)
        tokens = count_tokens(text)
        if tokens <= limit:
            lines.append(_Line(text, tokens, unit))
            continue
        for piece in _split_long(text, limit, overlap):
            lines.append(_Line(piece, count_tokens(piece), unit))
    return lines


def windows(units: list[SourceMessage], limit: int = WINDOW_TOKENS, overlap: int = OVERLAP_TOKENS) -> list[Window]:
    """Pack rendered lines into windows of at most `limit` tokens, `[time]` lines included; with
    an `overlap`, each new window repeats the previous window's last lines (up to `overlap`
    tokens) so a fact spanning the boundary is kept whole in one memory."""
    time_line = max((count_tokens(f"[{shown(u.chat_time)}]") for u in units if u.chat_time), default=0)
    room = max(limit - time_line, 1)
    lines = _lines(units, room, min(overlap, room // 2))
    return [_window(group) for group in _pack(lines, _with_time_line(lines), room, overlap)]


def _with_time_line(lines: list[_Line]) -> Callable[[_Line], int]:
    """A line's tokens, plus its `[time]` line where its time differs from the line before it
    (a window's first line may need one too: the longest time line is kept free for it)."""
    extra: dict[int, int] = {}
    previous: str | None = None
    for line in lines:
        when = shown(line.source.chat_time) if line.source.chat_time else None
        extra[id(line)] = count_tokens(f"[{when}]") if when and when != previous else 0
        previous = when
    return lambda line: line.tokens + extra[id(line)]


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
    rendered: list[str] = []
    previous: str | None = None
    for line in lines:
        when = shown(line.source.chat_time) if line.source.chat_time else None
        if when and when != previous:  # as shown: two seconds of one minute read as one time
            rendered.append(f"[{when}]")
        previous = when
        rendered.append(line.text)
    return Window(
        text="\n".join(rendered),
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
