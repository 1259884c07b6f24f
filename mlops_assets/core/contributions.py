"""Intake of one contributed file: read, map columns, validate rows, decide.

Nothing is lost: every input row ends up either in ``clean`` or in ``rejected`` with its
original values and reason codes, so ``rows_in == rows_clean + rows_rejected`` always.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_assets.core.hashing import file_sha256
from mlops_assets.core.validation import REASON_COLUMN, count_reasons, validate_rows
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import TaskSchema

ROW_INDEX = "row_index"
SUPPORTED_SUFFIXES = (".csv",)

# Common spellings of each column after normalisation (lower case, non-alphanumerics as "_").
COLUMN_ALIASES = {
    "sepal_length": ("sepallength", "sepal_len", "sepallengthcm"),
    "sepal_width": ("sepalwidth", "sepal_wid", "sepalwidthcm"),
    "petal_length": ("petallength", "petal_len", "petallengthcm"),
    "petal_width": ("petalwidth", "petal_wid", "petalwidthcm"),
    "species": ("class", "variety", "target", "label"),
}


@dataclass
class ContributionReport:
    """Everything decided about one contribution; written as its JSON report."""

    contribution_id: str
    contributor: str
    file_name: str
    sha256: str
    rows_in: int = 0
    rows_clean: int = 0
    rows_rejected: int = 0
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    column_mapping: dict[str, str] = field(default_factory=dict)
    dropped_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    valid_share: float = 0.0
    accepted: bool = False
    decision: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IntakeResult:
    clean: pd.DataFrame
    rejected: pd.DataFrame
    report: ContributionReport


def normalise_column_name(name: str) -> str:
    """``"Sepal Length (cm)"`` -> ``"sepal_length"``: lower case, no units, ``_`` separators."""
    text = re.sub(r"\(.*?\)|\[.*?\]", " ", str(name).lower())
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def map_columns(columns: list[str], task: TaskSchema) -> dict[str, str]:
    """Map original column names to task columns; columns that map to nothing are left out."""
    lookup: dict[str, str] = {}
    for target in task.columns:
        for spelling in (target, target.replace("_", ""), *COLUMN_ALIASES.get(target, ())):
            lookup[spelling] = target
    mapping: dict[str, str] = {}
    for column in columns:
        normalised = normalise_column_name(column)
        target = lookup.get(normalised) or lookup.get(normalised.replace("_", ""))
        if target and target not in mapping.values():
            mapping[column] = target
    return mapping


def read_contribution(path: Path) -> pd.DataFrame:
    """Read a contributed file as text columns, or raise :class:`ContributionUnreadableError`."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ContributionUnreadableError(
            f"{path.name}: unsupported format {path.suffix or '(no extension)'!r}",
            hint=f"submit one of: {', '.join(SUPPORTED_SUFFIXES)}",
        )
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContributionUnreadableError(
            f"{path.name}: not UTF-8 text (byte {exc.start} cannot be decoded)",
            hint="save the file as UTF-8 CSV",
        ) from None
    except pd.errors.EmptyDataError:
        raise ContributionUnreadableError(
            f"{path.name}: the file is empty", hint="submit a CSV with a header row and data rows"
        ) from None
    except pd.errors.ParserError as exc:
        raise ContributionUnreadableError(
            f"{path.name}: not a well-formed CSV ({exc})",
            hint="check the delimiter is a comma and every row has the same number of fields",
        ) from None


def intake_contribution(
    path: Path,
    task: TaskSchema,
    *,
    contribution_id: str,
    contributor: str,
    min_valid_share: float,
) -> IntakeResult:
    """Read, map and validate one contribution and decide whether it is accepted.

    Raises :class:`ContributionUnreadableError` when the file cannot be parsed at all; every
    other problem is recorded row by row in ``rejected`` and summarised in the report.
    """
    report = ContributionReport(
        contribution_id=contribution_id,
        contributor=contributor,
        file_name=path.name,
        sha256=file_sha256(path),
    )
    raw = read_contribution(path)
    raw.index = pd.RangeIndex(len(raw), name=ROW_INDEX)
    report.rows_in = len(raw)

    mapping = map_columns(list(raw.columns), task)
    report.column_mapping = {str(k): v for k, v in mapping.items()}
    report.dropped_columns = [str(c) for c in raw.columns if c not in mapping]
    report.missing_columns = [c for c in task.columns if c not in mapping.values()]

    if report.missing_columns:
        clean = _empty_clean(task)
        rejected = raw.copy()
        rejected[REASON_COLUMN] = "missing_columns:" + ",".join(report.missing_columns)
        rejected[REASON_COLUMN] = rejected[REASON_COLUMN].astype("string")
    else:
        result = validate_rows(raw.rename(columns=mapping)[task.columns], task)
        clean = result.valid
        rejected = raw.loc[result.rejected.index].copy()
        rejected[REASON_COLUMN] = result.rejected[REASON_COLUMN]

    report.rows_clean = len(clean)
    report.rows_rejected = len(rejected)
    report.rejection_reasons = count_reasons(rejected)
    report.valid_share = round(len(clean) / len(raw), 4) if len(raw) else 0.0
    report.accepted, report.decision = _decide(report, min_valid_share)
    return IntakeResult(clean=clean.reset_index(), rejected=rejected.reset_index(), report=report)


def _decide(report: ContributionReport, min_valid_share: float) -> tuple[bool, str]:
    if report.rows_in == 0:
        return False, "rejected: the file has a header but no data rows"
    if report.missing_columns:
        return False, f"rejected: missing required column(s) {', '.join(report.missing_columns)}"
    if report.valid_share < min_valid_share:
        return False, (
            f"rejected: {report.rows_clean}/{report.rows_in} rows valid "
            f"({report.valid_share:.0%} < {min_valid_share:.0%} required)"
        )
    return True, f"accepted: {report.rows_clean}/{report.rows_in} rows valid"


def _empty_clean(task: TaskSchema) -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype="float64") for name in task.feature_names})
    frame[task.label] = pd.Series(dtype="string")
    frame.index.name = ROW_INDEX
    return frame


def unreadable_report(
    path: Path, error: ContributionUnreadableError, *, contribution_id: str, contributor: str
) -> ContributionReport:
    """The report of a file that could not be parsed: nothing read, rejected with the reason."""
    return ContributionReport(
        contribution_id=contribution_id,
        contributor=contributor,
        file_name=path.name,
        sha256=file_sha256(path),
        rejection_reasons={error.code: 1},
        decision=f"rejected: {error.message}",
    )
