"""Row-level validation against the task schema, as SQL, shared by reference data and
contributions of any size.

One SQL expression decides every row, whether it comes from a 150-row pandas frame or a
multi-gigabyte file scanned by DuckDB, so the two can never disagree.
"""

import re
from dataclasses import dataclass

import pandas as pd

from mlops_assets.core.intake.text_files import MISSING_TOKENS
from mlops_assets.task import Feature, TaskSchema

REASON_COLUMN = "rejection_reasons"
REASONS = "reasons"  # the SQL list of reason codes
ROW_INDEX = "row_index"


@dataclass(frozen=True)
class RowValidation:
    """The outcome of validating a frame: typed valid rows and the rejected rows with reasons.

    ``valid`` has exactly the task's columns (float numeric features, canonical categories and
    label) and keeps the input index; ``rejected`` keeps every original column as read plus
    ``rejection_reasons`` (``;``-separated codes such as ``not_numeric:sepal_width``).
    """

    valid: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def reason_counts(self) -> dict[str, int]:
        return count_reasons(self.rejected)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def validated_rows_sql(
    task: TaskSchema,
    sources: dict[str, str],
    relation: str,
    carry: dict[str, str] | None = None,
    *,
    decimal: str = ".",
    header_names: dict[str, str] | None = None,
    nul_bytes: bool = False,
) -> str:
    """SELECT of ``relation`` giving the ``carry`` columns (alias -> SQL over ``relation``),
    the task's typed columns and ``reasons``.

    ``sources`` maps each task column to the text column of ``relation`` holding it. A row's
    ``reasons`` lists, in schema order, every code that applies: ``missing_value:<f>`` (an
    empty cell or a "no value" spelling: ``NA``, ``NaN``, ``null``, ``?`` ...) for a feature
    whose missing values are rejected, ``not_numeric:<f>``, ``non_finite:<f>``,
    ``out_of_range:<f>``, ``unknown_category:<f>`` and ``unknown_label``; an empty list means
    the row is valid. A missing value of a feature the task imputes is NULL and no reason.
    With ``decimal=","`` numbers are read with a decimal comma. With ``header_names`` (task
    column -> the header's name for it), a row repeating the header is ``malformed_row``. With
    ``nul_bytes``, a value holding a NUL byte rejects its row as ``nul_byte:<column>``, and
    for nothing else: the byte is the problem, not the value.
    Expressions only, no join: one streaming pass that keeps the relation's order.
    """
    inner = [f"{expression} AS {quote(alias)}" for alias, expression in (carry or {}).items()]
    typed, checks, fast = [], [], []
    for i, feature in enumerate(task.features):
        text, value = f"__feature_text{i}", f"__value{i}"
        source = quote(sources[feature.name])
        blank = missing_sql(text)
        if feature.categorical:
            inner.append(f"{canonical_value_sql(feature, source)} AS {value}")
            known = f"{value} IS NOT NULL"
            checks.append(
                f"CASE WHEN NOT {blank} AND {value} IS NULL "
                f"THEN 'unknown_category:{feature.name}' END"
            )
        else:
            # TRY_CAST ignores surrounding whitespace itself; trim only to tell an empty cell.
            number = f"replace({source}, ',', '.')" if decimal == "," else source
            inner.append(f"TRY_CAST({number} AS DOUBLE) AS {value}")
            known = f"{value} BETWEEN {feature.minimum} AND {feature.maximum}"
            checks += [
                f"CASE WHEN NOT {blank} AND {value} IS NULL THEN 'not_numeric:{feature.name}' END",
                f"CASE WHEN NOT {blank} AND NOT isfinite({value}) "
                f"THEN 'non_finite:{feature.name}' END",
                f"CASE WHEN isfinite({value}) AND ({value} < {feature.minimum} "
                f"OR {value} > {feature.maximum}) THEN 'out_of_range:{feature.name}' END",
            ]
        inner.append(f"{source} AS {text}")
        if feature.imputed:
            # No value is a value to impute: NULL (never a NaN read from "NaN"), not a reason.
            typed.append(f"CASE WHEN {blank} THEN NULL ELSE {value} END AS {quote(feature.name)}")
            fast.append(f"({known} OR {blank})")
        else:
            typed.append(f"{value} AS {quote(feature.name)}")
            checks.append(f"CASE WHEN {blank} THEN 'missing_value:{feature.name}' END")
            fast.append(known)
    label_source = quote(sources[task.label])
    inner += [
        f"{canonical_label_sql(task, label_source)} AS __label",
        f"{label_source} AS __label_text",
    ]
    checks.append(f"CASE WHEN {missing_sql('__label_text')} THEN 'missing_value:{task.label}' END")
    checks.append(
        f"CASE WHEN __label IS NULL AND NOT {missing_sql('__label_text')} THEN 'unknown_label' END"
    )
    # Most rows are valid: one test per value spares them the list of checks.
    valid = " AND ".join([*fast, "__label IS NOT NULL"])
    reasons = f"list_filter([{', '.join(checks)}], lambda x: x IS NOT NULL)"
    texts = {f.name: f"__feature_text{i}" for i, f in enumerate(task.features)}
    texts[task.label] = "__label_text"
    if nul_bytes:
        nul = [f"CASE WHEN contains({t}, chr(0)) THEN 'nul_byte:{c}' END" for c, t in texts.items()]
        nul_reasons = f"list_filter([{', '.join(nul)}], lambda x: x IS NOT NULL)"
        reasons = f"CASE WHEN len({nul_reasons}) > 0 THEN {nul_reasons} ELSE {reasons} END"
    if header_names:
        repeats = " AND ".join(
            f"trim({texts[column]}) = {literal(name.strip())}"
            for column, name in header_names.items()
        )
        reasons = f"CASE WHEN {repeats} THEN ['malformed_row'] ELSE {reasons} END"
    carried = "".join(f"{quote(alias)}, " for alias in carry or {})
    return (
        f"SELECT {carried}{', '.join(typed)}, __label AS {quote(task.label)}, "
        f"CASE WHEN {valid} THEN []::VARCHAR[] ELSE {reasons} END AS {REASONS} "
        f"FROM (SELECT {', '.join(inner)} FROM {relation})"
    )


