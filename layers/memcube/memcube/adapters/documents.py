"""The text of binary files, for document mode: PDFs through pypdf (pure Python, well kept).

pypdf is imported on the first PDF, so only a worker that reads one pays for the import; the API
never does (it passes files on as bytes).
"""

from __future__ import annotations

import io

from memcube.domain.errors import UnreadableFile

MAX_PAGES = 2000
"""A bound on the work one file can cost, whatever its byte size."""


class FileTextReader:
    def text(self, data: bytes, mime: str) -> str:
        if mime != "application/pdf":
            raise UnreadableFile(f"files of type {mime} are not read (supported: text, markdown, JSON, PDF)")
        return _pdf_text(data)


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("the PDF is encrypted; upload it without a password")
        if len(reader.pages) > MAX_PAGES:
            raise UnreadableFile(f"the PDF has {len(reader.pages)} pages, more than {MAX_PAGES}; split it")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableFile:
        raise
    except Exception as exc:  # any failure to parse untrusted bytes is the file's: retrying cannot help
        raise UnreadableFile(f"the PDF cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise UnreadableFile("the PDF has no text layer (a scanned document needs OCR first)")
    return text
