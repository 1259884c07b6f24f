"""Integer class codes: read only as the task declares them, and only when the file's codes can
be read no other way.

R writes a factor's codes from 1 (``as.integer(Species)``: 1, 2, 3), pandas' category codes and
scikit-learn's targets count from 0. A file's codes are taken when every one is a declared
code and they could not equally be the same classes counted from the other base: a file that
shows the code only the declared base writes (0 for codes from 0, the last code for codes from
1). Otherwise every coded row is ``unknown_label``, and the report says why and what to write.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

CODE_COLUMN = "__label_code"
_INTEGER = r"\s*[+-]?[0-9]+(\.0*)?\s*"


def code_sql(text_sql: str, task: TaskSchema) -> str:
    """SQL: the integer a label text spells (``2``, ``2.0``), else NULL; the class names
    themselves are never looked at twice."""
    names = ", ".join("'" + c.replace("'", "''") + "'" for c in task.classes)
    return (
        f"CASE WHEN {text_sql} IN ({names}) THEN NULL "
        f"WHEN regexp_full_match({text_sql}, '{_INTEGER}') "
        f"THEN TRY_CAST(TRY_CAST(trim({text_sql}) AS DOUBLE) AS BIGINT) END"
    )


def codes_problem(found: set[int], task: TaskSchema) -> str | None:
    """Why the file's integer labels ``found`` cannot be read with the task's declared codes,
    or None when they can (or there are none)."""
    codes = task.class_codes
    if not found or not codes:
        return None
    declared = ", ".join(f"{code} = {name}" for code, name in codes.items())
    if undeclared := sorted(found - set(codes)):
        return (
            f"the labels are integer codes ({_listed(found)}), and {_listed(undeclared)} "
            f"is no code of the task's ({declared})"
            + ("; R's factor codes count from 1" if min(codes) == 0 and 0 not in found else "")
        )
    base = min(codes)
    if base in (0, 1):
        other = 1 - base
        if all(code - other + base in codes for code in found):
            return (
                f"the labels are integer codes ({_listed(found)}) that could be the task's "
                f"codes ({declared}) or the same classes counted from {other}"
            )
    return None


def found_codes(db: DuckDBPyConnection, table: str) -> set[int]:
    return {
        code
        for (code,) in db.execute(
            f"SELECT DISTINCT {CODE_COLUMN} FROM {table} WHERE {CODE_COLUMN} IS NOT NULL LIMIT 1000"
        ).fetchall()
    }


def unknown_integer_labels(db: DuckDBPyConnection, table: str, label_text_sql: str) -> set[int]:
    """The integers written as labels among the rows rejected as ``unknown_label``."""
    texts = db.execute(
        f"SELECT DISTINCT trim({label_text_sql}) FROM {table} "
        "WHERE list_contains(reasons, 'unknown_label') LIMIT 1000"
    ).fetchall()
    return {int(float(t)) for (t,) in texts if t is not None and re.fullmatch(_INTEGER, t)}


def label_hint(task: TaskSchema, integers: set[int], problem: str | None) -> str | None:
    """What a contributor whose labels are integers should do."""
    if not integers and not problem:
        return None
    why = problem or (
        f"the labels are integer codes ({_listed(integers)}), which the task "
        + ("does not declare" if task.class_codes else "declares none of")
    )
    return (
        f"{why}: labels are never guessed from codes, so these rows are unknown_label. "
        f"Write the class names ({', '.join(task.classes)}) in the label column "
        "(in R: the factor itself, not as.integer(); in pandas: the column, not .cat.codes)"
    )


def _listed(values: set[int] | list[int]) -> str:
    shown = sorted(values)
    return ", ".join(str(v) for v in shown[:10]) + (", …" if len(shown) > 10 else "")
