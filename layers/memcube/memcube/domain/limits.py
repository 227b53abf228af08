"""Explicit request limits (documented in docs/limits.md; change both together).

They bound what one request can cost the service and keep every queued message well
under the SQS message size once rendered.
"""

from __future__ import annotations

import re
from typing import Final

MAX_BODY_BYTES: Final = 1_048_576
"""Whole HTTP body, checked before parsing."""

MAX_MESSAGES: Final = 500
"""Chat messages (or raw parts) in `messages`, and separately in `chat_history`."""

MAX_CONTENT_BYTES: Final = 524_288
"""Total UTF-8 bytes of the conversation text in `messages` (contents and text parts; files apart)."""

MAX_FILE_BYTES: Final = 2_097_152
"""Total bytes of the files of one add (a text file's UTF-8 text, a binary file's decoded bytes)."""

MAX_FILE_BODY_BYTES: Final = 3_145_728
"""Whole HTTP body of a knowledge-base file upload (JSON with base64 content, or multipart)."""

MAX_FILES_PER_REQUEST: Final = 20
"""Files in one knowledge-base file upload."""

MAX_PARTS_PER_MESSAGE: Final = 32
MAX_TAGS: Final = 32
MAX_TAG_CHARS: Final = 64
MAX_INFO_BYTES: Final = 8_192
"""`info` serialized as compact JSON."""

MAX_INFO_DEPTH: Final = 4
MAX_INFO_KEYS: Final = 64
MAX_CUBES_PER_REQUEST: Final = 16
MAX_GRANTS: Final = 200
"""Readers or writers named when a cube is created (more are granted one by one)."""
MAX_ID_CHARS: Final = 128
ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]*$")
"""Ids (user, cube, session, task, message, project): letters, digits and `_ . : @ -`."""

ID_RULE: Final = f"1-{MAX_ID_CHARS} characters: letters, digits and _ . : @ - (not starting with a symbol)"

MAX_RETRIEVED_IDS = 100
"""Memory ids a feedback may name as the ones it corrects (`retrieved_memory_ids`)."""

# Bounds of reads, exports and waits: their services keep them under their own names, and the API's
# schemas read them here, so the app's import does not load those services (a cold start).
MAX_READ_IDS: Final = 100
"""Memory ids in one `get_memory_by_ids`."""
MAX_READ_CUBES: Final = 10
"""Cubes in one `get_all`: each is read page by page."""
MAX_EXPORT_PAGE: Final = 500
MAX_IMPORT_ITEMS: Final = 200
MIN_POLL_SECONDS: Final = 0.2
MAX_POLL_SECONDS: Final = 10.0
