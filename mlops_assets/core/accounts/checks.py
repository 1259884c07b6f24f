"""Pre-checks of large uploads in the background of the portal's process: a few threads (a
check is CPU-bound and takes a core), the rest waiting their turn in order, and what each is
doing, for the upload's status URL.

What is known here lives as long as the process: after a restart the upload's record says
only that the file landed, and the pipeline's intake gives its outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_assets.core.accounts.store import UploadRecord

log = logging.getLogger("mlops_assets.portal.checks")


@dataclass
class _Check:
    account: str
    received_at: float
    cleanup: Callable[[], None]
    future: Future[None] | None = None
    started_at: float | None = None


class BackgroundChecks:
    """Runs pre-checks on at most ``workers`` threads, made on first use (a process that never
    takes a large upload starts none), and says where each stands (:meth:`progress`)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        # Insertion order is the order they run in: a waiting check's place in the queue.
        self._checks: dict[str, _Check] = {}

    def submit(
        self,
        contribution_id: str,
        account: str,
        check: Callable[[], None],
        cleanup: Callable[[], None],
    ) -> None:
        """Run ``check`` (which records its own outcome) when a thread is free, then
        ``cleanup`` (also when the check is dropped by :meth:`close`). A check that raises is
        logged; the upload's status then says what the pipeline's intake will."""

        def run() -> None:
            with self._lock:
                self._checks[contribution_id].started_at = time.time()
            try:
                check()
            except Exception:
                log.exception("the background pre-check of %s failed", contribution_id)
            finally:
                cleanup()
                with self._lock:
                    self._checks.pop(contribution_id, None)

        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="precheck")
            entry = _Check(account, time.time(), cleanup)
            self._checks[contribution_id] = entry
            entry.future = self._pool.submit(run)

    def progress(self, contribution_id: str) -> dict[str, Any] | None:
        """Where the check of ``contribution_id`` stands: ``stage`` (``queued`` or
        ``checking``), ``queue_position`` (1 = next) and ``seconds`` in that stage; None when
        it is not (or no longer) here."""
        now = time.time()
        with self._lock:
            check = self._checks.get(contribution_id)
            if check is None:
                return None
            if check.started_at is not None:
                return {
                    "stage": "checking",
                    "queue_position": None,
                    "seconds": round(now - check.started_at, 1),
                }
            ahead = 0
            for cid, other in self._checks.items():
                if cid == contribution_id:
                    break
                ahead += other.started_at is None
        return {
            "stage": "queued",
            "queue_position": ahead + 1,
            "seconds": round(now - check.received_at, 1),
        }

    def waiting(self) -> int:
        """Checks queued or running."""
        with self._lock:
            return len(self._checks)

    def close(self) -> None:
        """Stop taking checks; the running ones finish, the queued ones are dropped (their
        uploads landed: the pipeline's intake decides on them)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            dropped = [c for c in self._checks.values() if c.future and c.future.cancelled()]
        for check in dropped:
            check.cleanup()


CHECKING = "checking"


def checking_answer(
    record: UploadRecord, stage: str, queue_position: int | None, seconds: float
) -> dict[str, Any]:
    """The answer for an upload whose pre-check is not done: where it stands, in words."""
    place = f" (number {queue_position} in line)" if queue_position else ""
    words = {
        "queued": f"landed; waiting for its pre-check{place}",
        "checking": f"landed; being pre-checked ({seconds:.0f} s so far)",
        "waiting_for_intake": "landed; its pre-check here was cut short (the server restarted, "
        "or the check failed): the pipeline's intake gives its verdict, here and on the "
        "contribution's page",
    }
    return {
        "contribution_id": record.contribution_id,
        "landing_path": record.landing_path,
        "sha256": record.sha256,
        "size": record.size,
        "license": record.license,
        "status": CHECKING,
        "stage": stage,
        "detail": words[stage],
        "queue_position": queue_position,
        "seconds": seconds,
        "received_at": record.uploaded_at,
        "replayed": False,
    }
