"""JSON as pandas, polars, R and web tools write it.

An array of records streams through DuckDB at any size. The other layouts pandas writes
(``to_json``'s default ``columns``, ``index``, ``split``, ``table``, ``values``) and an object
wrapping one array of records are one document that must be read whole, so they are read
whole up to ``MAX_DOCUMENT_BYTES``. JSON Lines is read line by line: a line that is not a JSON
object is a malformed record with its true line number, not the end of the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_assets.core.intake.columns import map_columns
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import TaskSchema

MAX_DOCUMENT_BYTES = 256 * 2**20
# JSON Lines: the lines whose keys become the columns.
KEY_SAMPLE_LINES = 1000
SAMPLE_BYTES = 1 << 20
RECORDS = "records"
LAYOUT_HINT = (
    "write records: df.to_json(orient='records') or JSON Lines "
    "(df.to_json(orient='records', lines=True)); or a CSV file"
)


@dataclass
class JsonTable:
    """A JSON document read whole: its values as text, column by column."""

    layout: str  # "columns", "index", "split", "table", "values", "records under key 'data'"
    columns: list[str]
    values: dict[str, list[str | None]] = field(repr=False)
    header: str  # where the column names come from, as the report says it

    @property
    def rows(self) -> int:
        return len(next(iter(self.values.values()), []))


def first_characters(path: Path, count: int = 2) -> str:
    """The first ``count`` characters of ``path`` (UTF-8 text) that are not white space."""
    found = ""
    with path.open("rb") as handle:
        while len(found) < count and (block := handle.read(4096)):
            text = block.decode("utf-8", errors="replace").removeprefix("\ufeff")
            found += "".join(text.split())
    return found[:count]


def is_record_array(path: Path) -> bool:
    """An array whose first element is an object: records DuckDB can stream."""
    return first_characters(path) == "[{"


def read_document(path: Path, task: TaskSchema, name: str) -> JsonTable:
    """The JSON document at ``path`` (UTF-8) as a table, in whichever layout it is written.

    Raises :class:`ContributionUnreadableError` when it is larger than ``MAX_DOCUMENT_BYTES``,
    not valid JSON (naming the line and column), or no table layout pandas writes.
    """
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise ContributionUnreadableError(
            f"{name}: a JSON document of {size // 2**20} MB that is not an array of records; "
            f"documents in other layouts are read whole, up to {MAX_DOCUMENT_BYTES // 2**20} MB",
            hint=LAYOUT_HINT,
        )
    text = path.read_text(encoding="utf-8-sig")
    try:
        document = json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    except json.JSONDecodeError as exc:
        raise ContributionUnreadableError(
            f"{name}: not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}",
            hint="export the file again; JSON must be complete and not cut off",
        ) from None
    return _table(document, task, name)


def _table(document: Any, task: TaskSchema, name: str) -> JsonTable:
    if document in ([], {}) or (isinstance(document, list) and all(r == {} for r in document)):
        raise ContributionUnreadableError(
            f"{name}: the JSON holds no records", hint="export the data again, with its rows"
        )
    if isinstance(document, list):
        if all(isinstance(r, dict) for r in document):
            return _records(document, RECORDS, "record keys")
        if all(isinstance(r, list) for r in document):
            return _positional(document, task, name)
    if isinstance(document, dict):
        keys = set(document)
        data = document.get("data")
        if {"schema", "data"} <= keys and isinstance(data, list):
            return _records(data, "table (pandas orient='table')", "the schema's fields")
        if {"columns", "data"} <= keys <= {"columns", "data", "index"}:
            return _split(document, name)
        arrays = [k for k, v in document.items() if _is_records(v)]
        if len(arrays) == 1:
            key = arrays[0]
            return _records(document[key], f"records under key {key!r}", "record keys")
        if document and all(isinstance(v, dict) for v in document.values()):
            return _nested(document, task)
    raise ContributionUnreadableError(
        f"{name}: JSON, but not a table: none of the layouts pandas writes (records, "
        "columns, index, split, table, values) nor an object holding one array of records",
        hint=LAYOUT_HINT,
    )


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _text(value: Any) -> str | None:
    """A JSON value as the text the intake validates: numbers as written, nested values as
    JSON, null as no value."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def _records(rows: list[dict], layout: str, header: str) -> JsonTable:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    values = {c: [_text(row.get(c)) for row in rows] for c in columns}
    return JsonTable(layout, columns, values, header)


def _positional(rows: list[list], task: TaskSchema, name: str) -> JsonTable:
    widths = {len(r) for r in rows}
    if widths != {len(task.columns)}:
        raise ContributionUnreadableError(
            f"{name}: arrays without column names (pandas orient='values') whose rows have "
            f"{sorted(widths)} values where the task has {len(task.columns)} columns",
            hint=LAYOUT_HINT,
        )
    values = {c: [_text(r[i]) for r in rows] for i, c in enumerate(task.columns)}
    return JsonTable("values (pandas orient='values')", task.columns, values, "absent, positional")


def _split(document: dict, name: str) -> JsonTable:
    columns, data = document["columns"], document["data"]
    if not isinstance(columns, list) or not all(
        isinstance(r, list) and len(r) == len(columns) for r in data
    ):
        raise ContributionUnreadableError(
            f"{name}: pandas' orient='split', but its rows do not have one value per column",
            hint=LAYOUT_HINT,
        )
    names = [str(c) for c in columns]
    values = {c: [_text(r[i]) for r in data] for i, c in enumerate(names)}
    return JsonTable("split (pandas orient='split')", names, values, "its 'columns' list")


def _nested(document: dict[str, dict], task: TaskSchema) -> JsonTable:
    """pandas' ``columns`` (column -> row -> value, its default) or ``index`` (row -> column ->
    value): whichever level names the task's columns; ``columns`` when neither does."""
    outer = list(document)
    inner = list(dict.fromkeys(k for v in document.values() for k in v))
    if len(map_columns(inner, task)) > len(map_columns(outer, task)):
        values = {c: [_text(document[r].get(c)) for r in outer] for c in inner}
        return JsonTable("index (pandas orient='index')", inner, values, "the keys of each row")
    values = {c: [_text(document[c].get(r)) for r in inner] for c in outer}
    return JsonTable("columns (pandas orient='columns')", outer, values, "the top-level keys")


def line_keys(path: Path, name: str) -> list[str]:
    """The keys of the JSON Lines file at ``path`` (UTF-8), in order of first appearance in its
    first ``KEY_SAMPLE_LINES`` objects. Raises when none of them is a JSON object."""
    keys: dict[str, None] = {}
    objects = 0
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    for line in sample.decode("utf-8", errors="replace").removeprefix("\ufeff").splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            keys.update(dict.fromkeys(value))
            objects += 1
            if objects >= KEY_SAMPLE_LINES:
                break
    if not objects:
        raise ContributionUnreadableError(
            f"{name}: no line of the file's first megabyte is a JSON object",
            hint="JSON Lines holds one flat JSON object per line: "
            "df.to_json(orient='records', lines=True)",
        )
    return list(keys)
