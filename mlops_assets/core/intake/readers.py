"""Reading contributed files of any supported format, at any size, with DuckDB.

Files are never loaded whole into Python where they can be streamed: DuckDB scans delimited
text, JSON Lines, arrays of JSON records, Parquet and Arrow IPC (streaming, spilling to disk
past its memory limit), and the rest of the intake runs as SQL over the ``raw`` view created
here. Workbooks and JSON documents in pandas' other layouts are read whole (bounded) into
Arrow and seen through the same view.

Delimited text is read with the dialect :mod:`mlops_assets.core.intake.text_files` sniffed and
never with DuckDB's own sniffer, which may decide that leading lines are a preamble and skip
them. A record DuckDB cannot split into the header's fields, or a line of JSON Lines that is
not a JSON object, is kept with its line number and text in the table ``malformed``
(:mod:`mlops_assets.core.intake.raw_contribution`).
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops_assets.core.common.scratch import scratch
from mlops_assets.core.intake import json_files, spreadsheets
from mlops_assets.core.intake.formats import (
    FORMATS,
    READERS,
    SUPPORTED,
    TEXT_FORMATS,
    detect_format,
    format_by_content,
    reading_of,
)
from mlops_assets.core.intake.limits import IntakeLimits, unzipped
from mlops_assets.core.intake.raw_contribution import (
    MALFORMED,
    MAX_LINE_BYTES,
    REJECT_SCANS,
    REJECTS,
    RawContribution,
    bad_json_lines,
    csv_rejects,
    json_object_sql,
)
from mlops_assets.core.intake.text_files import scan_lines, scan_text
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import TaskSchema

__all__ = [
    "FORMATS",
    "MALFORMED",
    "RAW",
    "ROW_INDEX",
    "SUPPORTED",
    "RawContribution",
    "detect_format",
    "open_contribution",
]

RAW = "raw"
ROW_INDEX = "row_index"
SOURCE = "contributed_source"  # a registered Arrow table or dataset


@contextlib.contextmanager
def open_contribution(
    path: Path,
    task: TaskSchema,
    *,
    memory_limit: str = "1GB",
    limits: IntakeLimits | None = None,
    deadline: float | None = None,
) -> Iterator[RawContribution]:
    """Open ``path`` as the view ``raw`` (every column as text) in a fresh DuckDB database.

    The format comes from the name, or from the content when the content is plainly another
    format (an Excel workbook saved under a ``.csv`` name). Raises
    :class:`ContributionUnreadableError` for an unknown format, an empty file, text in no
    encoding the intake reads, or a file that is not what its format needs (errors further
    into the file surface from :meth:`RawContribution.scan`);
    :class:`ContributionTooLargeError` when it expands past ``limits``.
    """
    import duckdb

    limits = limits or IntakeLimits()
    with contextlib.ExitStack() as stack:
        named = detect_format(path.name, strict=False)
        if named[1] == "zip":
            path = stack.enter_context(unzipped(path, limits))
            named = detect_format(path.name, strict=False)
            if named[1] == "zip":
                raise ContributionUnreadableError(
                    f"{path.name}: a zip archive inside a zip archive",
                    hint="put the data file itself in the archive",
                )
        if path.stat().st_size == 0:
            raise ContributionUnreadableError(
                f"{path.name}: the file is empty", hint="submit a file with a header and rows"
            )
        file_format, compression, note = reading_of(path, named, format_by_content(path))
        # A database file rather than memory: tables larger than the memory limit live on disk.
        workdir = stack.enter_context(scratch("duckdb"))
        connection = stack.enter_context(duckdb.connect(str(workdir / "intake.duckdb")))
        for setting in (
            f"SET memory_limit = '{memory_limit}'",
            f"SET temp_directory = '{workdir / 'spill'}'",
            "SET enable_progress_bar = false",
        ):
            connection.execute(setting).fetchall()
        raw = RawContribution(
            connection, [], file_format, compression, path.name, task=task, source_path=path
        )
        raw.reader = READERS[file_format] + note
        opener = _OPENERS.get(file_format, _open_binary)
        source, columns = opener(stack, raw, path, task, limits, deadline)
        # A file's own "row_index" column must not collide with ours.
        raw.columns = [f"{c}_in_file" if c == ROW_INDEX else c for c in columns]
        casts = ", ".join(
            f"CAST({_quote(c)} AS VARCHAR) AS {_quote(n)}"
            for c, n in zip(columns, raw.columns, strict=True)
        )
        connection.execute(f"CREATE VIEW {RAW} AS SELECT {casts} FROM {source}").fetchall()
        yield raw


def _open_text(stack, raw, path, task, limits, deadline) -> tuple[str, list[str]]:
    scan = stack.enter_context(
        scan_text(
            path,
            task,
            compression=raw.compression,
            preferred_delimiter="\t" if raw.file_format == "tsv" else None,
            limits=limits,
            deadline=deadline,
        )
    )
    assert scan.dialect is not None
    raw.dialect, raw.records_in_file, raw.encoding = scan.dialect, scan.records, scan.encoding
    raw.source_path, raw.irregular = scan.path, scan.irregular
    raw.header, raw.line_offset = scan.dialect.header_position, scan.line_offset
    raw.skipped = [{"position": f"line {n}", "text": text} for n, text in scan.skipped]
    raw.skipped_count, raw.line_endings = scan.skipped_count, scan.line_endings
    raw.find_malformed = csv_rejects
    columns = ", ".join(f"{_literal(name)}: 'VARCHAR'" for name in scan.dialect.names)
    source = (
        f"read_csv({_literal(str(scan.path))}, auto_detect = false, "
        f"header = {scan.dialect.header!s}, delim = {_literal(scan.dialect.delimiter)}, "
        f"quote = '\"', escape = '\"', columns = {{{columns}}}, strict_mode = true, "
        f"null_padding = false, {_KEEP_REJECTS})"
    )
    return source, list(scan.dialect.names)


# Refused records are kept (line and text) instead of failing the file.
_KEEP_REJECTS = (
    f"store_rejects = true, rejects_table = '{REJECTS}', rejects_scan = '{REJECT_SCANS}', "
    f"max_line_size = {MAX_LINE_BYTES}"
)


def _open_json_lines(stack, raw, path, task, limits, deadline) -> tuple[str, list[str]]:
    scan = stack.enter_context(
        scan_lines(path, compression=raw.compression, limits=limits, deadline=deadline)
    )
    raw.records_in_file, raw.encoding, raw.source_path = scan.records, scan.encoding, scan.path
    raw.line_endings = scan.line_endings
    raw.header, raw.find_malformed = "the keys of each line's object", bad_json_lines
    keys = json_files.line_keys(scan.path, path.name)
    # Each line as one text field: no delimiter or quote a JSON object holds unescaped.
    lines = (
        f"read_csv({_literal(str(scan.path))}, auto_detect = false, header = false, "
        f"delim = '\\x01', quote = '', escape = '', columns = {{'line': 'VARCHAR'}}, "
        f"strict_mode = true, {_KEEP_REJECTS})"
    )
    raw.lines_source = lines
    paths = ", ".join(_literal('$."' + k.replace('"', '\\"') + '"') for k in keys)
    values = ", ".join(f"j[{i + 1}] AS {_quote(k)}" for i, k in enumerate(keys))
    source = (
        f"(SELECT {values} FROM (SELECT json_extract_string(line, [{paths}]) AS j FROM {lines} "
        f"WHERE {json_object_sql('line')}))"
    )
    return source, keys


def _open_json(stack, raw, path, task, limits, deadline) -> tuple[str, list[str]]:
    scan = stack.enter_context(
        scan_lines(path, compression=raw.compression, limits=limits, deadline=deadline)
    )
    raw.encoding, raw.source_path = scan.encoding, scan.path
    if json_files.is_record_array(scan.path):
        raw.reader, raw.header = raw.reader + " (records)", "record keys"
        location = _literal(str(scan.path))
        options = "format = 'array', maximum_object_size = 16777216"
        describe = f"DESCRIBE SELECT * FROM read_json({location}, {options})"
        columns = [row[0] for row in raw.scan(describe)]
        types = ", ".join(f"{_literal(c)}: 'VARCHAR'" for c in columns)
        return f"read_json({location}, {options}, columns = {{{types}}})", columns
    table = json_files.read_document(scan.path, task, path.name)
    raw.reader, raw.header = f"{raw.reader} ({table.layout})", table.header
    raw.records_in_file = table.rows
    return _register(raw, {c: table.values[c] for c in table.columns}), table.columns


def _open_workbook(stack, raw, path, task, limits, deadline) -> tuple[str, list[str]]:
    sheet = spreadsheets.read_workbook(path, task, raw.file_format, limits, path.name)
    raw.encoding = "unicode (workbook cells)"
    raw.header, raw.other_sheets = sheet.header, sheet.other_sheets
    raw.records_in_file = sheet.rows
    raw.skipped = [{"position": f"row {n}", "text": text} for n, text in sheet.skipped]
    raw.skipped_count = len(sheet.skipped)
    import pyarrow as pa

    table = pa.Table.from_batches(
        [pa.RecordBatch.from_pydict(b) for b in sheet.batches],
        schema=pa.schema([(c, pa.string()) for c in sheet.columns]),
    )
    raw.connection.register(SOURCE, table)
    return SOURCE, sheet.columns


def _open_binary(stack, raw, path, task, limits, deadline) -> tuple[str, list[str]]:
    """Parquet, or Arrow IPC (Feather): self-describing columns and row counts."""
    raw.encoding, raw.header = "binary (typed columns)", "the file's schema"
    if raw.file_format == "parquet":
        source = f"read_parquet({_literal(str(path))})"
        raw.records_in_file = _parquet_rows(path)
    else:
        dataset = _arrow_dataset(stack, path)
        raw.records_in_file = dataset.count_rows()
        raw.connection.register(SOURCE, dataset)
        source = SOURCE
    return source, [row[0] for row in raw.scan(f"DESCRIBE SELECT * FROM {source}")]


def _arrow_dataset(stack: contextlib.ExitStack, path: Path) -> Any:
    """Arrow's IPC file format (Feather 2) read in place; the stream format and Feather 1,
    which cannot be read in place, copied batch by batch into a file first."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.feather as feather

    try:
        return ds.dataset(path, format="ipc")
    except (pa.ArrowInvalid, OSError):
        pass
    target = stack.enter_context(scratch("arrow")) / "table.arrow"
    try:
        with path.open("rb") as source, pa.ipc.open_stream(source) as reader:
            _copy_batches(reader, target)
    except (pa.ArrowInvalid, OSError):
        try:
            feather.write_feather(feather.read_table(path), target)
        except (pa.ArrowInvalid, OSError):
            raise ContributionUnreadableError(
                f"{path.name}: not a readable Arrow IPC (Feather) file: damaged or truncated",
                hint="write it again (pyarrow.feather.write_feather, polars write_ipc, "
                "pandas to_feather)",
            ) from None
    return ds.dataset(target, format="ipc")


def _copy_batches(reader: Any, target: Path) -> None:
    import pyarrow as pa

    with pa.ipc.new_file(target, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def _register(raw: RawContribution, values: dict[str, list]) -> str:
    import pyarrow as pa

    table = pa.table({c: pa.array(v, pa.string()) for c, v in values.items()})
    raw.connection.register(SOURCE, table)
    return SOURCE


def _parquet_rows(path: Path) -> int | None:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # the DuckDB scan names the problem
        return None


_OPENERS = {
    **dict.fromkeys(TEXT_FORMATS, _open_text),
    "jsonl": _open_json_lines,
    "json": _open_json,
    **dict.fromkeys(spreadsheets.KINDS, _open_workbook),
}


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
