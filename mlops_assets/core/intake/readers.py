"""Reading contributed files of any supported format, at any size, with DuckDB.

Files are never loaded whole into Python: DuckDB scans them (streaming, spilling to disk past
its memory limit) and the rest of the intake runs as SQL over the ``raw`` view created here.

Delimited text is read with the dialect :mod:`mlops_assets.core.intake.text_files` sniffed and never
with DuckDB's own sniffer, which may decide that leading lines are a preamble and skip them.
A record DuckDB cannot split into the header's fields is kept, with its line number and text,
in the table ``malformed``; after a full scan, :meth:`RawContribution.account` checks that
the parsed and the malformed records together are every record the independent count found.
"""

import contextlib
import csv
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets.core.common.names import without_paths
from mlops_assets.core.common.scratch import scratch
from mlops_assets.core.intake.columns import map_columns
from mlops_assets.core.intake.text_files import (
    Dialect,
    IntakeLimits,
    copy_capped,
    record_positions,
    scan_text,
)
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    import duckdb

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "text",
    ".data": "text",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
TEXT_FORMATS = frozenset({"csv", "tsv", "text"})
SUPPORTED = ", ".join([*FORMATS, *(f"{s}.gz" for s in FORMATS if s != ".parquet"), ".zip"])
RAW = "raw"
MALFORMED = "malformed"  # row_index, line_number, original_text, problem
# DuckDB's default (2 MB) refuses long free-text fields; its read buffer grows with this value.
MAX_LINE_BYTES = 8 * 1024 * 1024
# What of a malformed record's text is kept in the quarantine.
MAX_KEPT_TEXT = 10_000
ROW_INDEX = "row_index"
_REJECTS, _REJECT_SCANS = "csv_rejects", "csv_reject_scans"


