"""The memcube client: an HTTP SDK for a running memcube (`MemOSClient` with the MemOS
documentation's call shapes, `MemcubeClient` route by route) and the `memcube` user commands
(`memcube_client.cli`). httpx and click only: nothing of the server."""

from memcube_client.client import (
    AddResult,
    ApiError,
    ChatResult,
    MemcubeClient,
    MemOSClient,
    SearchResult,
    TaskStatusResult,
    TaskTimeout,
)

__all__ = [
    "AddResult",
    "ApiError",
    "ChatResult",
    "MemOSClient",
    "MemcubeClient",
    "SearchResult",
    "TaskStatusResult",
    "TaskTimeout",
]
