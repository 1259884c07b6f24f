"""A contributed file as DuckDB sees it (the view ``raw``), what was learnt reading it, and the
accounting of its records: every record the parser refused is kept, with its true line number
and text, in the table ``malformed``, and the parsed and malformed records together must be
every record the independent count found."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets.core.common.names import safe_text
from mlops_assets.core.intake import pii
from mlops_assets.core.intake.columns import map_columns
from mlops_assets.core.intake.dialect import Dialect
from mlops_assets.core.intake.record_count import record_positions
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    import duckdb

    from mlops_assets.core.intake.report import ContributionReport

MALFORMED = "malformed"  # row_index, line_number, original_text, problem
REJECTS, REJECT_SCANS = "csv_rejects", "csv_reject_scans"
# DuckDB's default (2 MB) refuses long free-text fields; its read buffer grows with this value.
MAX_LINE_BYTES = 8 * 1024 * 1024
# What of a malformed record's text is kept in the quarantine.
MAX_KEPT_TEXT = 10_000
# What of a skipped line's text a report shows.
SHOWN_TEXT = 200


@dataclass(frozen=True)
class Malformed:
    """A record the parser could not read: its place among the file's records, its line in
    the file, its text, what is wrong with it in words, and a kind for the hint."""

    position: int
    line: int
    text: str
    problem: str
    kind: str


@dataclass
class RawContribution:
    """A contributed file seen by DuckDB as the view ``raw``: its columns as text, in file
    order, and how it was read (reader, encoding, header, skipped lines). Every query over
    ``raw`` re-reads the file; run those through :meth:`scan` so a parse error anywhere in the
    file becomes a :class:`ContributionUnreadableError`."""

    connection: duckdb.DuckDBPyConnection
    columns: list[str]
    file_format: str
    compression: str | None
    file_name: str
    dialect: Dialect | None = None
    # Records the independent count found (text files), or the file's own row count.
    records_in_file: int | None = None
    encoding: str = ""
    source_path: Path | None = None
    irregular: bool = False
    malformed_rows: int = 0
    task: TaskSchema | None = None
    reader: str = ""
    header: str = ""  # where the column names were found, in words
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    other_sheets: list[str] = field(default_factory=list)
    line_endings: str = ""
    # Lines of the file before line 1 of what the parser reads (a preamble).
    line_offset: int = 0
    lines_source: str = ""  # JSON Lines: each line as text, in SQL
    # The records the latest full scan refused, given how many it parsed.
    find_malformed: Callable[[RawContribution, int], list[Malformed]] | None = None

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
            raise unreadable(self.file_name, self.file_format, exc) from None

    @property
    def header_mode(self) -> str:
        return self.header

    def describe_reading(self, report: ContributionReport) -> None:
        """Say in ``report`` how the file was read: format, reader, encoding, header, dialect,
        the lines skipped above the header (values that look like personal data masked) and
        the other sheets of a workbook."""
        report.file_format = self.file_format + (f"+{self.compression}" if self.compression else "")
        report.reader, report.encoding = self.reader, self.encoding
        report.header, report.records_in_file = self.header, self.records_in_file
        if self.dialect is not None:
            report.dialect = {**self.dialect.describe(), "line_endings": self.line_endings}
        masked = pii.masked_sql("?", " ")
        report.skipped_lines = [
            {
                "position": line["position"],
                "text": safe_text(
                    self.connection.execute(f"SELECT {masked}", [line["text"]]).fetchall()[0][0],
                    SHOWN_TEXT,
                ),
            }
            for line in self.skipped
        ]
        if self.skipped_count > len(self.skipped):
            more = self.skipped_count - len(self.skipped)
            report.skipped_lines.append({"position": "…", "text": f"and {more} more lines"})
        report.other_sheets = [safe_text(name) for name in self.other_sheets]

    def account(self, parsed: int) -> None:
        """After a full scan of ``raw`` that parsed ``parsed`` records: keep the records the
        parser refused in ``malformed``, and check nothing is missing.

        Raises :class:`ContributionUnreadableError` when most records are malformed (naming
        the first bad lines and what is wrong with them), or when the parsed and malformed
        records do not add up to the independent count (the quoting is ambiguous).
        """
        db = self.connection
        bad = self.find_malformed(self, parsed) if self.find_malformed else []
        db.execute(f"DROP TABLE IF EXISTS {MALFORMED}").fetchall()
        db.execute(
            f"CREATE TABLE {MALFORMED} (row_index BIGINT, line_number BIGINT, "
            "original_text VARCHAR, problem VARCHAR)"
        ).fetchall()
        if bad:
            db.executemany(
                f"INSERT INTO {MALFORMED} VALUES (?, ?, ?, ?)",
                [(m.position, m.line, _kept_text(m.text), m.problem) for m in bad],
            )
        self.malformed_rows = len(bad)
        total = parsed + len(bad)
        if self.records_in_file is None:  # an array of JSON records: all or nothing is read
            self.records_in_file = total
        if self.records_in_file is not None and total != self.records_in_file:
            raise ContributionUnreadableError(
                f"{self.file_name}: the parser read {total} records but the file holds "
                f"{self.records_in_file}: its quoting is ambiguous",
                hint="check that every quoted field is closed and that a quote inside one is "
                'doubled ("")',
            )
        if bad and len(bad) * 2 > total:
            what = (
                "lines are not JSON objects"
                if self.file_format == "jsonl"
                else f"records cannot be split into the header's {len(self.columns)} fields"
            )
            raise ContributionUnreadableError(
                f"{self.file_name}: {len(bad)} of {total} {what}: " + self.first_malformed(),
                hint=self._malformed_hint(bad),
            )

    def first_malformed(self, limit: int = 3) -> str:
        rows = self.connection.execute(
            f"SELECT line_number, problem FROM {MALFORMED} ORDER BY line_number LIMIT {limit}"
        ).fetchall()
        more = self.malformed_rows - len(rows)
        text = "; ".join(f"line {line}: {problem}" for line, problem in rows)
        return text + (f"; and {more} more" if more > 0 else "")

    def _malformed_hint(self, bad: list[Malformed]) -> str:
        kinds = {m.kind for m in bad}
        if "LINE SIZE OVER MAXIMUM" in kinds:
            return f"a line is longer than {MAX_LINE_BYTES // 2**20} MB; split long text fields"
        if self.file_format == "jsonl":
            return "write one complete JSON object per line: df.to_json(orient='records', "
            "lines=True)"
        if kinds == {"UNQUOTED VALUE"}:
            return 'close every quoted field, and double a quote inside one ("")'
        second_header = next((m.line for m in bad if self._names_columns(m.text)), None)
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

    def latest_rejects(self) -> list[tuple[int, str, str, str]]:
        """(line, text, error type, message) of each record the latest scan refused, the line
        as the parser counts it."""
        db = self.connection
        tables = {row[0] for row in db.execute("SHOW TABLES").fetchall()}
        if REJECTS not in tables:
            return []
        return db.execute(f"""
            SELECT line, min(csv_line), min(error_type), min(error_message)
            FROM {REJECTS} WHERE scan_id = (SELECT max(scan_id) FROM {REJECTS})
            GROUP BY line ORDER BY line
        """).fetchall()


def csv_rejects(raw: RawContribution, parsed: int) -> list[Malformed]:
    """The records of delimited text DuckDB refused, placed among the data records."""
    lines = raw.latest_rejects()
    if not lines:
        return []
    assert raw.dialect is not None
    header = 1 if raw.dialect.header else 0
    if raw.irregular:
        assert raw.source_path is not None
        where = record_positions(
            raw.source_path, raw.dialect.delimiter, [line for line, *_ in lines]
        )
        positions = [where[line] - header for line, *_ in lines]
    else:
        positions = [line - 1 - header for line, *_ in lines]
    return [
        Malformed(position, line + raw.line_offset, text, _problem(kind, message, raw), kind)
        for position, (line, text, kind, message) in zip(positions, lines, strict=True)
    ]


def bad_json_lines(raw: RawContribution, parsed: int) -> list[Malformed]:
    """The lines of JSON Lines that are not a JSON object, with their line numbers: DuckDB
    finds their texts (one parallel scan, only when some are missing), and one pass over the
    lines places them."""
    if raw.records_in_file is None or parsed >= raw.records_in_file:
        return []
    texts = {
        text
        for (text,) in raw.scan(
            f"SELECT line FROM {raw.lines_source} "
            f"WHERE line IS NOT NULL AND NOT {json_object_sql('line')}"
        )
    }
    texts |= {text.rstrip("\r\n") for _, text, *_ in raw.latest_rejects()}
    wanted = raw.records_in_file - parsed
    found: list[Malformed] = []
    assert raw.source_path is not None
    with raw.source_path.open(encoding="utf-8-sig", newline="") as handle:
        position = -1
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\n").removesuffix("\r")
            if not text:
                continue
            position += 1
            if text in texts:
                found.append(Malformed(position, number, text, _json_problem(text), "json"))
                if len(found) >= wanted:
                    break
    return found


def json_object_sql(line: str) -> str:
    """SQL: the text ``line`` is one JSON object."""
    return f"CASE WHEN json_valid({line}) THEN json_type({line}) = 'OBJECT' ELSE false END"


def _json_problem(text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"not valid JSON ({exc.args[0].split(':')[0]})"
    return f"a JSON {type(value).__name__.replace('dict', 'object')}, not an object"


def _kept_text(text: str) -> str:
    text = text.lstrip("\r\n")
    if len(text) > MAX_KEPT_TEXT:
        return text[:MAX_KEPT_TEXT] + f"… [{len(text) - MAX_KEPT_TEXT} more characters]"
    return text


_FOUND = re.compile(r"Found:\s*(\d+)")


def _problem(kind: str, message: str, raw: RawContribution) -> str:
    """What is wrong with a refused record, in words."""
    found = _FOUND.search(message or "")
    if kind in ("TOO MANY COLUMNS", "MISSING COLUMNS") and found:
        return f"{found.group(1)} fields where the header has {len(raw.columns)}"
    if kind == "UNQUOTED VALUE":
        return "a quoted field is not closed, or text follows its closing quote"
    if kind == "LINE SIZE OVER MAXIMUM":
        return f"longer than {MAX_LINE_BYTES // 2**20} MB"
    if kind == "INVALID UNICODE":
        return "not valid text"
    return "cannot be read as a record"


# What the reader of each format says a file must be, when it cannot read one.
_NEEDS = {
    "json": "a JSON array of flat records, or one of the layouts pandas writes",
    "jsonl": "one flat JSON object per line",
    "parquet": "a complete Parquet file",
    "arrow": "a complete Arrow IPC (Feather) file",
}


def unreadable(file_name: str, file_format: str, exc: Exception) -> ContributionUnreadableError:
    """The contributor's words for a file the reader gave up on: never the library's message,
    which names its own options and queries."""
    text = str(exc).lower()
    if "maximum line size" in text or "maximum_object_size" in text:
        problem, hint = "a line or object is too long", "split long text fields"
    elif "gzip" in text or "compressed" in text:
        problem, hint = "the compressed file is damaged or truncated", "compress it again"
    elif "malformed json" in text or "json" in file_format:
        problem, hint = "it is not valid JSON (damaged or cut off)", "export the file again"
    else:
        problem, hint = "it is damaged or not what its name says", "export the file again"
    needs = _NEEDS.get(file_format, "delimited text: a header line, then one record per line")
    return ContributionUnreadableError(
        f"{file_name}: cannot be read: {problem}", hint=f"{hint}; it must be {needs}"
    )


_ADVICE = re.compile(r"\s*(LINE \d+:|HINT:|Try |Candidate|Did you mean).*", re.DOTALL)


def without_library_advice(text: str) -> str:
    """A library's error message without the query it ran or the options it suggests, which
    are ours to act on, not the contributor's: its first sentence, on one line."""
    return " ".join(_ADVICE.sub("", text).split())