@dataclass
class RawContribution:
    """A contributed file seen by DuckDB as the view ``raw``: its columns as text, in file
    order. Every query over ``raw`` re-reads the file (DuckDB's CSV reader is parallel and
    faster than copying the text into a table); run those through :meth:`scan` so a parse
    error anywhere in the file becomes a :class:`ContributionUnreadableError`."""

    connection: "duckdb.DuckDBPyConnection"
    columns: list[str]
    file_format: str
    compression: str | None
    file_name: str
    dialect: Dialect | None = None
    # Records the independent count found (text files), or the Parquet footer's row count.
    records_in_file: int | None = None
    encoding: str = ""
    source_path: Path | None = None
    irregular: bool = False
    malformed_rows: int = 0
    task: TaskSchema | None = None

    def scan(self, sql: str) -> list[tuple]:
        import duckdb

        try:
            return self.connection.execute(sql).fetchall()
        # What DuckDB raises for malformed input; mistakes in our own SQL are not caught.
        except (
            duckdb.InvalidInputException,
            duckdb.IOException,
            duckdb.ConversionException,
        ) as exc:
            raise _unreadable(self.file_name, self.file_format, self.compression, exc) from None

    @property
    def header_mode(self) -> str:
        return self.dialect.header_mode if self.dialect else "self-describing"

    def account(self, parsed: int) -> None:
        """After a full scan of ``raw`` that parsed ``parsed`` records: keep the records the
        parser refused in ``malformed``, and check nothing is missing.

        Raises :class:`ContributionUnreadableError` when most records are malformed (naming
        the first bad lines and what is wrong with them), or when the parsed and malformed
        records do not add up to the independent count (the quoting is ambiguous).
        """
        db = self.connection
        header = 1 if self.dialect is not None and self.dialect.header else 0
        lines = self._latest_rejects()
        db.execute(f"DROP TABLE IF EXISTS {MALFORMED}").fetchall()
        db.execute(
            f"CREATE TABLE {MALFORMED} (row_index BIGINT, line_number BIGINT, "
            "original_text VARCHAR, problem VARCHAR)"
        ).fetchall()
        if lines:
            if self.irregular:
                assert self.source_path is not None and self.dialect is not None
                where = record_positions(
                    self.source_path, self.dialect.delimiter, [line for line, *_ in lines]
                )
                positions = [where[line] - header for line, *_ in lines]
            else:
                positions = [line - 1 - header for line, *_ in lines]
            db.executemany(
                f"INSERT INTO {MALFORMED} VALUES (?, ?, ?, ?)",
                [
                    (position, line, _kept_text(text), _problem(kind, message, self.columns))
                    for position, (line, text, kind, message) in zip(positions, lines, strict=True)
                ],
            )
        self.malformed_rows = len(lines)
        total = parsed + len(lines)
        if self.records_in_file is not None and total != self.records_in_file:
            raise ContributionUnreadableError(
                f"{self.file_name}: the parser read {total} records but the file holds "
                f"{self.records_in_file}: its quoting is ambiguous",
                hint="check that every quoted field is closed and that a quote inside one is "
                'doubled ("")',
            )
        if lines and len(lines) * 2 > total:
            raise ContributionUnreadableError(
                f"{self.file_name}: {len(lines)} of {total} records cannot be split into the "
                f"header's {len(self.columns)} fields: " + self.first_malformed(),
                hint=self._malformed_hint(lines),
            )

    def first_malformed(self, limit: int = 3) -> str:
        rows = self.connection.execute(
            f"SELECT line_number, problem FROM {MALFORMED} ORDER BY line_number LIMIT {limit}"
        ).fetchall()
        more = self.malformed_rows - len(rows)
        text = "; ".join(f"line {line}: {problem}" for line, problem in rows)
        return text + (f"; and {more} more" if more > 0 else "")

    def _malformed_hint(self, lines: list[tuple[int, str, str, str]]) -> str:
        kinds = {kind for _, _, kind, _ in lines}
        if "LINE SIZE OVER MAXIMUM" in kinds:
            return f"a line is longer than {MAX_LINE_BYTES // 2**20} MB; split long text fields"
        if kinds == {"UNQUOTED VALUE"}:
            return 'close every quoted field, and double a quote inside one ("")'
        second_header = next((line for line, text, *_ in lines if self._names_columns(text)), None)
        if second_header is not None:
            return (
                f"line {second_header} is a second header with other columns: the file looks "
                "like two exports joined together; submit each as a file of its own"
            )
        return (
            f"every line needs the header's {len(self.columns)} fields: check the delimiter "
            "and the quoting of fields that contain it"
        )

    def _names_columns(self, text: str) -> bool:
        """Whether a record's text reads as a header naming the task's columns."""
        if self.task is None or self.dialect is None:
            return False
        fields = next(csv.reader([text.strip()], delimiter=self.dialect.delimiter), [])
        return len(map_columns(fields, self.task)) * 2 >= len(self.task.columns)

    def _latest_rejects(self) -> list[tuple[int, str, str, str]]:
        """(line, text, error type, message) of each record the latest scan refused."""
        if self.dialect is None:
            return []
        db = self.connection
        tables = {row[0] for row in db.execute("SHOW TABLES").fetchall()}
        if _REJECTS not in tables:
            return []
        return db.execute(f"""
            SELECT line, min(csv_line), min(error_type), min(error_message)
            FROM {_REJECTS} WHERE scan_id = (SELECT max(scan_id) FROM {_REJECTS})
            GROUP BY line ORDER BY line
        """).fetchall()


