"""boto3 sessions that share what botocore parses once per process.

A new `boto3.Session()` starts with its own data loader, so its first client parses botocore's
endpoint rules, partitions and service model again (tens of ms each, on the first request of a
cold start). Adapters that want a session of their own (a client built from it is theirs, which
keeps client creation thread-safe) take `new_session()` instead: its own credentials and clients,
the default session's loader. Only the AWS adapters import this (boto3 comes with the runtime).
"""

from __future__ import annotations

from typing import Any


def default_session() -> Any:
    """boto3's default session (what `boto3.client` uses), set up if there is none yet."""
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


def new_session() -> Any:
    """A new boto3 session that shares the default session's data loader (its parsed files)."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    loader = default_session()._session.get_component("data_loader")  # boto3 exposes its botocore session only so
    core.register_component("data_loader", loader)
    return boto3.Session(botocore_session=core)
