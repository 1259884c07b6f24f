"""The dialect of delimited text, sniffed from a sample of its lines: where its header is
(under a preamble of comments or a title block, or absent), its delimiter, decimal separator
and row names."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass

from mlops_assets.core.intake.columns import map_columns
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import TaskSchema

DELIMITERS = (",", ";", "\t", "|")
QUOTE = '"'
ROW_NAMES = "(row names)"
SNIFF_RECORDS = 200
COMMENT = "#"
MAX_PREAMBLE_LINES = 100

_NUMBER = re.compile(r"\s*[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?\s*")
_DECIMAL_COMMA = re.compile(r"\s*[-+]?\d*,\d+\s*")
_DECIMAL_POINT = re.compile(r"\s*[-+]?\d*\.\d+\s*")


@dataclass(frozen=True)
class Dialect:
    """How a delimited file is written."""

    delimiter: str
    decimal: str = "."
    header: bool = True
    # The header is one field short (R's write.table) or its first field is empty (R's
    # write.csv, pandas with an index): the first column holds row names, not data.
    row_names: bool = False
    names: tuple[str, ...] = ()
    # The header's line in the file (1 unless a preamble comes first).
    header_line: int = 1

    @property
    def header_mode(self) -> str:
        if not self.header:
            return "absent, positional"
        return "present, first column is row names" if self.row_names else "present"

    @property
    def header_position(self) -> str:
        """Where the header is, as a report says it: ``line 4``, ``absent, positional``."""
        if not self.header:
            return "absent, positional"
        where = f"line {self.header_line}"
        return f"{where}, first column is row names" if self.row_names else where

    def describe(self) -> dict[str, str]:
        shown = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", " ": "space"}
        return {
            "delimiter": shown.get(self.delimiter, self.delimiter),
            "decimal": "comma" if self.decimal == "," else "point",
            "header": self.header_mode,
        }


def find_header(lines: list[str], task: TaskSchema) -> int:
    """How many of the file's first ``lines`` (blank ones included) come before its header:
    a block of blank and ``#`` comment lines (instruments write them), and, under it, any
    lines above the first record that names the task's columns (a title block). Nothing else
    is ever skipped: 0 when the first line is the header, or data of a file without one."""
    start = 0
    while (
        start < min(len(lines), MAX_PREAMBLE_LINES)
        and (not lines[start].strip() or lines[start].lstrip().startswith(COMMENT))
        and not names_task_columns([lines[start].lstrip().removeprefix(COMMENT)], task)
    ):
        start += 1
    if start >= len(lines):
        return 0  # nothing but comments: no header to find under them
    below = lines[start : start + MAX_PREAMBLE_LINES]
    found = [_first_naming_record(below, delimiter, task) for delimiter in (*DELIMITERS, " ")]
    return start + min((line for line in found if line is not None), default=0)


def _first_naming_record(lines: list[str], delimiter: str, task: TaskSchema) -> int | None:
    """The line (0-based) where the first record naming the task's columns starts."""
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter, strict=False)
    start = 0
    try:
        for record in reader:
            if names_task_columns(record, task, delimiter):
                return start
            start = reader.line_num
    except csv.Error:
        return None
    return None


