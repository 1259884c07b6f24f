"""Dagster's default run launcher, telling run monitoring when a run's worker is dead.

The default launcher cannot say whether a run's process still exists, so a run whose worker
was killed (``kill -9``, out of memory, the whole ``dagster dev`` stopped) stays STARTED for
good and holds its queue slot. Here the worker is the process whose pid the run recorded in
its first engine event; if that process is gone, or the pid now belongs to a younger
process, run monitoring marks the run FAILED (and run retries may launch it again). Only for
deployments whose daemon runs on the same machine as its run workers: the embedded default.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun


class LocalRunLauncher(DefaultRunLauncher):
    """:class:`DefaultRunLauncher` with worker health checks for run monitoring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = self._worker(run)
        if worker is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no worker process recorded yet")
        pid, since = worker
        if process_started_before(pid, since):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker pid {pid} is alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run worker (pid {pid}) is gone")

    def _worker(self, run: DagsterRun) -> tuple[int, float] | None:
        """(pid, time) of the newest engine event that names the run's process."""
        records = self._instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ENGINE_EVENT, ascending=False, limit=50
        ).records
        for record in records:
            event = record.event_log_entry
            data = event.dagster_event.engine_event_data if event.dagster_event else None
            pid = data.metadata.get("pid") if data is not None else None
            if pid is not None and str(pid.value).isdigit():
                return int(pid.value), event.timestamp
        return None


def process_started_before(pid: int, timestamp: float) -> bool:
    """Whether process ``pid`` exists and started before ``timestamp``: a pid reused by a
    younger process is not the worker."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, StopIteration, IndexError):
        try:  # no /proc: existence is all that can be known
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if fields[0] == "Z":  # a zombie has finished
        return False
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= timestamp + 1.0