def detect_format(name: str) -> tuple[str, str | None]:
    """(format, compression) from a file name, e.g. ``data.csv.gz`` -> ``("csv", "gzip")``."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    compression = None
    if suffixes and suffixes[-1] in (".gz", ".zip"):
        compression = "gzip" if suffixes.pop() == ".gz" else "zip"
    if compression == "zip" and not suffixes:
        return "zip", "zip"  # the member's own name tells its format
    if not suffixes or suffixes[-1] not in FORMATS:
        raise ContributionUnreadableError(
            f"{name}: unknown format", hint=f"submit one of: {SUPPORTED}"
        )
    return FORMATS[suffixes[-1]], compression


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

    Raises :class:`ContributionUnreadableError` for an unknown format, an empty file, text
    that is not UTF-8, or a header DuckDB cannot parse as the format the name says (errors
    further into the file surface from :meth:`RawContribution.scan`);
    :class:`ContributionTooLargeError` when it expands past ``limits``.
    """
    import duckdb

    file_format, compression = detect_format(path.name)
    limits = limits or IntakeLimits()
    with contextlib.ExitStack() as stack:
        if compression == "zip":
            path = stack.enter_context(_unzipped(path, limits))
            file_format, compression = detect_format(path.name)
            if compression == "zip":
                raise ContributionUnreadableError(
                    f"{path.name}: a zip archive inside a zip archive",
                    hint="put the data file itself in the archive",
                )
        if path.stat().st_size == 0:
            raise ContributionUnreadableError(
                f"{path.name}: the file is empty", hint="submit a file with a header and rows"
            )
        scan = None
        if file_format in TEXT_FORMATS:
            scan = stack.enter_context(
                scan_text(
                    path,
                    task,
                    compression=compression,
                    preferred_delimiter="\t" if file_format == "tsv" else None,
                    limits=limits,
                    deadline=deadline,
                )
            )
        # A database file rather than memory: tables larger than the memory limit live on disk.
        workdir = stack.enter_context(scratch("duckdb"))
        connection = stack.enter_context(duckdb.connect(str(workdir / "intake.duckdb")))
        for setting in (
            f"SET memory_limit = '{memory_limit}'",
            f"SET temp_directory = '{workdir / 'spill'}'",
            "SET enable_progress_bar = false",
        ):
            connection.execute(setting).fetchall()
        if scan is not None:
            source = _text_source_sql(scan.path, scan.dialect)
            columns = list(scan.dialect.names)
        else:
            source = _source_sql(path, file_format, compression)
            try:
                columns = [
                    row[0]
                    for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
                ]
            except duckdb.Error as exc:
                raise _unreadable(path.name, file_format, compression, exc) from None
        # A file's own "row_index" column must not collide with ours.
        names = [f"{c}_in_file" if c == ROW_INDEX else c for c in columns]
        casts = ", ".join(
            f"CAST({_quote(c)} AS VARCHAR) AS {_quote(n)}"
            for c, n in zip(columns, names, strict=True)
        )
        connection.execute(f"CREATE VIEW {RAW} AS SELECT {casts} FROM {source}").fetchall()
        yield RawContribution(
            connection,
            names,
            file_format,
            compression,
            path.name,
            dialect=scan.dialect if scan else None,
            records_in_file=scan.records if scan else _parquet_rows(path, file_format),
            encoding=scan.encoding if scan else "",
            source_path=scan.path if scan else path,
            irregular=scan.irregular if scan else False,
            task=task,
        )


def _text_source_sql(path: Path, dialect: Dialect) -> str:
    """DuckDB's CSV reader with the sniffed dialect, no sniffing of its own, every column text,
    and refused records kept (with their line and text) instead of failing the file."""
    columns = ", ".join(f"{_literal(name)}: 'VARCHAR'" for name in dialect.names)
    return (
        f"read_csv({_literal(str(path))}, auto_detect = false, header = {dialect.header!s}, "
        f"delim = {_literal(dialect.delimiter)}, quote = '\"', escape = '\"', "
        f"columns = {{{columns}}}, strict_mode = true, null_padding = false, "
        f"store_rejects = true, rejects_table = '{_REJECTS}', "
        f"rejects_scan = '{_REJECT_SCANS}', max_line_size = {MAX_LINE_BYTES})"
    )


def _parquet_rows(path: Path, file_format: str) -> int | None:
    if file_format != "parquet":
        return None
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # the DuckDB scan names the problem
        return None


