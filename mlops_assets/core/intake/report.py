"""What an intake decides about one contribution: the report, the acceptance policy, the
quality score and the decision.

A contribution's report is written as ``report.json`` and read back only as a
:class:`ContributionReport` (:func:`write_report`, :func:`read_report`,
:func:`contribution_reports`): whether it was accepted is its ``accepted`` field, and only
that.
"""

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_assets.task import TaskSchema


@dataclass(frozen=True)
class IntakePolicy:
    """When a contribution is accepted, and what happens to flagged rows."""

    min_valid_share: float = 0.5
    min_quality: float = 50.0
    min_rows: int = 1
    keep_outliers: bool = True


@dataclass
class ContributionReport:
    """Everything decided about one contribution; written as its JSON report
    (:func:`write_report`) and read back by :func:`read_report`."""

    contribution_id: str
    contributor: str
    file_name: str
    sha256: str
    # When it landed (seconds since the epoch, as the system saw it: never the file's own
    # time, which its sender sets): contributions are ordered by it, and the first to bring a
    # row owns it. None for a file checked before it was submitted.
    landed_at: float | None = None
    file_format: str = ""
    # How the file was read: the reader ("Excel workbook", "JSON (columns (pandas
    # orient='columns'))"), where its header is ("line 4", "row 3 of sheet Messungen"), its
    # encoding ("cp1252 (detected)"), every line skipped above the header with its text, and
    # the workbook's other sheets.
    reader: str = ""
    header: str = ""
    encoding: str = ""
    skipped_lines: list[dict[str, str]] = field(default_factory=list)
    other_sheets: list[str] = field(default_factory=list)
    # How a text file is written (delimiter, decimal, header mode, line endings) and what the
    # independent count of its records found; ``rows_in`` always equals that count.
    dialect: dict[str, str] = field(default_factory=dict)
    records_in_file: int | None = None
    rows_in: int = 0
    rows_clean: int = 0
    rows_rejected: int = 0
    rows_usable: int = 0  # valid by value, duplicates included
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    column_mapping: dict[str, str] = field(default_factory=dict)
    dropped_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    pii_found: dict[str, int] = field(default_factory=dict)
    pii_columns: list[str] = field(default_factory=list)
    outliers: int = 0
    drift: float = 0.0
    class_counts: dict[str, int] = field(default_factory=dict)
    duplicate_of: str | None = None
    # Where the ingested bytes of an accepted contribution are kept (under the originals).
    snapshot: str | None = None
    valid_share: float = 0.0
    quality_score: float = 0.0
    accepted: bool = False
    decision: str = ""
    # What the contributor can do about a rejection, in one sentence; "" when accepted.
    hint: str = ""
    # What the contributor can do about what was found (labels written as codes, ...).
    hints: list[str] = field(default_factory=list)
    # Seconds per step of the intake, to see where the time goes.
    timings: dict[str, float] = field(default_factory=dict)
    # Where the file was in the landing zone (``<contributor>/<file>``); None for a file
    # checked before it was submitted.
    landing_path: str | None = None
    # What the contributor's sidecar (``<file>.meta.json``) says: the license the data is
    # given under, and when consent to train on it was given (ISO 8601); "" when none.
    license: str = ""
    consent_at: str = ""

    @property
    def status(self) -> str:
        return "accepted" if self.accepted else "rejected"

    @property
    def landing_order(self) -> tuple[float, str]:
        """Where the contribution stands in the order of arrival: its landing time, then its
        id (a report written before landing times were recorded stands before every newer
        one)."""
        return (self.landed_at or 0.0, self.contribution_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ContributionReport":
        """A report as :meth:`to_dict` wrote it, or as an older version did: a field it does
        not have takes its default, a key no field has any more is ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_metadata(self, landing_path: str) -> dict[str, Any]:
        """What the ``contributed_data`` partition shows: the decision and its numbers."""
        return {
            "status": self.status,
            "decision": self.decision,
            "hint": self.hint,
            "accepted": self.accepted,
            "contributor": self.contributor,
            "landing_path": landing_path,
            "sha256": self.sha256,
            "rows_in": self.rows_in,
            "records_in_file": self.records_in_file if self.records_in_file is not None else "",
            "rows_clean": self.rows_clean,
            "rows_rejected": self.rows_rejected,
            "dagster/row_count": self.rows_clean,
            "quality_score": self.quality_score,
            "outliers": self.outliers,
            "file_format": self.file_format,
            "reader": self.reader,
            "encoding": self.encoding,
            "header": self.header,
            "skipped_lines": len(self.skipped_lines),
            "duplicate_of": self.duplicate_of or "",
            "rejection_reasons": self.rejection_reasons,
            "pii_found": self.pii_found,
            "dropped_columns": self.dropped_columns,
            "timings": self.timings,
            "hints": self.hints,
            "license": self.license,
        }


def write_report(report: ContributionReport, path: Path) -> None:
    """Write ``report`` as JSON at ``path``, atomically."""
    from mlops_assets.core.common.storage import write_json

    write_json(report.to_dict(), path)


def read_report(path: Path) -> ContributionReport:
    """The report :func:`write_report` wrote at ``path`` (or an older version of it)."""
    return ContributionReport.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def contribution_reports(
    root: Path, *, exclude: str | None = None
) -> list[tuple[ContributionReport, Path]]:
    """(report, directory) of every contribution under ``root`` but ``exclude``, read once."""
    reports = []
    for report_path in sorted(root.glob("*/report.json")):
        report = read_report(report_path)
        if report.contribution_id != exclude:
            reports.append((report, report_path.parent))
    return reports


def quality_score(report: ContributionReport, *, n_classes: int) -> float:
    """0-100: how much of the file is worth training on, and how good that part is (see
    :func:`quality_from_shares`); balance is the normalised entropy of the clean rows'
    classes."""
    if report.rows_in == 0 or report.rows_usable == 0:
        return 0.0
    counts = [c for c in report.class_counts.values() if c]
    total = sum(counts)
    entropy = -sum(c / total * math.log(c / total) for c in counts) if total else 0.0
    return quality_from_shares(
        usable=report.rows_usable / report.rows_in,
        clean=report.rows_clean / report.rows_in,
        outliers=report.outliers / report.rows_clean if report.rows_clean else 1.0,
        balance=entropy / math.log(n_classes) if n_classes > 1 else 1.0,
        drift=report.drift,
    )


def quality_from_shares(
    *, usable: float, clean: float, outliers: float, balance: float, drift: float
) -> float:
    """``100 * (0.2 * usable + 0.4 * clean + 0.4 * clean * goodness)``, rounded to 0.01.

    ``usable`` is the share of records valid by value (duplicates included), ``clean`` the
    share kept (valid and new), ``goodness`` the mean of ``1 - outliers``, ``balance`` and
    ``1 - drift`` over the clean rows; all in [0, 1]. So:

    - a file with no usable record scores 0, below any file with one, even one whose usable
      records are all duplicates (it still scores ``20 * usable``);
    - holding the rest equal, the score never falls when a record becomes usable or a usable
      one clean, and never rises with more outliers, drift or imbalance;
    - a file of only valid, new, balanced, unshifted rows without outliers scores 100.
    """
    goodness = ((1 - outliers) + balance + (1 - drift)) / 3
    return round(100 * (0.2 * usable + 0.4 * clean + 0.4 * clean * goodness), 2)


def decide(report: ContributionReport, policy: IntakePolicy) -> tuple[bool, str]:
    if report.rows_in == 0:
        return False, "rejected: the file has a header but no data rows"
    if report.missing_columns:
        return False, f"rejected: missing required column(s) {', '.join(report.missing_columns)}"
    summary = f"{report.rows_clean}/{report.rows_in} rows clean, quality {report.quality_score:.1f}"
    if report.rows_clean < policy.min_rows:
        return False, f"rejected: {summary}; at least {policy.min_rows} clean row(s) required"
    if report.valid_share < policy.min_valid_share:
        return False, f"rejected: {summary}; {policy.min_valid_share:.0%} of rows must be clean"
    if report.quality_score < policy.min_quality:
        return False, f"rejected: {summary} < {policy.min_quality:.1f} required"
    return True, f"accepted: {summary}"


# What to do about the reason most of a file's rows were rejected for ("{column}": the column
# of a per-column reason).
_REASON_HINTS = {
    "missing_value": "fill in {column} in every row, or leave out the rows without it",
    "not_numeric": "write {column} as plain numbers (no units or words in the cells)",
    "non_finite": "leave out the rows whose {column} is infinite or not a number",
    "out_of_range": "check the unit of {column}: {range}",
    "unknown_category": "write {column} as one of {values}",
    "unknown_label": "label each row with one of the task's classes: {classes}",
    "malformed_row": "fix the records the report names (too many or too few fields, a header "
    "repeated inside the file, an unclosed quote)",
    "duplicate_in_contribution": "send each measurement once: rows repeat inside the file",
    "duplicate_of_reference": "send new measurements: these rows are already in the reference data",
    "duplicate_of_contribution": "send new measurements: these rows were contributed before",
    "outlier": "check units and labels: these rows lie far from every known example of their class",
}


def rejection_hint(report: ContributionReport, task: "TaskSchema") -> str:
    """One sentence on what to do about a rejected contribution, from why it was rejected:
    the file's shape first, then the reason most of its rejected rows share."""
    if report.accepted:
        return ""
    if report.rows_in == 0:
        return "add the data rows under the header line"
    if report.missing_columns:
        return (
            f"name the columns as the {task.name} task does ({', '.join(task.columns)}; "
            "spellings with units or dots are recognised): `mlops check FILE` shows how each "
            "column was read"
        )
    if not report.rejection_reasons:
        return "send more rows like these: too few were usable to judge the file"
    reason = max(report.rejection_reasons, key=lambda r: report.rejection_reasons[r])
    kind, _, column = reason.partition(":")
    feature = next((f for f in task.features if f.name == column), None)
    template = _REASON_HINTS.get(kind, "see the report's rejection reasons for each row")
    return template.format(
        column=column,
        range=f"the task expects {feature.minimum:g} to {feature.maximum:g} {feature.unit}".rstrip()
        if feature and not feature.categorical
        else "",
        values=", ".join(feature.values) if feature and feature.categorical else "",
        classes=", ".join(task.classes),
    )
