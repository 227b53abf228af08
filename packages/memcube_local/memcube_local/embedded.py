"""The embedded default's worker: threads that drain the durable SQLite queue through the same
`IngestService.handle` the Lambda worker calls, with the same retry and dead-letter rules."""

from __future__ import annotations

import fcntl
import logging
import os
import random
import threading
import time
from pathlib import Path
from typing import IO

from memcube.domain.ingest import Delivery, Verdict
from memcube_local.wiring import LocalContainer

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


class DataDirLocked(RuntimeError):
    pass


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the data directory for the life of the process: exactly one
    consumer per queue is what makes releasing stale leases at start-up safe."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / ".lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise DataDirLocked(f"another memcube process is using {data_dir}") from exc
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, so retries of many cubes do not line up."""
    return random.uniform(0, min(MAX_BACKOFF_SECONDS, 0.5 * 2**attempt))


class EmbeddedWorker:
    """Worker threads that lease only once they can work: `start` returns at once and a starter
    thread first makes the worker ready (stores open, the embedding model loaded, which takes
    seconds for the local model), so a kill during start-up finds nothing leased and costs no
    message an attempt. Messages in flight at the last death (suspects) run alone, and only
    `suspect_grace_seconds` after ready: a kill soon after each start is not a lone run.
    `stop` waits for the messages in hand, briefly, and hands back the rest
    unblamed (see `SqliteQueue`)."""

    def __init__(self, container: LocalContainer) -> None:
        self._c = container
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._held: dict[str, int] = {}
        """The message (queue seq) each worker thread is running, by thread name."""
        self._held_lock = threading.Lock()
        self.ready = threading.Event()
        """Set once the workers have started taking messages."""
        self._suspects_from = float("inf")
        """When suspects (messages in flight at the last death) may run: a grace after ready."""

    def start(self) -> None:
        released = self._c.local_queue.release_all_leases()
        if released:
            log.info("released %d messages leased by a previous process (now suspects, run alone)", released)
        starter = threading.Thread(target=self._start_when_ready, name="memcube-worker-start", daemon=True)
        starter.start()
        self._threads.append(starter)

    def _start_when_ready(self) -> None:
        try:
            self._c.warm_worker()
        except Exception:  # the first message retries what failed here, and reports it in its status
            log.exception("the worker could not get ready; starting anyway")
        if self._stop.is_set():
            return
        self._suspects_from = time.monotonic() + self._c.settings.suspect_grace_seconds
        for n in range(self._c.settings.workers):
            thread = threading.Thread(target=self._run, name=f"memcube-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        sweeper = threading.Thread(target=self._sweep_expired, name="memcube-expiry-sweep", daemon=True)
        sweeper.start()
        self._threads.append(sweeper)
        self.ready.set()
        log.info("worker ready: %d threads taking messages", self._c.settings.workers)

    def stop(self, timeout: float = 10.0) -> None:
        """Take no new message, wait up to `timeout` seconds in all for those in hand, and hand
        back those still running (the process is about to exit: their work is cut short, and
        redone from what it stored, by the next start)."""
        self._stop.set()
        with self._c.wakeup:
            self._c.wakeup.notify_all()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._held_lock:
            unfinished = list(self._held.values())
            self._held.clear()  # a thread that still finishes one leaves it to the next start
        if unfinished:
            self._c.local_queue.release(unfinished)
            log.info("stopped with %d messages unfinished: handed back, not blamed", len(unfinished))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker loop error")
                worked = False
            if not worked:
                with self._c.wakeup:
                    self._c.wakeup.wait(POLL_SECONDS)

    def _sweep_expired(self) -> None:
        """Every `expiry_sweep_seconds`, erase what has expired (`domain.expiry`): reads already
        leave it out, this bounds how long its text stays in the data directory."""
        while not self._stop.wait(self._c.settings.expiry_sweep_seconds):
            try:
                report = self._c.sweeper.sweep()
            except Exception:
                log.exception("expiry sweep failed; the next one tries again")
                continue
            if report.erased or report.index:
                log.info("expiry sweep erased %d memories (%d archived versions)", len(report.erased), report.history)

    def run_once(self) -> bool:
        """Take one message (if any) and settle it; True if there was one."""
        settings = self._c.settings
        suspects = time.monotonic() >= self._suspects_from
        got = self._c.local_queue.receive(1, settings.lease_seconds, suspects=suspects)
        if not got:
            return False
        msg = got[0]
        me = threading.current_thread().name
        with self._held_lock:
            self._held[me] = msg.seq
        try:
            delivery = Delivery(
                msg.body, msg.message_id, msg.attempts, settings.max_receive_count, msg.group_id, msg.blamed
            )
            verdict = self._c.ingest.handle(delivery)
        except Exception:
            log.exception("ingest raised outside its own handling; will retry")
            verdict = Verdict.RETRY
        with self._held_lock:
            if self._held.pop(me, None) is None:
                return True  # handed back by `stop` meanwhile: the next start runs it again
        if verdict is Verdict.DONE:
            self._c.local_queue.ack(msg.seq)
        else:
            self._c.local_queue.retry_later(msg.seq, backoff(msg.attempts))
        return True
