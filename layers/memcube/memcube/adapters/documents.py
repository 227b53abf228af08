"""The text of binary files, for document mode: PDFs through pypdf (pure Python, well kept).

pypdf is imported on the first PDF, so only a worker that reads one pays for the import; the API
never does (it passes files on as bytes).
"""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from memcube.domain.errors import UnreadableFile
from memcube.domain.limits import MAX_FILE_BYTES

MAX_PAGES = 2000
"""A bound on the work one file can cost, whatever its byte size."""


MAX_TEXT_BYTES = 2 * MAX_FILE_BYTES
"""A bound on a PDF's extracted text: compressed streams can hold far more text than the file's
bytes, and every chunk of it is embedded (and, in fine mode, sent to the LLM) within one worker
invocation; more would time out on every attempt."""


MAX_STREAM_BYTES = MAX_TEXT_BYTES // 4
"""A bound on one content stream (a page's or a form's drawing instructions) once decompressed,
checked while inflating it, before the PDF library parses it: a small Flate stream can inflate to
gigabytes, and parsing its operators is what costs the time."""

MAX_CONTENT_BYTES = 4 * MAX_TEXT_BYTES
"""A bound on all the content streams of one PDF, decompressed (a dense page's is some 100 KB)."""

TIME_BUDGET_SECONDS = 60.0
"""A bound on the time one PDF's text extraction may take, checked between streams and pages and
at every drawing operator, so a file cannot hold a worker longer whatever its shape (the worker
function's timeout is 300 s; the embedding of the text that is read comes after)."""

_FLATE = frozenset({"/FlateDecode", "/Fl"})
_ASCII = frozenset({"/ASCIIHexDecode", "/AHx", "/ASCII85Decode", "/A85"})
"""Filters whose output is never longer than their input."""


class _OverBudget(Exception):
    pass


class FileTextReader:
    def __init__(
        self,
        max_text_bytes: int = MAX_TEXT_BYTES,
        *,
        max_stream_bytes: int = MAX_STREAM_BYTES,
        max_content_bytes: int = MAX_CONTENT_BYTES,
        budget_seconds: float = TIME_BUDGET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_text_bytes
        self._bounds = _Bounds(max_stream_bytes, max_content_bytes, budget_seconds, clock)

    def text(self, data: bytes, mime: str) -> str:
        if mime != "application/pdf":
            raise UnreadableFile(f"files of type {mime} are not read (supported: text, markdown, JSON, PDF)")
        return _pdf_text(data, self._max, self._bounds)


class _Bounds:
    """The work one PDF may cost: each content stream's and all streams' decompressed size, and
    the time, all checked as the work is done (not after)."""

    def __init__(self, max_stream: int, max_content: int, budget: float, clock: Callable[[], float]) -> None:
        self.max_stream, self.max_content, self.budget, self.clock = max_stream, max_content, budget, clock

    def start(self) -> _Meter:
        return _Meter(self, self.clock() + self.budget)


class _Meter:
    def __init__(self, bounds: _Bounds, deadline: float) -> None:
        self._bounds = bounds
        self._deadline = deadline
        self._content = 0
        self._seen: set[int] = set()

    def tick(self, *_: Any) -> None:
        if self._bounds.clock() > self._deadline:
            raise _OverBudget

    def over_time(self) -> UnreadableFile:
        return UnreadableFile(
            f"reading the PDF's text took more than its time budget of {self._bounds.budget:g} s; split it"
        )

    def check_page(self, page: Any, number: int) -> None:
        """Every content stream the page's text extraction would parse, measured (inflated up to
        the bound and no further) before it is parsed."""
        for stream in _streams(page):
            if id(stream) in self._seen:
                continue
            self._seen.add(id(stream))
            self.tick()
            size = _decoded_size(stream, self._bounds.max_stream + 1, number)
            if size > self._bounds.max_stream:
                raise UnreadableFile(
                    f"page {number} has a content stream of more than {self._bounds.max_stream} bytes "
                    "once decompressed (the limit per stream); split the PDF"
                )
            self._content += size
            if self._content > self._bounds.max_content:
                raise UnreadableFile(
                    f"the PDF's content streams hold more than {self._bounds.max_content} bytes once "
                    "decompressed (the limit per file); split it"
                )


def _streams(page: Any, depth: int = 0) -> Iterator[Any]:
    """The page's content streams and its form XObjects' (recursively, a few levels deep)."""
    contents = page.get("/Contents")
    if contents is not None:
        contents = contents.get_object()
        yield from (c.get_object() for c in contents) if isinstance(contents, list) else [contents]
    resources = page.get("/Resources")
    xobjects = resources.get_object().get("/XObject") if resources is not None else None
    if xobjects is None or depth > 4:
        return
    for ref in xobjects.get_object().values():
        xobject = ref.get_object()
        if xobject.get("/Subtype") == "/Form":
            yield xobject
            yield from _streams(xobject, depth + 1)


def _decoded_size(stream: Any, limit: int, page: int) -> int:
    """The stream's decoded size, or `limit` once it reaches it (inflation stops there)."""
    filters = stream.get("/Filter")
    names = [] if filters is None else [str(f) for f in filters] if isinstance(filters, list) else [str(filters)]
    data: bytes = getattr(stream, "_data", b"")  # the encoded bytes (pypdf decodes on get_data)
    for name in names:
        if name in _FLATE:
            data = _inflate(data, limit, page)
            if len(data) >= limit:
                return limit
        elif name in _ASCII:
            from pypdf.filters import ASCII85Decode, ASCIIHexDecode

            decoder = ASCIIHexDecode if name in {"/ASCIIHexDecode", "/AHx"} else ASCII85Decode
            data = decoder.decode(data)
        else:
            raise UnreadableFile(f"page {page} has a content stream compressed with {name[:40]}, which is not read")
    return len(data)


def _inflate(data: bytes, limit: int, page: int) -> bytes:
    """At most `limit` bytes of a Flate stream (zlib-wrapped, or raw deflate as some writers make)."""
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
        try:
            return zlib.decompressobj(wbits).decompress(data, limit)
        except zlib.error:
            continue
    raise UnreadableFile(f"page {page} has a content stream that is not valid Flate data")


def _pdf_text(data: bytes, max_bytes: int, bounds: _Bounds) -> str:
    from pypdf import PdfReader

    meter = bounds.start()
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("the PDF is encrypted; upload it without a password")
        if len(reader.pages) > MAX_PAGES:
            raise UnreadableFile(f"the PDF has {len(reader.pages)} pages, more than {MAX_PAGES}; split it")
        pages, size = [], 0
        for number, page in enumerate(reader.pages, 1):
            meter.check_page(page, number)
            pages.append(page.extract_text(visitor_operand_before=meter.tick) or "")
            size += len(pages[-1].encode())
            if size > max_bytes:
                raise UnreadableFile(f"the PDF holds more than {max_bytes} bytes of text; split it")
    except UnreadableFile:
        raise
    except _OverBudget:
        raise meter.over_time() from None
    except Exception as exc:  # any failure to parse untrusted bytes is the file's: retrying cannot help
        raise UnreadableFile(f"the PDF cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise UnreadableFile("the PDF has no text layer (a scanned document needs OCR first)")
    return text
