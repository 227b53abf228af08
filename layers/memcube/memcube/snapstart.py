"""Lambda SnapStart runtime hooks for both functions.

With SnapStart (template.yaml, parameter `SnapStart`), Lambda runs a published version's init
once, snapshots the memory, and resumes every cold start from that snapshot. So init does the
expensive work ahead of any caller (imports, the app, the container and its services, botocore's
service models), and the restore hook undoes what must not be shared by every environment
resumed from the same memory:

- AWS clients and their connections: built before the snapshot they would carry its credentials
  and sockets into every restored environment. The container is dropped and the default boto3
  session made anew, so the first request builds clients with the restored environment's
  credentials (botocore's models are already parsed and in memory: milliseconds, not an import).
- `random`'s state: every restored environment would draw the same sequence (retry jitter, for
  one). Ids and key material come from `secrets`/`os.urandom`, which the kernel keeps unique.

`snapshot_restore_py` ships with Lambda's managed Python runtimes; elsewhere (the embedded
default, the tests without it) nothing is registered and nothing changes.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def register(prepare: Callable[[], None]) -> bool:
    """Run `prepare` before the snapshot and again after each restore (after forgetting what the
    snapshot must not share). False when not on a runtime with SnapStart hooks."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(prepare)
    register_after_restore(restored, prepare)
    return True


def restored(prepare: Callable[[], None]) -> None:
    """The after-restore hook: fresh randomness, no client or connection from the snapshot."""
    from memcube import wiring
    from memcube.adapters import aws_session

    random.seed()
    wiring.forget_container()
    aws_session.renew()  # credentials resolved anew, in this environment; parsed models kept
    prepare()