def _kept_text(text: str) -> str:
    text = text.lstrip("\r\n")
    if len(text) > MAX_KEPT_TEXT:
        return text[:MAX_KEPT_TEXT] + f"… [{len(text) - MAX_KEPT_TEXT} more characters]"
    return text


_FOUND = re.compile(r"Found:\s*(\d+)")


def _problem(kind: str, message: str, columns: list[str]) -> str:
    """What is wrong with a refused record, in words."""
    found = _FOUND.search(message or "")
    if kind in ("TOO MANY COLUMNS", "MISSING COLUMNS") and found:
        return f"{found.group(1)} fields where the header has {len(columns)}"
    if kind == "UNQUOTED VALUE":
        return "a quoted field is not closed, or text follows its closing quote"
    if kind == "LINE SIZE OVER MAXIMUM":
        return f"longer than {MAX_LINE_BYTES // 2**20} MB"
    return kind.lower()


def _unreadable(
    file_name: str, file_format: str, compression: str | None, exc: Exception
) -> ContributionUnreadableError:
    return ContributionUnreadableError(
        f"{file_name}: cannot be read as {file_format}"
        f"{' (' + compression + ')' if compression else ''}: {_first_line(exc)}",
        hint=_hint_for(exc, file_format),
    )


def _source_sql(path: Path, file_format: str, compression: str | None) -> str:
    location = _literal(str(path))
    gzip = ", compression = 'gzip'" if compression == "gzip" else ""
    if file_format in ("json", "jsonl"):
        layout = "array" if file_format == "json" else "newline_delimited"
        return f"read_json({location}, format = '{layout}', maximum_object_size = 16777216{gzip})"
    return f"read_parquet({location})"


@contextlib.contextmanager
def _unzipped(path: Path, limits: IntakeLimits) -> Iterator[Path]:
    """The single data file inside a zip archive, extracted (streamed, size-capped) to a
    scratch folder that is removed however the intake ends."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ContributionUnreadableError(
            f"{path.name}: not a valid zip archive", hint="re-create the archive"
        ) from None
    with archive, scratch("unzip") as folder:
        members = [
            m
            for m in archive.infolist()
            if not m.is_dir() and not Path(m.filename).name.startswith((".", "__MACOSX"))
        ]
        if len(members) != 1:
            raise ContributionUnreadableError(
                f"{path.name}: a zip must hold exactly one data file, found {len(members)}",
                hint="submit one file per archive",
            )
        member = members[0]
        declared = member.file_size / max(1, member.compress_size)
        if declared > limits.max_ratio or member.file_size > limits.max_bytes:
            raise limits.too_large(
                path.name, f"its member says it expands to {member.file_size} bytes"
            )
        # The member's header can lie: the bytes are counted as they come out as well.
        limit = min(limits.max_bytes, int(max(1, member.compress_size) * limits.max_ratio))
        copied = 0

        def budget(size: int) -> None:
            nonlocal copied
            copied += size
            if copied > limit:
                raise limits.too_large(path.name, f"more than {limit} bytes when decompressed")

        target = folder / Path(member.filename).name  # never the member's directories
        try:
            with archive.open(member) as source:
                copy_capped(source, target, budget)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ContributionUnreadableError(
                f"{path.name}: the archive is damaged ({exc})", hint="re-create the archive"
            ) from None
        yield target


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return without_paths(" ".join(lines[:2]))[:300]


def _hint_for(exc: Exception, file_format: str) -> str:
    text = str(exc).lower()
    if "maximum line size" in text:
        return f"a line is longer than {MAX_LINE_BYTES // 2**20} MB; split long text fields"
    if "gzip" in text or "compressed" in text:
        return "the compressed file is damaged or truncated; compress it again"
    if file_format in ("json", "jsonl"):
        return "JSON must be an array of flat records; JSON Lines one flat record per line"
    if file_format in TEXT_FORMATS:
        return "check that the file is delimited text: a header line, then one record per line"
    return "check the file is a valid Parquet file"
