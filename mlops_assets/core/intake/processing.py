"""A contribution taken into storage: its bytes kept, the intake run on them, its outputs
swapped in whole, and its outcome recorded where the next intake looks for earlier ones."""

import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pandas as pd

from mlops_assets.core.common.hashing import file_sha256
from mlops_assets.core.common.row_matching import RowMatching
from mlops_assets.core.common.scratch import sweep_stale
from mlops_assets.core.common.storage import replace_directory
from mlops_assets.core.intake.intake import intake_contribution
from mlops_assets.core.intake.landing import Sidecar
from mlops_assets.core.intake.report import ContributionReport, IntakePolicy, write_report
from mlops_assets.core.intake.text_files import IntakeLimits
from mlops_assets.errors import (
    ContributionTooLargeError,
    ContributionUnreadableError,
)
from mlops_assets.task import TaskSchema


class ContributionRecords(Protocol):
    """Where contributions' outcomes are recorded and looked up (the catalog): each intake
    costs its own rows there, however many came before."""

    def begin(
        self, contribution_id: str, contributor: str, landing_path: str, landed_at: float
    ) -> None: ...

    def record(
        self, report: ContributionReport, clean: pd.DataFrame | None, matching: RowMatching
    ) -> None: ...

    def find_by_sha256(self, sha256: str, *, exclude: str) -> str | None: ...

    def earlier_rows(
        self, probe: pd.DataFrame, before: tuple[float, str], matching: RowMatching
    ) -> pd.DataFrame: ...


def unreadable_report(
    path: Path,
    error: ContributionUnreadableError | ContributionTooLargeError,
    *,
    contribution_id: str,
    contributor: str,
    sha256: str | None = None,
) -> ContributionReport:
    """The report of a file that could not be read (unparseable, or expanding past the
    limits): nothing kept, rejected with the reason."""
    reason = getattr(error, "reason", error.code)
    return ContributionReport(
        contribution_id=contribution_id,
        contributor=contributor,
        file_name=path.name,
        sha256=sha256 or file_sha256(path),
        rejection_reasons={reason: 1},
        decision=f"rejected: {error.message}",
        hint=error.hint,
    )


