"""Intake of one contributed file: read, map columns, scrub personal data, validate rows,
deduplicate, flag outliers, score, decide.

Everything runs as SQL in DuckDB over the file itself, so memory stays bounded whatever the
file's size. Nothing is lost: every record ends up either in ``clean.parquet`` or in
``rejected.parquet`` with its original values and reason codes, so
``rows_in == rows_clean + rows_rejected == records_in_file`` always.

Long on purpose: one DuckDB pipeline over one file, whose steps share the SQL relations
named below (``DECIDED``, ``OUTCOME``, ``PARSED`` ...); split up, those names and the order
of the steps would have to be read across modules.
"""

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mlops_assets.core.common.hashing import file_sha256
from mlops_assets.core.common.names import safe_text, without_paths
from mlops_assets.core.common.row_matching import (
    RowMatching,
    near_pairs_sql,
    same_cells_sql,
)
from mlops_assets.core.intake import label_codes, pii
from mlops_assets.core.intake.columns import map_columns, normalise_column_name
from mlops_assets.core.intake.label_codes import CODE_COLUMN
from mlops_assets.core.intake.raw_contribution import without_library_advice
from mlops_assets.core.intake.readers import (
    MALFORMED,
    RAW,
    ROW_INDEX,
    RawContribution,
    open_contribution,
)
from mlops_assets.core.intake.report import (
    ContributionReport,
    IntakePolicy,
    decide,
    quality_score,
    rejection_hint,
)
from mlops_assets.core.intake.text_files import IntakeLimits
from mlops_assets.core.intake.validation import (
    REASON_COLUMN,
    REASONS,
    literal,
    quote,
    validated_rows_sql,
)
from mlops_assets.errors import (
    IntakeFailedError,
    IntakeTimeoutError,
)
from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

OUTLIER = "outlier"
DECIDED = "decided"  # one row per input row, in file order
OUTCOME = "outcome"  # every record with its position and final reasons
PARSED = "parsed_outcome"  # the parsed records (not the malformed ones), in file order
SHIFTS = "malformed_shifts"
RANK = "rank"  # a parsed record's place among the parsed records
# Columns of ``decided``: bits of what was found about a valid row, and (``TEXT`` and the
# column's position) each value's original text, for the quarantine and the personal-data scan.
FLAGS, TEXT = "flags", "__text"
OUTLIER_FLAG, REPEAT_FLAG, REFERENCE_FLAG, EARLIER_FLAG, BENCHMARK_FLAG = 1, 2, 4, 8, 16
BENCHMARK_ROW = "benchmark_row"
UPDATE_BATCH_ROWS = 1_000_000
# |robust z| above this (median and MAD of the reference, per class) flags an outlier.
OUTLIER_Z = 3.5


# The accepted rows of earlier contributions that match one of the given rows (the task's
# columns) with its label, as the task's columns: the catalog's lookup.
EarlierRows = Callable[[pd.DataFrame], pd.DataFrame]


def intake_contribution(
    path: Path,
    task: TaskSchema,
    *,
    reference: pd.DataFrame,
    contribution_id: str,
    contributor: str,
    policy: IntakePolicy,
    benchmark: pd.DataFrame | None = None,
    matching: RowMatching | None = None,
    output_dir: Path | None = None,
    sha256: str | None = None,
    earlier_rows: EarlierRows | None = None,
    limits: IntakeLimits | None = None,
    landed_at: float | None = None,
) -> ContributionReport:
    """Decide on the contribution at ``path`` and, with ``output_dir``, write its rows there.

    Rows are compared at the task's measurement resolution (``matching``; by default inferred
    from the reference): two rows closer than it on every feature are one row. ``reference``
    is the reference train part: rows that copy it are rejected as ``duplicate_of_reference``.
    Rows that copy ``benchmark`` (None when it is private: the intake must not tell anyone
    which rows it holds) are refused as ``benchmark_row``: no model is ever trained on them.
    Both supply the per-class statistics outliers are judged by. Rows already brought by
    a contribution that landed before this one (``earlier_rows`` finds those near the file's
    rows) are rejected as ``duplicate_of_contribution``. Raises
    :class:`ContributionUnreadableError` when the file cannot be parsed at all,
    :class:`ContributionTooLargeError` when it expands past ``limits`` and
    :class:`IntakeTimeoutError` when the intake outlasts them; every other problem is
    recorded row by row.

    The file is read once: each row's original texts are kept beside its typed values, so the
    quarantine is copied from them.
    """
    report = ContributionReport(
        contribution_id, contributor, path.name, sha256 or file_sha256(path), landed_at=landed_at
    )
    known = KnownRows(
        reference,
        benchmark,
        matching or RowMatching.for_task(task, pd.concat([reference, benchmark])),
        earlier_rows,
    )
    limits = limits or IntakeLimits()
    try:
        _intake(path, task, report, known, policy, output_dir, limits)
    except (OSError, MemoryError) as exc:
        raise _failed(path, exc) from None
    except Exception as exc:
        import duckdb

        if isinstance(exc, duckdb.Error):
            raise _failed(path, exc) from None
        raise
    return report


