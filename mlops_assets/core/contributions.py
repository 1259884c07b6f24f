"""Intake of one contributed file: read, map columns, scrub personal data, validate rows,
deduplicate, flag outliers, score, decide.

Everything runs as SQL in DuckDB over the file itself, so memory stays bounded whatever the
file's size. Nothing is lost: every input row ends up either in ``clean.parquet`` or in
``rejected.parquet`` with its original values and reason codes, so
``rows_in == rows_clean + rows_rejected`` always.
"""

import math
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_assets.core import pii
from mlops_assets.core.hashing import file_sha256
from mlops_assets.core.readers import RAW, ROW_INDEX, open_contribution
from mlops_assets.core.storage import read_json, replace_directory, write_json
from mlops_assets.core.validation import (
    REASON_COLUMN,
    REASONS,
    literal,
    quote,
    validated_rows_sql,
)
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

# Common spellings of each column after normalisation (lower case, non-alphanumerics as "_").
COLUMN_ALIASES = {
    "sepal_length": ("sepallength", "sepal_len", "sepallengthcm"),
    "sepal_width": ("sepalwidth", "sepal_wid", "sepalwidthcm"),
    "petal_length": ("petallength", "petal_len", "petallengthcm"),
    "petal_width": ("petalwidth", "petal_wid", "petalwidthcm"),
    "species": ("class", "variety", "target", "label"),
}
OUTLIER = "outlier"
# Measurements are compared at this many decimals so 5.1 and 5.1000000001 are one flower.
MATCH_DECIMALS = 6
# |robust z| above this (median and MAD of the reference, per class) flags an outlier.
OUTLIER_Z = 3.5


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
    rows_in: int = 0
    rows_clean: int = 0
    rows_rejected: int = 0
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
    valid_share: float = 0.0
    quality_score: float = 0.0
    accepted: bool = False
    decision: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def intake_contribution(
    path: Path,
    task: TaskSchema,
    *,
    reference: pd.DataFrame,
    contribution_id: str,
    contributor: str,
    policy: IntakePolicy,
    output_dir: Path | None = None,
    sha256: str | None = None,
    earlier_contributions: tuple[Path, ...] = (),
) -> ContributionReport:
    """Decide on the contribution at ``path`` and, with ``output_dir``, write its rows there.

    ``reference`` is the whole canonical data (train and benchmark): rows that copy it are
    rejected as ``duplicate_of_reference`` and it supplies the per-class statistics outliers
    are judged by. Rows already in one of ``earlier_contributions`` (their clean Parquet
    files) are rejected as ``duplicate_of_contribution``. Raises
    :class:`ContributionUnreadableError` when the file cannot be parsed at all; every other
    problem is recorded row by row.
    """
    report = ContributionReport(
        contribution_id, contributor, path.name, sha256 or file_sha256(path)
    )
    with open_contribution(path) as raw:
        db = raw.connection
        report.file_format = raw.file_format + (f"+{raw.compression}" if raw.compression else "")
        originals = [c for c in raw.columns if c != ROW_INDEX]
        report.rows_in = db.execute(f"SELECT count(*) FROM {RAW}").fetchall()[0][0]

        report.pii_found, report.pii_columns = _scan_pii(db, originals)
        mapping = {
            source: target
            for source, target in map_columns(originals, task).items()
            if source not in report.pii_columns
        }
        report.column_mapping = mapping
        report.dropped_columns = [c for c in originals if c not in mapping]
        report.missing_columns = [c for c in task.columns if c not in mapping.values()]

        _decide_rows(
            db, task, mapping, report.missing_columns, reference, earlier_contributions, policy
        )
        _summarise(db, task, report)
        report.accepted, report.decision = _decide(report, policy)
        if output_dir is not None:
            kept = [c for c in originals if c not in report.pii_columns]
            _write_outputs(db, task, kept, output_dir)
    return report