def process_contribution(
    path: Path,
    task: TaskSchema,
    *,
    reference: pd.DataFrame,
    contributions_root: Path,
    contribution_id: str,
    contributor: str,
    policy: IntakePolicy,
    landing_path: str,
    records: ContributionRecords,
    publish: Callable[[ContributionReport], None] | None = None,
    benchmark: pd.DataFrame | None = None,
    landed_at: float | None = None,
    limits: IntakeLimits | None = None,
    sha256: str | None = None,
    snapshot_root: Path | None = None,
    sidecar: Sidecar | None = None,
) -> ContributionReport:
    """Intake ``path`` into ``contributions_root/<contribution_id>/``, store it (``publish``,
    given the report once the folder is written) and record its outcome in ``records``; return
    its report. ``records`` hears of the intake first (``begin``) and of its outcome last, so
    a contribution killed in between is found there and completed from its files.

    ``reference`` is the reference train part and ``benchmark`` the benchmark (None when it
    is private); rows are compared with those and with the accepted contributions that
    landed before this one (``landed_at``, by default now) in ``records``: the first to
    bring a row owns it, whichever intake happens to run first.

    ``sidecar`` (the file's ``.meta.json``) gives the license and consent the report keeps.

    With ``snapshot_root`` the file is first copied there (content-addressed), the intake
    reads the copy, and an accepted contribution's copy is kept (``snapshot`` in its report).

    The same bytes already submitted as another contribution are recognised by their sha256
    (computed here unless given) and recorded as a duplicate submission without being
    processed again. Outputs are written to a staging directory and swapped in whole, so a
    failure never leaves a half-written contribution behind, and ``report.json`` is always
    present in the result. Scratch folders a killed intake left behind are removed first.
    """
    sweep_stale()
    _sweep_staging(contributions_root)
    landed_at = time.time() if landed_at is None else landed_at
    records.begin(contribution_id, contributor, landing_path, landed_at)
    matching = RowMatching.for_task(task, pd.concat([reference, benchmark]))  # as for_intake
    snapshot: Path | None = None
    if snapshot_root is not None:
        # The intake reads its own copy: the bytes it judged are the bytes kept and attested,
        # whatever happens to the landing file afterwards.
        snapshot, sha256 = snapshot_file(path, snapshot_root)
        path = snapshot
    sha256 = sha256 or file_sha256(path)
    earlier = records.find_by_sha256(sha256, exclude=contribution_id)
    staging = contributions_root / (
        f".{contribution_id}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    )
    staging.mkdir(parents=True)
    try:
        if earlier is not None:
            report = ContributionReport(
                contribution_id,
                contributor,
                path.name,
                sha256,
                landed_at=landed_at,
                duplicate_of=earlier,
                decision=f"rejected: the same bytes were already submitted as {earlier}",
                hint=f"nothing to do: these bytes are taken once, as {earlier}",
                rejection_reasons={"duplicate_submission": 1},
            )
        else:
            try:
                report = intake_contribution(
                    path,
                    task,
                    reference=reference,
                    benchmark=benchmark,
                    contribution_id=contribution_id,
                    contributor=contributor,
                    policy=policy,
                    output_dir=staging,
                    sha256=sha256,
                    matching=matching,
                    earlier_rows=lambda probe: records.earlier_rows(
                        probe, (landed_at, contribution_id), matching
                    ),
                    limits=limits,
                    landed_at=landed_at,
                )
            except (ContributionUnreadableError, ContributionTooLargeError) as exc:
                report = unreadable_report(
                    path,
                    exc,
                    contribution_id=contribution_id,
                    contributor=contributor,
                    sha256=sha256,
                )
                report.landed_at = landed_at
        kept = snapshot is not None and report.accepted
        if snapshot is not None and not kept and earlier is None:
            shutil.rmtree(snapshot.parent, ignore_errors=True)  # only accepted bytes are kept
        if kept:
            report.snapshot = f"{snapshot.parent.name}/{snapshot.name}"  # type: ignore[union-attr]
        report.landing_path = landing_path
        if sidecar is not None:
            report.license, report.consent_at = sidecar.license, sidecar.consent_at
        write_report(report, staging / "report.json")
        replace_directory(staging, contributions_root / contribution_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if publish is not None:
        publish(report)
    clean = contributions_root / contribution_id / "clean.parquet"
    records.record(report, pd.read_parquet(clean) if report.accepted else None, matching)
    return report


def snapshot_file(path: Path, root: Path) -> tuple[Path, str]:
    """Copy ``path`` to ``root/<sha256[:16]>/<name>``, hashing it on the way (one read), and
    return the copy and the sha256; bytes already kept are not copied twice."""
    import hashlib

    digest = hashlib.sha256()
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{uuid.uuid4().hex}.part"
    try:
        with path.open("rb") as source, partial.open("wb") as sink:
            while block := source.read(1 << 20):
                digest.update(block)
                sink.write(block)
        sha256 = digest.hexdigest()
        target = root / sha256[:16] / path.name
        if target.exists():
            return target, sha256
        target.parent.mkdir(exist_ok=True)
        os.replace(partial, target)
        return target, sha256
    finally:
        partial.unlink(missing_ok=True)


def _sweep_staging(root: Path) -> None:
    """Remove staging folders that a killed intake left in ``root``."""
    from mlops_assets.core.common.scratch import is_alive

    for folder in root.glob(".*.staging-*") if root.is_dir() else ():
        pid = folder.name.rsplit(".staging-", 1)[1].split("-", 1)[0]
        if not pid.isdigit() or not is_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
