"""Reading contributed files of any supported format, at any size, with DuckDB.

Files are never loaded whole into Python: DuckDB scans them (streaming, spilling to disk past
its memory limit) and the rest of the intake runs as SQL over the ``raw`` view created here.
"""

import contextlib
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets.errors import ContributionUnreadableError

if TYPE_CHECKING:
    import duckdb

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
SUPPORTED = ", ".join([*FORMATS, *(f"{s}.gz" for s in FORMATS if s != ".parquet"), ".zip"])
RAW = "raw"
# DuckDB's default (2 MB) refuses long free-text fields; its read buffer grows with this value.
MAX_LINE_BYTES = 8 * 1024 * 1024
ROW_INDEX = "row_index"


@dataclass(frozen=True)
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
def open_contribution(path: Path, *, memory_limit: str = "1GB") -> Iterator[RawContribution]:
    """Open ``path`` as the view ``raw`` (every column as text) in a fresh DuckDB database.

    Raises :class:`ContributionUnreadableError` for an unknown format, an empty file, or a
    header DuckDB cannot parse as the format the name says; errors further into the file
    surface from :meth:`RawContribution.scan`.
    """
    import duckdb

    file_format, compression = detect_format(path.name)
    with contextlib.ExitStack() as stack:
        if compression == "zip":
            path = stack.enter_context(_unzipped(path))
            file_format, compression = detect_format(path.name)
        if path.stat().st_size == 0:
            raise ContributionUnreadableError(
                f"{path.name}: the file is empty", hint="submit a file with a header and rows"
            )
        # A database file rather than memory: tables larger than the memory limit live on disk.
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlops-duckdb-")))
        connection = stack.enter_context(duckdb.connect(str(workdir / "intake.duckdb")))
        for setting in (
            f"SET memory_limit = '{memory_limit}'",
            f"SET temp_directory = '{workdir / 'spill'}'",
            "SET enable_progress_bar = false",
        ):
            connection.execute(setting).fetchall()
        source = _source_sql(path, file_format, compression)
        try:
            columns = [
                row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
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
        yield RawContribution(connection, names, file_format, compression, path.name)


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
    if file_format in ("csv", "tsv"):
        delimiter = "\t" if file_format == "tsv" else ","
        return (
            f"read_csv({location}, all_varchar = true, header = true, "
            f"delim = {_literal(delimiter)}, quote = '\"', escape = '\"', strict_mode = true, "
            f"null_padding = false, max_line_size = {MAX_LINE_BYTES}{gzip})"
        )
    if file_format in ("json", "jsonl"):
        layout = "array" if file_format == "json" else "newline_delimited"
        return f"read_json({location}, format = '{layout}', maximum_object_size = 16777216{gzip})"
    return f"read_parquet({location})"


@contextlib.contextmanager
def _unzipped(path: Path) -> Iterator[Path]:
    """The single data file inside a zip archive, extracted (streamed) to a temporary folder."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ContributionUnreadableError(
            f"{path.name}: not a valid zip archive", hint="re-create the archive"
        ) from None
    with archive, tempfile.TemporaryDirectory(prefix="mlops-unzip-") as tmp:
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
        target = Path(tmp) / Path(members[0].filename).name  # never the member's directories
        try:
            with archive.open(members[0]) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
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
    return " ".join(lines[:2])[:300]


def _hint_for(exc: Exception, file_format: str) -> str:
    text = str(exc).lower()
    if "unicode" in text or "utf-8" in text or "utf8" in text:
        return "save the file as UTF-8"
    if "maximum line size" in text:
        return f"a line is longer than {MAX_LINE_BYTES // 2**20} MB; split long text fields"
    if "gzip" in text or "compressed" in text:
        return "the compressed file is damaged or truncated; compress it again"
    if file_format in ("csv", "tsv"):
        return "check the delimiter and that every row has as many fields as the header"
    if file_format in ("json", "jsonl"):
        return "JSON must be an array of flat records; JSON Lines one flat record per line"
    return "check the file is a valid Parquet file"
