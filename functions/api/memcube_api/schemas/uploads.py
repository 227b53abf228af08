"""The hosted API's knowledge-base files (a multipart upload, or JSON with data URLs or the text
itself), decoded and checked, and the add that reads them into the knowledge base's cube."""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field

from memcube.domain import limits
from memcube.domain.errors import InvalidRequest
from memcube.domain.files import BINARY_FILE_TYPES, base64_data_url, parse_data_url, readable
from memcube_api.params import Params
from memcube_api.schemas.hosted import KnowledgebaseFile
from memcube_api.schemas.messages import URL_PREFIXES, FileData, FilePart, MessageEntry
from memcube_api.schemas.product import AddRequest


class UploadParams(Params):
    """The SDK's form upload names its knowledge base (and the file type) in the query string."""

    knowledgebase_id: str | None = Field(default=None, max_length=limits.MAX_ID_CHARS)
    type: str | None = Field(default=None, max_length=32)


FILE_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
    ".xml": "text/xml",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}
"""File types read in document mode, by extension: text of any `text/*` type, JSON, and PDF."""
SUPPORTED = "text (.txt, .md, .csv, .xml, .html), JSON and PDF"


@dataclass(frozen=True)
class Upload:
    """One uploaded file, decoded: its name, bytes and type."""

    name: str
    data: bytes
    mime: str

    @property
    def size_mb(self) -> float:
        return round(len(self.data) / 1_048_576, 4)


def mime_for(name: str, declared: str | None = None) -> str:
    """The type to read a file as: a specific declared type, else by its name's extension."""
    declared = (declared or "").split(";")[0].strip().lower()
    if declared and declared not in {"application/octet-stream", "binary/octet-stream"}:
        mime = declared
    else:
        mime = FILE_TYPES.get(_suffix(name), "")
    if not readable(mime):
        shown = mime or f"unknown (name {name!r})"
        raise InvalidRequest(f"file: type {shown} is not supported; upload {SUPPORTED}")
    return mime


def json_upload(file: KnowledgebaseFile, n: int) -> Upload:
    """A JSON upload's file: `content` a data URL (base64 or percent-encoded) or the text itself."""
    where = f"file[{n}]"
    if file.type == "skill":
        raise InvalidRequest(f"{where}.type: skill packages are not supported by memcube; upload documents")
    content = file.content
    if content.startswith(URL_PREFIXES):
        raise InvalidRequest(f"{where}.content: URLs are not fetched; send the file inline as a base64 data URL")
    url = parse_data_url(content)
    name = file.name or f"file-{n + 1}.txt"
    if url is None:  # the file's text itself
        mime = FILE_TYPES.get(_suffix(name), "text/plain")
        if mime in BINARY_FILE_TYPES:
            raise InvalidRequest(f"{where}.content: send a PDF as a data URL (data:application/pdf;base64,...)")
        return Upload(name, content.encode(), mime)
    try:
        data = url.decoded()
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{where}.content: not a valid data URL ({exc})") from exc
    return Upload(name, data, mime_for(name, url.mime))


def _suffix(name: str) -> str:
    return name[name.rfind(".") :].lower() if "." in name else ""


def upload_request(knowledgebase_id: str, uploads: Sequence[Upload], user_id: str) -> tuple[AddRequest, list[str]]:
    """The add of these files into the knowledge base's cube, and their file ids."""
    from memcube.domain.knowledgebases import file_id_for  # the knowledge bases' service: not with the app

    if len(uploads) > limits.MAX_FILES_PER_REQUEST:
        raise InvalidRequest(f"file: at most {limits.MAX_FILES_PER_REQUEST} files per upload, got {len(uploads)}")
    total = sum(len(u.data) for u in uploads)
    if total > limits.MAX_FILE_BYTES:
        raise InvalidRequest(f"file: at most {limits.MAX_FILE_BYTES} bytes of files per upload, got {total}")
    parts: list[MessageEntry] = []
    ids: list[str] = []
    for n, upload in enumerate(uploads):
        if not upload.data.strip():
            raise InvalidRequest(f"file[{n}]: {upload.name!r} is empty")
        file_id = file_id_for(knowledgebase_id, upload.data)
        if len(file_id) > limits.MAX_ID_CHARS:
            raise InvalidRequest(
                f"knowledgebase_id: at most {limits.MAX_ID_CHARS - 25} characters for file uploads "
                "(file ids are <knowledgebase_id>:<24 hex>)"
            )
        parts.append(
            FilePart(type="file", file=FileData(file_data=_file_data(upload, n), file_id=file_id, filename=upload.name))
        )
        ids.append(file_id)
    req = AddRequest(user_id=user_id, writable_cube_ids=[knowledgebase_id], messages=parts)
    return req, ids


def _file_data(upload: Upload, n: int) -> str:
    if upload.mime in BINARY_FILE_TYPES:
        return base64_data_url(upload.mime, upload.data)
    try:
        return upload.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"file[{n}]: {upload.name!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