def _scan_pii(db: "DuckDBPyConnection", columns: list[str]) -> tuple[dict[str, int], list[str]]:
    """Counts of personal-data values by kind, and the columns that hold any (one scan)."""
    texts, probes, expressions = [], [], []  # probes: the (column, kind) of each expression
    for i, column in enumerate(columns):
        value = f"trim({quote(column)})"
        # Most values are plain numbers: one cheap test spares them every other pattern.
        texts.append(
            f"CASE WHEN regexp_full_match({value}, '{pii.PLAIN_NUMBER}') THEN NULL "
            f"ELSE {value} END AS t{i}, {value} <> '' AS filled{i}"
        )
        for kind in pii.kinds_by_column_name(normalise_column_name(column)):
            # A column named like personal data counts every filled value as that kind.
            probes.append((column, kind))
            expressions.append(f"count(*) FILTER (WHERE filled{i})")
        for kind in pii.VALUE_PATTERNS:
            probes.append((column, kind))
            expressions.append(f"count(*) FILTER (WHERE {pii.value_match_sql(f't{i}', kind)})")
    counts = []
    if probes:
        counts = db.execute(
            f"SELECT {', '.join(expressions)} FROM (SELECT {', '.join(texts)} FROM {RAW})"
        ).fetchall()[0]

    # A value found by its column's name and by its pattern counts once.
    per_column: dict[tuple[str, str], int] = {}
    for (column, kind), count in zip(probes, counts, strict=True):
        if count and kind == "credit_card":
            count = _luhn_confirmed(db, column)  # card-like numbers must pass the Luhn check
        if count:
            per_column[column, kind] = max(per_column.get((column, kind), 0), count)
    found: dict[str, int] = {}
    for (_, kind), count in per_column.items():
        found[kind] = found.get(kind, 0) + count
    flagged = list(dict.fromkeys(column for column, _ in per_column))
    return found, flagged


def _luhn_confirmed(db: "DuckDBPyConnection", column: str) -> int:
    candidates = db.execute(
        f"SELECT trim({quote(column)}) AS v, count(*) FROM {RAW} "
        f"WHERE {pii.value_match_sql(quote(column), 'credit_card')} GROUP BY v LIMIT 100000"
    ).fetchall()
    return sum(count for value, count in candidates if pii.luhn_valid(value))


def _decide_rows(
    db: "DuckDBPyConnection",
    task: TaskSchema,
    mapping: dict[str, str],
    missing: list[str],
    reference: pd.DataFrame,
    earlier_contributions: tuple[Path, ...],
    policy: IntakePolicy,
) -> None:
    """Create the table ``decided``: row_index, typed task columns, outlier flag, reasons."""
    features = task.feature_names
    if missing:
        reason = "missing_columns:" + ",".join(missing)
        nulls = ", ".join(f"NULL::DOUBLE AS {quote(f)}" for f in features)
        db.execute(
            f"CREATE TABLE decided AS SELECT {ROW_INDEX}, {nulls}, NULL::VARCHAR AS "
            f"{quote(task.label)}, false AS {OUTLIER}, ['{reason}'] AS {REASONS} FROM {RAW}"
        ).fetchall()
        return

    db.register("reference_rows", reference[task.columns])
    sources = {target: source for source, target in mapping.items()}
    label = quote(task.label)
    keys = [f"k{i}" for i in range(len(features))]
    rounded = ", ".join(
        f"round({quote(f)}, {MATCH_DECIMALS}) AS {k}" for f, k in zip(features, keys, strict=True)
    )
    same_key = " AND ".join(f"r.{k} = v.{k}" for k in keys)
    same_row = " AND ".join(f"c.{k} = v.{k}" for k in keys) + f" AND c.{label} = v.{label}"
    if earlier_contributions:
        files = ", ".join(literal(str(p)) for p in earlier_contributions)
        earlier = f"SELECT DISTINCT {rounded}, {label} FROM read_parquet([{files}])"
    else:
        nothing = ", ".join(f"NULL::DOUBLE AS {k}" for k in keys)
        earlier = f"SELECT {nothing}, NULL::VARCHAR AS {label} WHERE false"
    stats = ", ".join(
        # A class whose values repeat (setosa petal widths) has MAD 0: half the standard
        # deviation is the floor, so one rounding step is not an outlier.
        f"median({quote(f)}) AS med_{i}, "
        f"greatest(1.4826 * mad({quote(f)}), 0.5 * stddev_samp({quote(f)}), 1e-6) AS mad_{i}"
        for i, f in enumerate(features)
    )
    robust_z = " OR ".join(
        f"abs(v.{quote(f)} - s.med_{i}) / s.mad_{i} > {OUTLIER_Z}" for i, f in enumerate(features)
    )
    outlier_reason = "" if policy.keep_outliers else f"CASE WHEN is_outlier THEN '{OUTLIER}' END, "
    # Hash aggregates and joins rather than window functions: they stream, a window sorts.
    db.execute(f"""
        CREATE TABLE validated AS
        SELECT *, len({REASONS}) = 0 AS ok, {rounded}
        FROM ({validated_rows_sql(task, sources, RAW)})
    """).fetchall()
    db.execute(f"""
        CREATE TABLE decided AS
        WITH firsts AS (
            SELECT min({ROW_INDEX}) AS first FROM validated WHERE ok
            GROUP BY {", ".join(keys)}, {label}
        ),
        reference_keys AS (SELECT DISTINCT {rounded} FROM reference_rows),
        earlier_keys AS ({earlier}),
        class_stats AS (SELECT {label} AS cls, {stats} FROM reference_rows GROUP BY cls),
        judged AS (
            SELECT v.*,
                v.ok AND f.first IS NULL AS is_repeat,
                v.ok AND r.k0 IS NOT NULL AS is_reference,
                v.ok AND c.k0 IS NOT NULL AS is_earlier,
                coalesce(v.ok AND ({robust_z}), false) AS is_outlier
            FROM validated AS v
            LEFT JOIN firsts AS f ON f.first = v.{ROW_INDEX}
            LEFT JOIN reference_keys AS r ON {same_key}
            LEFT JOIN earlier_keys AS c ON {same_row}
            LEFT JOIN class_stats AS s ON s.cls = v.{label}
        )
        SELECT {ROW_INDEX}, {", ".join(quote(c) for c in task.columns)}, is_outlier AS {OUTLIER},
            list_filter({REASONS} || [
                CASE WHEN is_repeat THEN 'duplicate_in_contribution' END,
                CASE WHEN is_reference THEN 'duplicate_of_reference' END,
                CASE WHEN is_earlier THEN 'duplicate_of_contribution' END,
                {outlier_reason}NULL
            ], lambda x: x IS NOT NULL) AS {REASONS}
        FROM judged
    """).fetchall()


