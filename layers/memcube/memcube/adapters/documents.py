"""The text of binary files, for document mode: PDFs through pypdf (pure Python, well kept).

pypdf is imported on the first PDF, so only a worker that reads one pays for the import; the API
never does (it passes files on as bytes).
"""

from __future__ import annotations

import io

from memcube.domain.errors import UnreadableFile
from memcube.domain.limits import MAX_FILE_BYTES

MAX_PAGES = 2000
"""A bound on the work one file can cost, whatever its byte size."""


MAX_TEXT_BYTES = 2 * MAX_FILE_BYTES
"""A bound on a PDF's extracted text: compressed streams can hold far more text than the file's
bytes, and every chunk of it is embedded (and, in fine mode, sent to the LLM) within one worker
invocation; more would time out on every attempt."""


class FileTextReader:
    def __init__(self, max_text_bytes: int = MAX_TEXT_BYTES) -> None:
        self._max = max_text_bytes

    def text(self, data: bytes, mime: str) -> str:
        if mime != "application/pdf":
            raise UnreadableFile(f"files of type {mime} are not read (supported: text, markdown, JSON, PDF)")
        return _pdf_text(data, self._max)


def _pdf_text(data: bytes, max_bytes: int) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("the PDF is encrypted; upload it without a password")
        if len(reader.pages) > MAX_PAGES:
            raise UnreadableFile(f"the PDF has {len(reader.pages)} pages, more than {MAX_PAGES}; split it")
        pages, size = [], 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            size += len(pages[-1].encode())
            if size > max_bytes:
                raise UnreadableFile(f"the PDF holds more than {max_bytes} bytes of text; split it")
    except UnreadableFile:
        raise
    except Exception as exc:  # any failure to parse untrusted bytes is the file's: retrying cannot help
        raise UnreadableFile(f"the PDF cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise UnreadableFile("the PDF has no text layer (a scanned document needs OCR first)")
    return text
