"""boto3 clients built from one session, safely from any thread.

Every adapter builds its clients with `client()`: from boto3's default session, under one
process-wide lock. A boto3 session is not thread-safe, so clients built from one session at once
(the API server's requests, the worker's threads) need that lock; and one session means what
botocore parses once per process (endpoint rules, partitions, service models, its event handlers)
is parsed once. A session per adapter would parse them again: about 13 ms of a cold worker's
first batch for Bedrock's alone. Only the AWS adapters import this (boto3 comes with the runtime).
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()


def default_session() -> Any:
    """boto3's default session (what `boto3.client` uses), set up if there is none yet."""
    import boto3

    with _LOCK:
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        return boto3.DEFAULT_SESSION


def client(service: str, **kwargs: Any) -> Any:
    """A new client of `service` from the default session (`kwargs` as `boto3.client` takes)."""
    session = default_session()
    with _LOCK:
        return session.client(service, **kwargs)


def new_session() -> Any:
    """A new boto3 session that shares the default session's data loader (its parsed files):
    the default session after a SnapStart restore, with credentials resolved anew."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    loader = default_session()._session.get_component("data_loader")  # boto3 exposes its botocore session only so
    core.register_component("data_loader", loader)
    return boto3.Session(botocore_session=core)
