"""What an intake decides about one contribution: the report, the acceptance policy, the
quality score and the decision."""

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class IntakePolicy:
    """When a contribution is accepted, and what happens to flagged rows."""

    min_valid_share: float = 0.5
    min_quality: float = 50.0
    min_rows: int = 1
    keep_outliers: bool = True


@dataclass
class ContributionReport:
    """Everything decided about one contribution; written as its JSON report."""

    contribution_id: str
    contributor: str
    file_name: str
    sha256: str
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
    # What the contributor can do about what was found (labels written as codes, ...).
    hints: list[str] = field(default_factory=list)
    # Seconds per step of the intake, to see where the time goes.
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_metadata(self, landing_path: str) -> dict[str, Any]:
        """What the ``contributed_data`` partition shows: the decision and its numbers."""
        return {
            "accepted": self.accepted,
            "decision": self.decision,
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
        }


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
