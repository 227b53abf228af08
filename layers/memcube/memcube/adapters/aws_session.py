"""boto3 clients built from one session, safely from any thread.

A boto3 session is not thread-safe, and the API server's requests and the worker's threads may
build clients at once. So every client is built from boto3's default session under one
process-wide lock (`client`), and what else reads or replaces that session (the OpenSearch
signer's credentials, SnapStart's restore) takes the same lock. One session also registers
botocore's event handlers and builds its endpoint resolver once per process: a session of its
own cost Bedrock's adapter about 13 ms of a cold worker's first batch. boto3 comes with the
Lambda runtime; only the AWS backend's code imports this.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()


def _default() -> Any:
    """boto3's default session, set up if there is none yet (the caller holds `_LOCK`)."""
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


def client(service: str, **kwargs: Any) -> Any:
    """A new client of `service` from the default session (`kwargs` as `boto3.client` takes)."""
    with _LOCK:
        return _default().client(service, **kwargs)


def credentials() -> tuple[Any, str | None]:
    """The default session's credentials and region (what a SigV4 signer outside boto3 needs)."""
    with _LOCK:
        session = _default()
        return session.get_credentials(), session.region_name


def renew() -> None:
    """Replace the default session by a new one that keeps its data loader (the files botocore
    parsed stay parsed) but resolves credentials anew: after a SnapStart restore."""
    import boto3
    import botocore.session

    with _LOCK:
        core = botocore.session.get_session()
        core.register_component("data_loader", _default()._session.get_component("data_loader"))  # boto3's own
        boto3.DEFAULT_SESSION = boto3.Session(botocore_session=core)