def _failed(path: Path, exc: BaseException) -> IntakeFailedError:
    """A typed error for a failure of the intake itself, saying what to do about it."""
    text = without_paths(without_library_advice(str(exc)))[:300]
    memory = "memory" in text.lower() or isinstance(exc, MemoryError)
    return IntakeFailedError(
        f"{path.name}: the intake failed ({type(exc).__name__}: {text})",
        hint="split the file into smaller ones (it needs more memory than the intake has)"
        if memory
        else "check the disk and storage of the deployment, then run the intake again",
    )


@dataclass(frozen=True)
class KnownRows:
    """What a contribution's rows are compared with: the reference train part, the benchmark
    (None when private), how rows match, and the rows of earlier contributions."""

    reference: pd.DataFrame
    benchmark: pd.DataFrame | None
    matching: RowMatching
    earlier: EarlierRows | None = None


def _intake(
    path: Path,
    task: TaskSchema,
    report: ContributionReport,
    known: KnownRows,
    policy: IntakePolicy,
    output_dir: Path | None,
    limits: IntakeLimits,
) -> None:
    timings = report.timings
    started = time.perf_counter()
    deadline = time.monotonic() + limits.timeout_seconds
    with (
        open_contribution(path, task, limits=limits, deadline=deadline) as raw,
        _time_limit(raw, limits.timeout_seconds - (time.perf_counter() - started), path.name),
    ):
        timings["read_and_count"] = round(time.perf_counter() - started, 3)
        db = raw.connection
        raw.describe_reading(report)
        reference = pd.concat([known.reference, known.benchmark])[task.columns]
        db.register("reference_rows", reference)  # outliers and drift are judged against it
        db.register("reference_train_rows", known.reference[task.columns])
        if known.benchmark is not None:
            db.register("benchmark_rows", known.benchmark[task.columns])
        named_pii = [c for c in raw.columns if pii.kinds_by_column_name(normalise_column_name(c))]
        mapping = map_columns([c for c in raw.columns if c not in named_pii], task)
        declared = task
        with _timed(timings, "validate"):
            _decide_rows(raw, task, mapping)
            task, codes_problem = _task_for_codes(raw, task, mapping)
        with _timed(timings, "personal_data"):
            report.pii_found, pii_columns = _scan_pii(db, raw.columns, set(mapping))
        if any(column in mapping for column in pii_columns):
            # Personal data inside a mapped column: the column is dropped like any other.
            mapping = map_columns([c for c in raw.columns if c not in pii_columns], task)
            with _timed(timings, "validate"):
                _decide_rows(raw, task, mapping)
        # Column names are the contributor's: shown and stored shortened and made safe.
        shown = shown_names(raw.columns)
        report.column_mapping = {shown[c]: target for c, target in mapping.items()}
        report.dropped_columns = [shown[c] for c in raw.columns if c not in mapping]
        report.pii_columns = [shown[c] for c in pii_columns]
        report.missing_columns = [c for c in task.columns if c not in mapping.values()]
        if not report.missing_columns:
            with _timed(timings, "duplicates"):
                _judge_valid_rows(db, task, known)
        _redact_malformed(db, raw, pii_columns)
        _create_outcome(db, task, policy, shifted=raw.malformed_rows > 0)
        with _timed(timings, "summarise"):
            parsed = db.execute(f"SELECT count(*) FROM {DECIDED}").fetchall()[0][0]
            report.rows_in = parsed + raw.malformed_rows
            report.records_in_file = raw.records_in_file
            _summarise(db, task, report, policy)
        if label_hint := _label_hint(raw, declared, mapping, codes_problem, report):
            report.hints.append(label_hint)
        report.accepted, report.decision = decide(report, policy)
        report.hint = rejection_hint(report, task)
        if output_dir is not None:
            kept = {i: shown[c] for i, c in enumerate(raw.columns) if c not in pii_columns}
            with _timed(timings, "write_outputs"):
                _write_outputs(raw, task, kept, output_dir, policy)
    timings["total"] = round(time.perf_counter() - started, 3)


