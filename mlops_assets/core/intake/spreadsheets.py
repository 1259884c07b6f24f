"""Workbooks as Excel, LibreOffice and Google Sheets save them (.xlsx, .xlsm, .xlsb, .xls, .ods),
read with calamine (python-calamine: one Rust reader for all of them).

The table is on the first sheet whose header row names the task's columns; a title block above
that row is skipped and reported row by row, and the other sheets are named in the report.
Cells are read as the sheet typed them: numbers as numbers (a German "5,1" is the number 5.1),
dates as ISO dates, formulas as the value the spreadsheet program saved with them. A workbook
that is a zip is decompressed under the same limits as any zip before calamine expands it, and
a sheet larger than ``MAX_SHEET_BYTES`` is refused: a workbook is read whole into memory.
"""

from __future__ import annotations

import datetime
import itertools
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_assets.core.intake.dialect import (
    MAX_PREAMBLE_LINES,
    column_names,
    names_task_columns,
)
from mlops_assets.core.intake.limits import IntakeLimits, check_container
from mlops_assets.errors import ContributionTooLargeError, ContributionUnreadableError
from mlops_assets.task import TaskSchema

# Uncompressed size of the sheets' XML read into memory at most (about 10 million cells).
MAX_SHEET_BYTES = 1 << 30
BATCH_ROWS = 100_000
KINDS = {
    "xlsx": "Excel workbook",
    "xlsb": "Excel binary workbook",
    "xls": "Excel 97-2003 workbook",
    "ods": "OpenDocument spreadsheet",
}
ZIPPED = frozenset({"xlsx", "xlsb", "ods"})
CSV_HINT = "or save the sheet as CSV UTF-8 and submit that"


@dataclass
class SheetTable:
    """The table found in a workbook: its values as text, column by column (in batches of
    Arrow arrays, so a large sheet is not held as Python strings)."""

    sheet: str
    header_row: int  # 1-based
    columns: list[str]
    batches: list[dict[str, Any]] = field(repr=False)
    rows: int
    skipped: list[tuple[int, str]]
    other_sheets: list[str]

    @property
    def header(self) -> str:
        return f"row {self.header_row} of sheet {self.sheet}"


def read_workbook(
    path: Path, task: TaskSchema, kind: str, limits: IntakeLimits, name: str
) -> SheetTable:
    """The table on the first sheet of the workbook at ``path`` whose header names the task's
    columns. Raises :class:`ContributionUnreadableError` when the workbook is damaged or
    encrypted or no sheet has such a header, :class:`ContributionTooLargeError` past
    ``limits`` or ``MAX_SHEET_BYTES``."""
    from python_calamine import CalamineWorkbook

    what = KINDS[kind]
    if kind in ZIPPED:
        check_container(path, limits, what)
        _check_sheet_size(path, name, what)
    elif path.stat().st_size > min(limits.max_bytes, MAX_SHEET_BYTES):
        raise _too_large(name, what, path.stat().st_size)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception:  # calamine's errors name no more than "cannot read"
        raise ContributionUnreadableError(
            f"{name}: cannot be read as an {what}: it is damaged, password-protected or "
            "not a workbook",
            hint=f"open it in a spreadsheet program and save it again without a password, "
            f"{CSV_HINT}",
        ) from None
    names = list(workbook.sheet_names)
    for sheet_name in names:
        rows = iter(workbook.get_sheet_by_name(sheet_name).iter_rows())
        top = [r for _, r in zip(range(MAX_PREAMBLE_LINES), rows, strict=False)]
        header = _header_row(top, task)
        if header is not None:
            others = [n for n in names if n != sheet_name]
            return _table(top, rows, header, sheet_name, others)
    raise ContributionUnreadableError(
        f"{name}: an {what} none of whose sheets ({', '.join(names)}) has a header row naming "
        f"the task's columns within its first {MAX_PREAMBLE_LINES} rows",
        hint=f"put a header row ({', '.join(task.columns)}) above the data, {CSV_HINT}",
    )


def _check_sheet_size(path: Path, name: str, what: str) -> None:
    with zipfile.ZipFile(path) as archive:
        sheets = sum(
            m.file_size
            for m in archive.infolist()
            if m.filename.startswith("xl/worksheets/") or m.filename == "content.xml"
        )
    if sheets > MAX_SHEET_BYTES:
        raise _too_large(name, what, sheets)


def _too_large(name: str, what: str, size: int) -> ContributionTooLargeError:
    return ContributionTooLargeError(
        f"{name}: an {what} whose sheets hold {size // 2**20} MB, more than the "
        f"{MAX_SHEET_BYTES // 2**20} MB a workbook is read into memory with",
        hint=f"split it into smaller workbooks, {CSV_HINT}",
    )


def _header_row(rows: list[list[Any]], task: TaskSchema) -> int | None:
    """The 0-based index of the first of the first rows that names the task's columns."""
    for index, row in enumerate(rows[:MAX_PREAMBLE_LINES]):
        if names_task_columns([cell_text(c) or "" for c in row], task, delimiter=","):
            return index
    return None


def cell_text(value: Any) -> str | None:
    """A cell as the text the intake validates: numbers in full precision, dates and times in
    ISO 8601, an empty cell as no value."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def _table(
    top: list[list[Any]], rest: Iterator[list[Any]], header: int, sheet: str, others: list[str]
) -> SheetTable:
    """The rows under ``top[header]`` (the rest of ``top``, then ``rest``) as Arrow batches;
    empty rows are no records. Calamine gives every row the sheet's width."""
    import pyarrow as pa

    columns = list(column_names([cell_text(c) or "" for c in top[header]]))
    skipped = [
        (i + 1, ", ".join(t for c in row if (t := cell_text(c))))
        for i, row in enumerate(top[:header])
    ]
    batches, count = [], 0
    body = (
        r for r in itertools.chain(top[header + 1 :], rest) if any(c not in (None, "") for c in r)
    )
    while True:
        batch = [r for _, r in zip(range(BATCH_ROWS), body, strict=False)]
        if not batch:
            break
        count += len(batch)
        batches.append(
            {
                c: pa.array([cell_text(r[i]) for r in batch], pa.string())
                for i, c in enumerate(columns)
            }
        )
    return SheetTable(sheet, header + 1, columns, batches, count, skipped, others)