def names_task_columns(fields: list[str], task: TaskSchema, delimiter: str = "") -> bool:
    """Whether ``fields`` (one field: a whole line, split by every delimiter) name at least
    half of the task's columns, and two."""
    needed = max(2, -(-len(task.columns) // 2))
    if len(fields) == 1 and not delimiter:
        return any(
            len(map_columns(next(csv.reader([fields[0]], delimiter=d), []), task)) >= needed
            for d in DELIMITERS
        )
    return len(map_columns(fields, task)) >= needed


def complete_lines(text: str, *, whole: bool) -> list[str]:
    """The sample's lines, without a last one the sample may have cut (unless it is the
    whole file); blank lines are left out."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if not whole and lines:
        lines = lines[:-1]
    return [line for line in lines if line.strip()]


def _fields(lines: list[str], delimiter: str) -> list[list[str]]:
    csv.field_size_limit(2**31 - 1)  # long free-text fields and headers are data too
    reader = csv.reader(
        io.StringIO("\n".join(lines[: SNIFF_RECORDS + 1])),
        delimiter=delimiter,
        quotechar=QUOTE,
        doublequote=True,
        strict=False,
    )
    try:
        return [row for row in reader if row]
    except csv.Error:
        return []


def sniff(
    lines: list[str], task: TaskSchema, *, preferred: str | None = None, file_name: str = "file"
) -> Dialect:
    """The dialect of the sampled ``lines`` (non-blank, in file order).

    The delimiter is the candidate under which the body's records most consistently have one
    field count and the header fits it (the same count, or one short: R's row names). The
    decimal separator is a comma when the delimiter is not and the numbers are written so.
    A first line naming no task column but holding a number is data: a file without a
    header, read by position when its records have exactly the task's columns, refused
    otherwise.
    """
    best = _best_delimiter(lines, _candidates(preferred))
    # Spaces (R's write.table default) only when nothing else splits the lines: a space is
    # too common inside values to compete with a real delimiter.
    best = best or _best_delimiter(lines, [" "])
    if best is None:  # one column whatever the delimiter: nothing will map but the header
        records = _fields(lines, ",")
        return Dialect(",", names=column_names(records[0] if records else ["column_1"]))
    _, delimiter, records = best
    first, body = records[0], records[1:]
    decimal = _decimal(body or [first], delimiter)
    if not map_columns(first, task) and _holds_numbers(first, decimal):
        width = Counter(len(r) for r in records).most_common(1)[0][0]
        if width != len(task.columns):
            raise ContributionUnreadableError(
                f"{file_name}: the first line is data, not a header, and the records have "
                f"{width} fields where the task has {len(task.columns)} columns",
                hint=f"add a header line naming the columns, e.g. {','.join(task.columns)}",
            )
        return Dialect(delimiter, decimal, header=False, names=tuple(task.columns))
    names, row_names = list(first), False
    # Nearly every record one field longer than the header, and that field not a trailing
    # delimiter's empty one: R's write.table, which gives row names no header field.
    wide = [r for r in body if len(r) == len(first) + 1]
    if (
        body
        and len(wide) >= 0.9 * len(body)
        and any(r[-1].strip() for r in wide)
        and _row_name_like([r[0] for r in wide])
    ):
        names, row_names = [ROW_NAMES, *names], True
    elif len(names) > 1 and names[0].strip() == "":
        names[0], row_names = ROW_NAMES, True  # R write.csv, pandas' index
    return Dialect(delimiter, decimal, header=True, row_names=row_names, names=column_names(names))


def _best_delimiter(
    lines: list[str], candidates: list[str]
) -> tuple[tuple, str, list[list[str]]] | None:
    """The candidate that splits the most records into the body's most common field count,
    weighted by that count (the header fits with it, or with one field less: R's row names);
    None when no candidate splits the lines at all.

    Weighting by the field count keeps a delimiter that only occurs inside free text from
    looking consistent."""
    best: tuple[tuple, str, list[list[str]]] | None = None
    for rank, delimiter in enumerate(candidates):
        records = _fields(lines, delimiter)
        if not records:
            continue
        counts = [len(r) for r in records]
        if max(counts) == 1:
            continue
        body = Counter(counts[1:])
        # Per sampled line, not per record: quotes that swallow line breaks under a wrong
        # delimiter make fewer, wider records, which must not look consistent.
        lines_parsed = min(len(lines), SNIFF_RECORDS + 1)
        score, width = max(
            (((counts[0] in (n, n - 1)) + body[n]) / lines_parsed * n, n) for n in set(counts)
        )
        key = (score, width, -rank)
        if best is None or key > best[0]:
            best = (key, delimiter, records)
    return best


def _row_name_like(values: list[str]) -> bool:
    """R's row names: distinct, and either the row numbers or names (not measurements)."""
    if len(set(values)) != len(values):
        return False
    if all(v.strip().isdigit() for v in values):
        return True
    return not any(_NUMBER.fullmatch(v) for v in values)


def _candidates(preferred: str | None) -> list[str]:
    return [preferred, *(d for d in DELIMITERS if d != preferred)] if preferred else [*DELIMITERS]


def _decimal(records: list[list[str]], delimiter: str) -> str:
    """A comma when more numbers are written with one than with a point; with a comma
    delimiter they are quoted ("5,1": LibreOffice in a German locale)."""
    values = [v for record in records for v in record]
    commas = sum(1 for v in values if _DECIMAL_COMMA.fullmatch(v))
    points = sum(1 for v in values if _DECIMAL_POINT.fullmatch(v))
    return "," if commas > points else "."


def _holds_numbers(fields: list[str], decimal: str) -> bool:
    """A header names columns; a first line holding a number is a record."""
    return any(_NUMBER.fullmatch(f) and (decimal == "," or "," not in f) for f in fields)


def column_names(raw: list[str]) -> tuple[str, ...]:
    """Column names as the parser gets them: unnamed columns get a name, repeats a suffix."""
    names: list[str] = []
    for i, name in enumerate(raw):
        name = name.strip() or f"column_{i + 1}"
        candidate, n = name, 2
        while candidate in names:
            candidate, n = f"{name}_{n}", n + 1
        names.append(candidate)
    return tuple(names)