def _task_for_codes(
    raw: RawContribution, task: TaskSchema, mapping: dict[str, str]
) -> tuple[TaskSchema, str | None]:
    """The task to judge the file by: as declared, or, when the file's integer labels cannot
    be read with the declared class codes beyond doubt, without them (the rows decided again,
    coded ones now ``unknown_label``); and why."""
    if not task.class_codes or set(task.columns) - set(mapping.values()):
        return task, None
    problem = label_codes.codes_problem(label_codes.found_codes(raw.connection, DECIDED), task)
    if problem is None:
        return task, None
    task = dataclasses.replace(task, class_codes={})
    _decide_rows(raw, task, mapping)
    return task, problem


def _label_hint(
    raw: RawContribution,
    task: TaskSchema,
    mapping: dict[str, str],
    problem: str | None,
    report: ContributionReport,
) -> str | None:
    """What to do when labels were integer codes that could not be read."""
    if not problem and "unknown_label" not in report.rejection_reasons:
        return None
    source = next((c for c, target in mapping.items() if target == task.label), None)
    if source is None:
        return None
    text = _text_sql(raw.columns.index(source))
    integers = label_codes.unknown_integer_labels(raw.connection, DECIDED, text)
    return label_codes.label_hint(task, integers, problem)


@contextlib.contextmanager
def _time_limit(raw: RawContribution, seconds: float, name: str) -> Iterator[None]:
    """Interrupt the intake's queries once ``seconds`` have passed; the interruption becomes
    an :class:`IntakeTimeoutError`."""
    import threading

    import duckdb

    timer = threading.Timer(max(0.0, seconds), raw.connection.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        raise IntakeTimeoutError(
            f"{name}: the intake took longer than its time limit", hint="raise MLOPS_INTAKE_TIMEOUT"
        ) from None
    finally:
        timer.cancel()


@contextlib.contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Add the seconds the block takes to ``timings[step]``: where an intake spends its time."""
    started = time.perf_counter()
    yield
    timings[step] = round(timings.get(step, 0.0) + time.perf_counter() - started, 3)


def shown_names(columns: list[str]) -> dict[str, str]:
    """Each column name as it may be stored and shown: control characters replaced, at most
    ``MAX_NAME`` characters, and still distinct."""
    shown: dict[str, str] = {}
    for column in columns:
        name, n = safe_text(column), 2
        while name in shown.values():
            name, n = f"{safe_text(column)}_{n}", n + 1
        shown[column] = name
    return shown


def _text_sql(index: int) -> str:
    """The original text of the file's ``index``-th column, as :func:`_decide_rows` kept it."""
    return f"{TEXT}{index}"


def _scanned_text_sql(index: int, mapped: bool) -> str:
    """The text the personal-data scan reads: every value of an unmapped column, the values
    of rows rejected by validation in a mapped one. A valid row's mapped values are numbers
    in range and a known label, which no personal-data pattern matches."""
    text = _text_sql(index)
    return f"CASE WHEN len({REASONS}) > 0 THEN {text} END" if mapped else text


def _scan_pii(
    db: "DuckDBPyConnection", columns: list[str], mapped: set[str]
) -> tuple[dict[str, int], list[str]]:
    """Counts of personal-data values by kind, and the columns that hold any.

    Grouped first: a column repeats few distinct texts (labels, categories), so each pattern
    runs once per distinct value.
    """
    per_column: dict[tuple[str, str], int] = {}
    kinds = list(pii.VALUE_PATTERNS)
    for i, column in enumerate(columns):
        text = _scanned_text_sql(i, column in mapped)
        # Most values are plain numbers: one cheap test spares them every pattern.
        counts = db.execute(
            "SELECT coalesce(sum(n) FILTER (WHERE v <> ''), 0), "
            + ", ".join(
                f"coalesce(sum(n) FILTER (WHERE NOT plain AND {pii.value_match_sql('v', kind)}), 0)"
                for kind in kinds
            )
            + f" FROM (SELECT v, n, regexp_full_match(v, '{pii.PLAIN_NUMBER}') AS plain FROM "
            f"(SELECT trim({text}) AS v, count(*) AS n FROM {DECIDED} "
            # No text scanned (a valid row's mapped value): nothing to count, so not grouped.
            f"WHERE {text} IS NOT NULL GROUP BY v))"
        ).fetchall()[0]
        # A column named like personal data counts every filled value as that kind.
        for kind in pii.kinds_by_column_name(normalise_column_name(column)):
            per_column[column, kind] = counts[0]
        for kind, count in zip(kinds, counts[1:], strict=True):
            if count and kind == "credit_card":
                count = _luhn_confirmed(db, text)  # card-like numbers must pass the Luhn check
            if count:
                # A value found by its column's name and by its pattern counts once.
                per_column[column, kind] = max(per_column.get((column, kind), 0), count)
    found: dict[str, int] = {}
    for (_, kind), count in per_column.items():
        found[kind] = found.get(kind, 0) + count
    flagged = list(dict.fromkeys(column for column, _ in per_column))
    return found, flagged


def _luhn_confirmed(db: "DuckDBPyConnection", text: str) -> int:
    value = f"trim({text})"
    candidates = db.execute(
        f"SELECT {value} AS v, count(*) FROM {DECIDED} "
        f"WHERE {pii.value_match_sql(value, 'credit_card')} GROUP BY v LIMIT 100000"
    ).fetchall()
    return sum(count for value, count in candidates if pii.luhn_valid(value))


def _decide_rows(raw: RawContribution, task: TaskSchema, mapping: dict[str, str]) -> None:
    """Create the table ``decided`` in one scan of the file: a row per input row, in file
    order (its ``rowid`` is the row's index), with the typed task columns, validation
    ``reasons``, ``flags`` (outlier, then the judgement of valid rows) and every value's
    original text (:func:`_text_sql`): the quarantine copies rejected rows from them, so the
    file is not read again (a second read, aligned row for row, runs on one thread)."""
    db = raw.connection
    sources = {target: source for source, target in mapping.items()}
    missing = [c for c in task.columns if c not in sources]
    carried = {_text_sql(i): quote(c) for i, c in enumerate(raw.columns)}
    texts = ", ".join(_text_sql(i) for i in range(len(raw.columns)))
    if missing:
        reason = "missing_columns:" + ",".join(missing)
        select = (
            f"SELECT {_typed_nulls(task)}, ['{reason}'] AS {REASONS}, "
            f"0::UTINYINT AS {FLAGS}, "
            + ", ".join(f"{text} AS {alias}" for alias, text in carried.items())
            + f" FROM {RAW}"
        )
    else:
        rejected = f"len({REASONS}) > 0"
        if task.class_codes:  # which integers the labels spell, to judge the file's codes
            carried[CODE_COLUMN] = label_codes.code_sql(quote(sources[task.label]), task)
        code = f"{CODE_COLUMN}, " if task.class_codes else ""
        # A valid row repeats an earlier one until it is found to be the first of its cell
        # (:func:`_judge_valid_rows` clears the bit of those few, not sets it for millions).
        repeat = REPEAT_FLAG if task.drops_duplicates else 0
        select = f"""
            SELECT {", ".join(quote(c) for c in task.columns)}, {code}{REASONS},
                CASE WHEN {rejected} THEN 0
                WHEN {_outlier_sql(db, task)} THEN {OUTLIER_FLAG | repeat}
                ELSE {repeat} END::UTINYINT AS {FLAGS}, {texts}
            FROM ({_validated(raw, task, sources, carried)})
        """
    db.execute(f"DROP TABLE IF EXISTS {DECIDED}").fetchall()
    raw.scan(f"CREATE TABLE {DECIDED} AS {select}")
    raw.account(db.execute(f"SELECT count(*) FROM {DECIDED}").fetchall()[0][0])


def _validated(
    raw: RawContribution, task: TaskSchema, sources: dict[str, str], carried: dict[str, str]
) -> str:
    """The validating SELECT over ``raw`` in the file's own dialect: its decimal separator,
    and its header names, so a repeated header line in the middle is a malformed row."""
    dialect = raw.dialect
    return validated_rows_sql(
        task,
        sources,
        RAW,
        carry=carried,
        decimal=dialect.decimal if dialect else ".",
        header_names=sources if dialect and dialect.header else None,
        nul_bytes=True,  # checked for rejected rows only: a NUL byte makes any value invalid
    )


def _redact_malformed(
    db: "DuckDBPyConnection", raw: RawContribution, pii_columns: list[str]
) -> None:
    """Keep no personal data in malformed records' text: where the file holds a column of it,
    the text is withheld; elsewhere values that look like personal data are masked."""
    if not raw.malformed_rows:
        return
    if pii_columns:
        db.execute(
            f"UPDATE {MALFORMED} SET original_text = NULL, problem = problem || "
            f"'; text withheld: the file holds personal data'"
        ).fetchall()
        return
    delimiter = raw.dialect.delimiter if raw.dialect else ","
    db.execute(
        f"UPDATE {MALFORMED} SET original_text = {pii.masked_sql('original_text', delimiter)}"
    ).fetchall()


def _typed_nulls(task: TaskSchema) -> str:
    """SQL: the task's columns, each a NULL of its type."""
    return (
        ", ".join(
            f"NULL::{'VARCHAR' if f.categorical else 'DOUBLE'} AS {quote(f.name)}"
            for f in task.features
        )
        + f", NULL::VARCHAR AS {quote(task.label)}"
    )


def _outlier_sql(db: "DuckDBPyConnection", task: TaskSchema) -> str:
    """SQL: the row lies more than ``OUTLIER_Z`` robust z-scores (median and MAD of its class
    in the reference) from its class on some numeric feature. The statistics are computed
    once here and written into the expression as constants, so the check costs no join. An
    imputed (missing) value is no outlier."""
    features = [f.name for f in task.numeric_features]
    if not features:
        return "false"
    stats = ", ".join(
        # A class whose values repeat (setosa petal widths) has MAD 0: half the standard
        # deviation is the floor, so one rounding step is not an outlier.
        f"median({quote(f)}), "
        f"greatest(1.4826 * mad({quote(f)}), 0.5 * stddev_samp({quote(f)}), 1e-6)"
        for f in features
    )
    rows = db.execute(
        f"SELECT {quote(task.label)}, {stats} FROM reference_rows GROUP BY 1 ORDER BY 1"
    ).fetchall()
    cases = " ".join(
        f"WHEN {literal(cls)} THEN coalesce("
        + " OR ".join(
            f"abs({quote(f)} - {values[2 * i]!r}) / {values[2 * i + 1]!r} > {OUTLIER_Z}"
            for i, f in enumerate(features)
        )
        + ", false)"
        for cls, *values in rows
    )
    return f"CASE {quote(task.label)} {cases} END" if rows else "false"


def _judge_valid_rows(db: "DuckDBPyConnection", task: TaskSchema, known: KnownRows) -> None:
    """Flag valid rows that repeat an earlier row of the file, or copy the reference train
    part, the benchmark or an earlier accepted contribution, at the task's resolution.

    Whole-file work is one aggregate on the hash of each row's cell (rows in one cell are one
    row; the first of each cell stands for it); only those first rows are then compared with
    their neighbouring cells, within the file and with what is known. A task whose identical
    rows are observations (``duplicates = "keep"``) only refuses copies of the benchmark."""
    label = quote(task.label)
    columns = ", ".join(quote(c) for c in task.columns)
    # The cell's hash from the typed values here, not stored a row in decided (cheaper).
    cells = ", ".join(same_cells_sql(task, known.matching))
    db.execute(f"""
        CREATE OR REPLACE TEMP TABLE cell_firsts AS
        SELECT rowid AS row_id, {columns} FROM {DECIDED}
        WHERE rowid IN (
            SELECT min(rowid) FROM {DECIDED} WHERE len({REASONS}) = 0
            GROUP BY hash(hash({cells}), {label})
        )
    """).fetchall()
    (first_rows,) = db.execute("SELECT count(*) FROM cell_firsts").fetchall()[0]

    def matching_ids(relation: str, rows: int, same_label: bool) -> str:
        return _matching_ids(task, known, relation, same_label, fewer=rows <= first_rows)

    found = []  # (flag, SELECT of the ids of first rows it applies to)
    if task.drops_duplicates:
        # A row after the first of its cell repeats it, and nothing else is said of it: every
        # valid row came out of _decide_rows flagged as a repeat, and only the first rows of
        # the cells are judged again below (their flag cleared, then set as found here).
        found.append((0, "SELECT row_id FROM cell_firsts"))
        # Of two first rows that match, the later one repeats the earlier.
        pairs = near_pairs_sql(
            task,
            known.matching,
            "cell_firsts",
            "cell_firsts",
            same_label=True,
            build_id="row_id",
            condition="{p}.row_id <> {b}.row_id",
            each_pair_once=True,
        )
        found.append((REPEAT_FLAG, f"SELECT greatest(probe_id, build_id) FROM ({pairs})"))
        reference = matching_ids("reference_train_rows", len(known.reference), False)
        found.append((REFERENCE_FLAG, reference))
        if known.earlier is not None:
            # Only the earlier rows that match the file's: looked up, not every file read.
            earlier = known.earlier(db.execute(f"SELECT {columns} FROM cell_firsts").df())
            db.register("earlier_rows", earlier)
            found.append((EARLIER_FLAG, matching_ids("earlier_rows", len(earlier), True)))
    if known.benchmark is not None:
        benchmark = matching_ids("benchmark_rows", len(known.benchmark), False)
        found.append((BENCHMARK_FLAG, benchmark))
    if not found:
        return
    union = " UNION ALL ".join(
        f"SELECT row_id, {flag}::UTINYINT AS flag FROM ({ids}) AS f(row_id)" for flag, ids in found
    )
    db.execute(f"""
        CREATE OR REPLACE TEMP TABLE judged AS
        SELECT row_id, bit_or(flag)::UTINYINT AS found FROM ({union}) GROUP BY row_id
    """).fetchall()
    # The first rows judged, in slices of the file: an UPDATE holds its join in memory.
    flagged, last = db.execute("SELECT count(*), max(row_id) FROM judged").fetchall()[0]
    stride = (last or 0) // max(1, flagged // UPDATE_BATCH_ROWS) + 1
    kept = 0xFF & ~REPEAT_FLAG if task.drops_duplicates else 0xFF
    for start in range(0, (last or 0) + 1, stride):
        db.execute(f"""
            UPDATE {DECIDED} SET {FLAGS} = ({FLAGS} & {kept}) | j.found
            FROM (SELECT * FROM judged WHERE row_id >= {start} AND row_id < {start + stride}) AS j
            WHERE {DECIDED}.rowid = j.row_id
        """).fetchall()


def _matching_ids(
    task: TaskSchema, known: KnownRows, relation: str, same_label: bool, *, fewer: bool
) -> str:
    """SELECT of the ids of the file's first rows of each cell that match a row of
    ``relation`` (with the same label when ``same_label``); ``fewer``: ``relation`` holds
    no more rows than the file's first rows."""
    if not fewer:
        return (
            "SELECT DISTINCT probe_id FROM ("
            + near_pairs_sql(task, known.matching, "cell_firsts", relation, same_label=same_label)
            + ")"
        )
    # Matching is symmetric: the fewer rows look up their neighbouring cells among the more
    # (the reference's hundreds among a file's millions, not each of the millions).
    pairs = near_pairs_sql(
        task,
        known.matching,
        relation,
        "cell_firsts",
        same_label=same_label,
        probe_id=None,
        build_id="row_id",
    )
    return f"SELECT DISTINCT build_id FROM ({pairs})"


def _create_outcome(
    db: "DuckDBPyConnection", task: TaskSchema, policy: IntakePolicy, *, shifted: bool
) -> None:
    """The view ``outcome``: each record's ``row_index`` (its position among the file's data
    records), typed columns, outlier flag and final reasons; malformed records are in it too,
    rejected as ``malformed_row``.

    Parsed records come in file order; ``shifted`` says malformed ones sit between them, so a
    parsed record's position is its rank plus the malformed records before it.
    """
    columns = ", ".join(quote(c) for c in task.columns)
    rejected, reasons = _final_reasons(policy)
    db.execute(f"""
        CREATE OR REPLACE VIEW {PARSED} AS
        SELECT rowid AS {RANK}, {columns}, {FLAGS} & {OUTLIER_FLAG} > 0 AS {OUTLIER},
            {rejected} AS rejected, {reasons} AS {REASONS}
        FROM {DECIDED}
    """).fetchall()
    if not shifted:
        db.execute(f"""
            CREATE OR REPLACE VIEW {OUTCOME} AS
            SELECT {RANK} AS {ROW_INDEX}, * EXCLUDE ({RANK}) FROM {PARSED}
        """).fetchall()
        return
    # With malformed positions m_0 < m_1 < ..., the parsed record of rank k sits at k plus
    # the number of j with m_j - j <= k: an as-of join on the thresholds m_j - j.
    db.execute(f"""
        CREATE OR REPLACE TABLE {SHIFTS} AS
        SELECT threshold, max(shift) AS shift FROM (
            SELECT row_index - (row_number() OVER (ORDER BY row_index) - 1) AS threshold,
                row_number() OVER (ORDER BY row_index) AS shift
            FROM {MALFORMED}
        ) GROUP BY threshold
    """).fetchall()
    typed = _typed_nulls(task)
    position, source = _placed(PARSED)
    db.execute(f"""
        CREATE OR REPLACE VIEW {OUTCOME} AS
        SELECT {position} AS {ROW_INDEX}, {columns}, {OUTLIER}, rejected, {REASONS}
        FROM {source}
        UNION ALL
        SELECT {ROW_INDEX}, {typed}, false, true, ['malformed_row'] FROM {MALFORMED}
    """).fetchall()


def _flag_codes(policy: IntakePolicy) -> tuple[int, str]:
    """(bit mask, comma-separated SQL expressions) of the flags that reject a row: what the
    duplicate checks and, by policy, the outlier check record in ``decided``'s ``flags``.
    Each expression is a reason code, or NULL when its bit is not set."""
    found = _rejecting_flags(policy)
    codes = ", ".join(f"CASE WHEN {FLAGS} & {bit} > 0 THEN '{code}' END" for bit, code in found)
    return sum(bit for bit, _ in found), codes


def _rejecting_flags(policy: IntakePolicy) -> list[tuple[int, str]]:
    """(bit, reason code) of each flag in ``decided``'s ``flags`` that rejects a row."""
    found = [
        (REPEAT_FLAG, "duplicate_in_contribution"),
        (REFERENCE_FLAG, "duplicate_of_reference"),
        (EARLIER_FLAG, "duplicate_of_contribution"),
        (BENCHMARK_FLAG, BENCHMARK_ROW),
    ]
    if not policy.keep_outliers:
        found.append((OUTLIER_FLAG, OUTLIER))
    return found


def _final_reasons(policy: IntakePolicy) -> tuple[str, str]:
    """SQL over ``decided``: whether a row is rejected, and all its reasons (the validation's,
    then what the flags say)."""
    mask, codes = _flag_codes(policy)
    return (
        f"(len({REASONS}) > 0 OR {FLAGS} & {mask} > 0)",
        f"CASE WHEN {FLAGS} & {mask} = 0 THEN {REASONS} "
        f"ELSE list_filter({REASONS} || [{codes}], lambda x: x IS NOT NULL) END",
    )


def _placed(relation: str) -> tuple[str, str]:
    """(position SQL, FROM clause) placing the parsed records of ``relation`` (with their
    ``rank``) among the malformed ones, by an as-of join on the shift thresholds."""
    return (
        f"p.{RANK} + coalesce(s.shift, 0)",
        f"{relation} AS p ASOF LEFT JOIN {SHIFTS} AS s ON p.{RANK} >= s.threshold",
    )


def _summarise(
    db: "DuckDBPyConnection", task: TaskSchema, report: ContributionReport, policy: IntakePolicy
) -> None:
    means = "".join(f", avg({quote(f.name)}) AS m{i}" for i, f in enumerate(task.numeric_features))
    # One scan of the clean rows gives counts, outliers and the class means drift needs.
    db.execute(f"""
        CREATE OR REPLACE TEMP TABLE clean_classes AS
        SELECT {quote(task.label)} AS cls, count(*) AS n, count(*) FILTER (WHERE {OUTLIER})
            AS outliers{means}
        FROM {OUTCOME} WHERE NOT rejected GROUP BY cls ORDER BY cls
    """).fetchall()
    classes = db.execute("SELECT cls, n, outliers FROM clean_classes").fetchall()
    report.class_counts = {cls: n for cls, n, _ in classes}
    report.rows_clean = sum(report.class_counts.values())
    report.outliers = sum(outliers for *_, outliers in classes)
    report.rows_rejected = report.rows_in - report.rows_clean
    report.rejection_reasons, report.rows_usable = _reason_counts(db, policy)
    clean = report.rows_clean
    report.valid_share = round(clean / report.rows_in, 4) if report.rows_in else 0.0
    if clean and not report.missing_columns and task.numeric_features:
        report.drift = _drift(db, task)
    report.quality_score = quality_score(report, n_classes=len(task.classes))


def _reason_counts(db: "DuckDBPyConnection", policy: IntakePolicy) -> tuple[dict[str, int], int]:
    """How many rejected records carry each reason code (``outcome``'s reasons, counted), and
    how many rows are valid by value (duplicates included: what the quality score calls
    usable).

    Counted without building each row's list of reasons: the validation's reasons of the
    rows that have any, each flag that rejects a row by its bit, and the malformed records.
    A file of millions of repeated rows would otherwise build and unnest a list a row."""
    counts: dict[str, int] = {}
    for reason, n in db.execute(
        f"SELECT reason, count(*) FROM (SELECT unnest({REASONS}) AS reason FROM {DECIDED} "
        f"WHERE len({REASONS}) > 0) GROUP BY reason"
    ).fetchall():
        counts[reason] = counts.get(reason, 0) + n
    bits = _rejecting_flags(policy)
    usable, *flagged = db.execute(
        f"SELECT count(*) FILTER (WHERE len({REASONS}) = 0)"
        + "".join(f", count(*) FILTER (WHERE {FLAGS} & {bit} > 0)" for bit, _ in bits)
        + f" FROM {DECIDED}"
    ).fetchall()[0]
    (malformed,) = db.execute(f"SELECT count(*) FROM {MALFORMED}").fetchall()[0]
    for (_, code), n in [*zip(bits, flagged, strict=True), (("", "malformed_row"), malformed)]:
        if n:
            counts[code] = counts.get(code, 0) + n
    return dict(sorted(counts.items())), usable


def _drift(db: "DuckDBPyConnection", task: TaskSchema) -> float:
    """How far the clean rows sit from the reference: the class-weighted mean, over classes
    and numeric features, of |mean shift| in reference standard deviations, halved and capped
    at 1 (0: same distribution, 1: shifted by two standard deviations or more)."""
    features = [f.name for f in task.numeric_features]
    reference = ", ".join(
        f"avg({quote(f)}) AS m{i}, greatest(stddev_samp({quote(f)}), 1e-6) AS s{i}"
        for i, f in enumerate(features)
    )
    shift = " + ".join(f"abs(c.m{i} - r.m{i}) / r.s{i}" for i in range(len(features)))
    (value,) = db.execute(f"""
        WITH r AS (SELECT {quote(task.label)} AS cls, {reference} FROM reference_rows GROUP BY cls)
        SELECT sum(c.n * ({shift}) / {len(features)}) / sum(c.n)
        FROM clean_classes AS c JOIN r USING (cls)
    """).fetchall()[0]
    return round(min(1.0, (value or 0.0) / 2), 4)


def _write_outputs(
    raw: RawContribution,
    task: TaskSchema,
    kept_columns: dict[int, str],
    output_dir: Path,
    policy: IntakePolicy,
) -> None:
    """clean.parquet (typed task columns) and rejected.parquet (original values + reasons;
    a malformed record's line number and text). ``kept_columns``: the position of each column
    whose original values the quarantine keeps, and the name it is stored under."""
    output_dir.mkdir(parents=True, exist_ok=True)
    db = raw.connection
    columns = ", ".join(quote(c) for c in task.columns)
    clean = output_dir / "clean.parquet"
    rejected = output_dir / "rejected.parquet"
    shifted = raw.malformed_rows > 0
    # A filtered scan of a table keeps its order: no sort needed unless records were shifted.
    db.execute(
        f"COPY (SELECT {ROW_INDEX}, {columns}, {OUTLIER} FROM {OUTCOME} WHERE NOT rejected"
        f"{f' ORDER BY {ROW_INDEX}' if shifted else ''}) TO {literal(str(clean))} (FORMAT parquet)"
    ).fetchall()
    mask, codes = _flag_codes(policy)
    position, source = (f"p.{RANK}", "p") if not shifted else _placed("p")
    # A row rejected for one flag alone (a repeat, in a file of millions) is given its code
    # as it is, not a string joined from parts a row.
    single = "CASE " + " ".join(
        f"WHEN p.__invalid IS NULL AND {FLAGS} & {mask} = {bit} THEN {literal(code)}"
        for bit, code in _rejecting_flags(policy)
    )
    # The kept columns' original values, under their shown names.
    kept_texts = "".join(f", {_text_sql(i)}" for i in kept_columns)
    originals = "".join(f", p.{_text_sql(i)} AS {quote(name)}" for i, name in kept_columns.items())
    malformed = f"""
        UNION ALL BY NAME
        SELECT {ROW_INDEX}, 'malformed_row' AS {REASON_COLUMN}, line_number, original_text
        FROM {MALFORMED}
        ORDER BY {ROW_INDEX}
    """
    db.execute(f"""
        COPY (
            WITH p AS (
                SELECT rowid AS {RANK}, {FLAGS}, CASE WHEN len({REASONS}) > 0
                    THEN array_to_string({REASONS}, ';') END AS __invalid{kept_texts}
                FROM {DECIDED} WHERE len({REASONS}) > 0 OR {FLAGS} & {mask} > 0
            )
            SELECT {position} AS {ROW_INDEX}{originals},
                {single} ELSE concat_ws(';', p.__invalid, {codes}) END AS {REASON_COLUMN},
                NULL::BIGINT AS line_number, NULL::VARCHAR AS original_text
            FROM {source}
            {malformed if shifted else ""}
        ) TO {literal(str(rejected))} (FORMAT parquet)
    """).fetchall()