def missing_sql(text_sql: str) -> str:
    """SQL: ``text_sql`` holds no value: NULL, blank, or a spelling real tools write for one
    (``NA``, ``N/A``, ``NaN``, ``null``, ``None``, ``?``, ``#N/A``, ``.``)."""
    # A regular expression, not lower(trim(...)): the label's lookup uses that expression too,
    # and DuckDB would then compute it once for every row instead of only for invalid ones.
    tokens = "|".join(re.escape(t) for t in MISSING_TOKENS if t)
    return (
        f"({text_sql} IS NULL OR regexp_full_match({text_sql}, {literal(_MISSING.format(tokens))}))"
    )


_MISSING = r"(?i)\s*({})?\s*"


def canonical_value_sql(feature: Feature, text_sql: str) -> str:
    """SQL: the categorical ``feature``'s value named by ``text_sql`` (any known spelling, any
    case), else NULL."""
    return _canonical_sql(feature.values, feature.value_spellings(), text_sql)


def canonical_label_sql(task: TaskSchema, text_sql: str) -> str:
    """SQL: the class named by ``text_sql`` (any known spelling, any case), else NULL."""
    return _canonical_sql(task.classes, task.label_spellings(), text_sql)


def _canonical_sql(names: tuple[str, ...], spellings: list[tuple[str, str]], text_sql: str) -> str:
    cases = " ".join(
        f"WHEN {literal(spelling)} THEN {literal(name)}" for spelling, name in spellings
    )
    # The canonical spelling needs no lower() or trim(): the common case stays cheap.
    canonical = ", ".join(literal(name) for name in names)
    return (
        f"CASE WHEN {text_sql} IN ({canonical}) THEN {text_sql} "
        f"ELSE CASE lower(trim({text_sql})) {cases} END END"
    )


def validate_rows(frame: pd.DataFrame, task: TaskSchema) -> RowValidation:
    """Coerce and check every row of ``frame``, which must already have the task's columns.

    A row is rejected, with every reason that applies, when a feature the task requires is
    missing, a number is not numeric, not finite, or outside the feature's physical range, a
    category is not one of the feature's values, or the label is unknown. Numeric features are
    floats (NaN where imputed), categorical ones canonical strings (None where imputed).
    """
    import duckdb

    text = frame[task.columns].astype("string").reset_index(drop=True)
    text.insert(0, ROW_INDEX, range(len(text)))
    with duckdb.connect() as connection:
        connection.register("frame_rows", text)
        sql = validated_rows_sql(
            task, {c: c for c in task.columns}, "frame_rows", carry={ROW_INDEX: ROW_INDEX}
        )
        decided = connection.execute(
            f"SELECT {ROW_INDEX}, {', '.join(quote(c) for c in task.columns)}, "
            f"array_to_string({REASONS}, ';') AS {REASON_COLUMN} FROM ({sql}) ORDER BY {ROW_INDEX}"
        ).df()
    bad = (decided[REASON_COLUMN] != "").to_numpy()
    valid = decided.loc[~bad, task.columns].set_axis(frame.index[~bad])
    valid[task.label] = valid[task.label].astype("string")
    rejected = frame.loc[bad].copy()
    rejected[REASON_COLUMN] = pd.Series(
        decided.loc[bad, REASON_COLUMN].to_numpy(), index=rejected.index, dtype="string"
    )
    return RowValidation(
        valid=valid.astype({f.name: "float64" for f in task.numeric_features}), rejected=rejected
    )


def count_reasons(rejected: pd.DataFrame) -> dict[str, int]:
    """How many rejected rows carry each reason code."""
    if rejected.empty:
        return {}
    codes = rejected[REASON_COLUMN].str.split(";").explode()
    return {str(k): int(v) for k, v in codes.value_counts().sort_index().items()}


def describe_rejections(rejected: pd.DataFrame, *, limit: int = 5, row_offset: int = 0) -> str:
    """One line naming the first few bad rows and why, e.g. ``row 3: not_numeric:sepal_width``."""
    lines = [
        f"row {index + row_offset}: {reasons}"
        for index, reasons in rejected[REASON_COLUMN].head(limit).items()
    ]
    more = len(rejected) - limit
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")