def _summarise(db: "DuckDBPyConnection", task: TaskSchema, report: ContributionReport) -> None:
    clean, outliers = db.execute(
        f"SELECT count(*) FILTER (WHERE len({REASONS}) = 0), "
        f"count(*) FILTER (WHERE len({REASONS}) = 0 AND {OUTLIER}) FROM decided"
    ).fetchall()[0]
    report.rows_clean, report.outliers = clean, outliers
    report.rows_rejected = report.rows_in - clean
    report.rejection_reasons = dict(
        db.execute(
            f"SELECT reason, count(*) FROM (SELECT unnest({REASONS}) AS reason FROM decided) "
            "GROUP BY reason ORDER BY reason"
        ).fetchall()
    )
    report.class_counts = dict(
        db.execute(
            f"SELECT {quote(task.label)}, count(*) FROM decided WHERE len({REASONS}) = 0 "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    report.valid_share = round(clean / report.rows_in, 4) if report.rows_in else 0.0
    if clean and not report.missing_columns:
        report.drift = _drift(db, task)
    report.quality_score = quality_score(report, n_classes=len(task.classes))


def _drift(db: "DuckDBPyConnection", task: TaskSchema) -> float:
    """How far the clean rows sit from the reference: the class-weighted mean, over classes
    and features, of |mean shift| in reference standard deviations, halved and capped at 1
    (0: same distribution, 1: shifted by two standard deviations or more)."""
    label = quote(task.label)
    features = task.feature_names
    reference = ", ".join(
        f"avg({quote(f)}) AS m{i}, greatest(stddev_samp({quote(f)}), 1e-6) AS s{i}"
        for i, f in enumerate(features)
    )
    contributed = ", ".join(f"avg({quote(f)}) AS m{i}" for i, f in enumerate(features))
    shift = " + ".join(f"abs(c.m{i} - r.m{i}) / r.s{i}" for i in range(len(features)))
    (value,) = db.execute(f"""
        WITH r AS (SELECT {label} AS cls, {reference} FROM reference_rows GROUP BY cls),
        c AS (
            SELECT {label} AS cls, count(*) AS n, {contributed}
            FROM decided WHERE len({REASONS}) = 0 GROUP BY cls
        )
        SELECT sum(c.n * ({shift}) / {len(features)}) / sum(c.n) FROM c JOIN r USING (cls)
    """).fetchall()[0]
    return round(min(1.0, (value or 0.0) / 2), 4)


def quality_score(report: ContributionReport, *, n_classes: int) -> float:
    """0-100: half for the share of clean rows, and an eighth each for few duplicates, few
    outliers, balanced labels (normalised entropy of the clean rows' classes) and little drift
    from the reference."""
    if report.rows_in == 0:
        return 0.0
    duplicates = sum(
        count
        for reason, count in report.rejection_reasons.items()
        if reason.startswith("duplicate")
    )
    duplicate_share = duplicates / report.rows_in
    outlier_share = report.outliers / report.rows_clean if report.rows_clean else 0.0
    counts = [c for c in report.class_counts.values() if c]
    total = sum(counts)
    entropy = -sum(c / total * math.log(c / total) for c in counts) if total else 0.0
    balance = entropy / math.log(n_classes) if n_classes > 1 else 1.0
    score = 100 * (
        0.5 * report.valid_share
        + (1 - duplicate_share) / 8
        + (1 - outlier_share) / 8
        + balance / 8
        + (1 - report.drift) / 8
    )
    return round(score, 2)


def _decide(report: ContributionReport, policy: IntakePolicy) -> tuple[bool, str]:
    if report.rows_in == 0:
        return False, "rejected: the file has a header but no data rows"
    if report.missing_columns:
        decision = f"rejected: missing required column(s) {', '.join(report.missing_columns)}"
        columns = [*report.column_mapping, *report.dropped_columns]
        separator = next(
            (s for s in (";", "|", "\t") if len(columns) == 1 and s in columns[0]), None
        )
        if separator:
            decision += (
                f" (the header looks {separator!r}-separated: use commas, or tabs in a .tsv)"
            )
        return False, decision
    summary = f"{report.rows_clean}/{report.rows_in} rows clean, quality {report.quality_score:.1f}"
    if report.rows_clean < policy.min_rows:
        return False, f"rejected: {summary}; at least {policy.min_rows} clean row(s) required"
    if report.valid_share < policy.min_valid_share:
        return False, f"rejected: {summary}; {policy.min_valid_share:.0%} of rows must be clean"
    if report.quality_score < policy.min_quality:
        return False, f"rejected: {summary} < {policy.min_quality:.1f} required"
    return True, f"accepted: {summary}"


def _write_outputs(
    db: "DuckDBPyConnection", task: TaskSchema, kept_columns: list[str], output_dir: Path
) -> None:
    """clean.parquet (typed task columns) and rejected.parquet (original values + reasons)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    columns = ", ".join(quote(c) for c in task.columns)
    originals = "".join(f", r.{quote(c)}" for c in kept_columns)
    clean = output_dir / "clean.parquet"
    rejected = output_dir / "rejected.parquet"
    db.execute(
        f"COPY (SELECT {ROW_INDEX}, {columns}, {OUTLIER} FROM decided WHERE len({REASONS}) = 0 "
        f"ORDER BY {ROW_INDEX}) TO '{clean}' (FORMAT parquet)"
    ).fetchall()
    db.execute(
        f"COPY (SELECT r.{ROW_INDEX}{originals}, array_to_string(d.{REASONS}, ';') AS "
        f"{REASON_COLUMN} FROM {RAW} AS r JOIN decided AS d USING ({ROW_INDEX}) "
        f"WHERE len(d.{REASONS}) > 0 ORDER BY r.{ROW_INDEX}) TO '{rejected}' (FORMAT parquet)"
    ).fetchall()


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
) -> ContributionReport:
    """Intake ``path`` into ``contributions_root/<contribution_id>/`` and return its report.

    The same bytes already submitted as another contribution are recognised by their sha256
    and recorded as a duplicate submission without being processed again. Outputs are written
    to a staging directory and swapped in whole, so a failure never leaves a half-written
    contribution behind, and ``report.json`` is always present in the result.
    """
    sha256 = file_sha256(path)
    reports = contribution_reports(contributions_root, exclude=contribution_id)
    earlier = find_contribution_by_sha256(reports, sha256)
    staging = contributions_root / f".{contribution_id}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        if earlier is not None:
            report = ContributionReport(
                contribution_id,
                contributor,
                path.name,
                sha256,
                duplicate_of=earlier,
                decision=f"rejected: the same bytes were already submitted as {earlier}",
                rejection_reasons={"duplicate_submission": 1},
            )
        else:
            try:
                report = intake_contribution(
                    path,
                    task,
                    reference=reference,
                    contribution_id=contribution_id,
                    contributor=contributor,
                    policy=policy,
                    output_dir=staging,
                    sha256=sha256,
                    earlier_contributions=accepted_clean_files(reports),
                )
            except ContributionUnreadableError as exc:
                report = unreadable_report(
                    path, exc, contribution_id=contribution_id, contributor=contributor
                )
        write_json({**report.to_dict(), "landing_path": landing_path}, staging / "report.json")
        replace_directory(staging, contributions_root / contribution_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def contribution_reports(
    root: Path, *, exclude: str | None = None
) -> list[tuple[dict[str, Any], Path]]:
    """(report, directory) of every contribution under ``root`` but ``exclude``, read once."""
    reports = []
    for report_path in sorted(root.glob("*/report.json")):
        report = read_json(report_path)
        if report.get("contribution_id") != exclude:
            reports.append((report, report_path.parent))
    return reports


def accepted_clean_files(reports: list[tuple[dict[str, Any], Path]]) -> tuple[Path, ...]:
    """The clean Parquet files of the accepted contributions among ``reports``."""
    return tuple(
        directory / "clean.parquet"
        for report, directory in reports
        if report.get("accepted") and (directory / "clean.parquet").exists()
    )


def find_contribution_by_sha256(
    reports: list[tuple[dict[str, Any], Path]], sha256: str
) -> str | None:
    """The id of an earlier contribution with these exact bytes, if any."""
    for report, _ in reports:
        if report.get("sha256") == sha256 and report.get("duplicate_of") is None:
            return report["contribution_id"]
    return None
