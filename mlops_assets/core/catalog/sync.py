"""Opening the catalog caught up with the report files: a home written before the catalog
existed is imported once, and an intake killed between its files and the catalog is
completed from its report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlops_assets.core.catalog.catalog import ContributionCatalog
from mlops_assets.core.common import layout
from mlops_assets.core.common.row_matching import RowMatching
from mlops_assets.core.intake.report import ContributionReport, read_report

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.task import TaskSchema


class ReportStore(Protocol):
    """What is read of the dataset store: the reports, clean rows and reference parts."""

    def exists(self, key: str) -> bool: ...
    def fetch(self, key: str) -> Path: ...
    def fetch_tree(self, key: str, ending: str | tuple[str, ...] = "") -> Path: ...


def open_catalog(url: str, task: TaskSchema, store: ReportStore) -> ContributionCatalog:
    """The catalog of ``task`` at ``url``, caught up with the report files in ``store``."""
    import pandas as pd

    catalog = ContributionCatalog(url, task)
    importing, stuck = catalog.needs_import(), catalog.stuck()
    reports = []
    if importing:
        root = store.fetch_tree(layout.CONTRIBUTIONS, ending=("report.json", "clean.parquet"))
        reports = sorted(root.glob("*/report.json"))
    if not (reports or stuck):
        if importing:
            catalog.import_reports([], matching=None)  # a new home: nothing to import
        return catalog
    # Rows are put in cells at the resolution intakes match them at.
    reference = [
        pd.read_parquet(store.fetch(k)) for k in (layout.REFERENCE_TRAIN, layout.BENCHMARK)
    ]
    matching = RowMatching.for_intake(task, *reference)
    if importing:
        catalog.import_reports(_stored_outcomes(reports), matching)
    if stuck:
        catalog.complete_stuck(lambda cid: _stored_outcome(store, cid), matching)
    return catalog


def _stored_outcomes(
    reports: list[Path],
) -> Iterator[tuple[ContributionReport, pd.DataFrame | None]]:
    for report_path in reports:
        yield _with_clean(read_report(report_path), report_path.parent / "clean.parquet")


def _stored_outcome(
    store: ReportStore, contribution_id: str
) -> tuple[ContributionReport, pd.DataFrame | None] | None:
    key = layout.contribution(contribution_id, "report.json")
    if not store.exists(key):
        return None  # still running, or killed before its report: its retry records it
    report = read_report(store.fetch(key))
    clean = layout.contribution(contribution_id, "clean.parquet")
    return _with_clean(report, store.fetch(clean) if report.accepted else None)


def _with_clean(
    report: ContributionReport, clean: Path | None
) -> tuple[ContributionReport, pd.DataFrame | None]:
    import pandas as pd

    kept = report.accepted and clean is not None and clean.exists()
    return report, pd.read_parquet(clean) if kept else None
