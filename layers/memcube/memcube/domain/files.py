"""Files in adds: which types are read, and the data URLs that carry them.

The one data-URL reader and writer: an add's inline files, the hosted API's
knowledge-base uploads and the queued message's binary files (`data:<mime>;base64,<bytes>`,
read by the worker in document mode) all go through here.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

BINARY_FILE_TYPES = frozenset({"application/pdf"})
"""File types the API passes on as bytes for the worker to read (document mode); text types are
decoded at once."""
TEXT_FILE_TYPES = frozenset({"application/json", "application/x-ndjson"})
"""Non-`text/*` types that are text."""

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)


def readable(mime: str) -> bool:
    """A file type the reader takes: text, JSON, or a binary type it extracts text from (PDF)."""
    return mime.startswith("text/") or mime in TEXT_FILE_TYPES or mime in BINARY_FILE_TYPES


@dataclass(frozen=True)
class DataUrl:
    """A parsed `data:[<mime>][;base64],<payload>` URL (RFC 2397)."""

    mime: str | None
    """As written (None when the URL names no type)."""
    is_base64: bool
    payload: str

    def decoded(self) -> bytes:
        """The bytes it carries; ValueError (binascii.Error) for invalid base64."""
        if self.is_base64:
            return base64.b64decode(self.payload, validate=True)
        return unquote_to_bytes(self.payload)


def parse_data_url(text: str) -> DataUrl | None:
    """The data URL `text` is, or None if it is not one."""
    match = _DATA_URL.match(text)
    if match is None:
        return None
    return DataUrl(match.group("mime"), bool(match.group("b64")), match.group("data"))


def base64_data_url(mime: str, data: bytes | str) -> str:
    """`data:<mime>;base64,<data>`: `data` as bytes, or already base64 text."""
    payload = data if isinstance(data, str) else base64.b64encode(data).decode()
    return f"data:{mime};base64,{payload}"


def is_binary_data_url(text: str) -> bool:
    """The queued form of a binary file: a data URL with a type, in base64."""
    url = parse_data_url(text[:200])
    return url is not None and url.mime is not None and url.is_base64


def decoded_size(data_url: str) -> int:
    """The bytes a base64 data URL carries, counted without decoding it."""
    payload = data_url.partition(",")[2]
    return len(payload) * 3 // 4 - payload[-2:].count("=")
