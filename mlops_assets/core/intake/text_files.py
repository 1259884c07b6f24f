"""Delimited text as real tools write it: the dialect, and an independent count of its records.

One streaming pass over the bytes (decompressed on the fly) checks the encoding, sniffs the
dialect from the first megabyte (header and body together: delimiter, decimal comma, header
or none, R-style row names) and counts the records with its own quote-aware scan, so the
parser's count can be held against it: a record the parser skipped or merged is never lost
silently. Compressed or UTF-16 input is written out as plain UTF-8 on the way, for the parser.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mlops_assets.core.common.scratch import scratch
from mlops_assets.core.intake.columns import map_columns
from mlops_assets.errors import (
    ContributionTooLargeError,
    ContributionUnreadableError,
    IntakeTimeoutError,
)
from mlops_assets.task import TaskSchema

DELIMITERS = (",", ";", "\t", "|")
QUOTE = '"'
# Spellings of "no value" that real tools write (R, pandas, Excel, the UCI repository), after
# trimming and lower-casing.
# A lone "." is SAS's missing value, and the raw Palmer penguins data's unknown sex.
MISSING_TOKENS = ("", "na", "n/a", "nan", "null", "none", "?", "#n/a", ".")
ROW_NAMES = "(row names)"
SAMPLE_BYTES = 1 << 20
CHUNK_BYTES = 1 << 24
SNIFF_RECORDS = 200

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

    @property
    def header_mode(self) -> str:
        if not self.header:
            return "absent, positional"
        return "present, first column is row names" if self.row_names else "present"

    def describe(self) -> dict[str, str]:
        shown = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", " ": "space"}
        return {
            "delimiter": shown.get(self.delimiter, self.delimiter),
            "decimal": "comma" if self.decimal == "," else "point",
            "header": self.header_mode,
        }


@dataclass(frozen=True)
class TextScan:
    """What the streaming pass found, before any parser looked at the file."""

    path: Path  # plain UTF-8 text for the parser: the file itself or a decompressed copy
    dialect: Dialect
    records: int  # data records: every non-empty record after the header
    encoding: str
    bytes_read: int
    # Blank lines or records spanning several lines: the parser's line numbers then differ
    # from record positions, and a second pass maps them (only when it reports bad lines).
    irregular: bool = False
    sample_lines: list[str] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class IntakeLimits:
    """What one contribution may cost: its size decompressed, absolute and as a multiple of
    its compressed size (a small archive that expands a thousandfold is a bomb, not data),
    and the intake's time."""

    max_bytes: int = 20 * 10**9
    max_ratio: float = 250.0
    timeout_seconds: float = 3600.0

    def too_large(self, name: str, detail: str) -> ContributionTooLargeError:
        return ContributionTooLargeError(
            f"{name}: {detail}; it is refused unread",
            hint="submit the data uncompressed or split into smaller files "
            "(limits: MLOPS_MAX_DECOMPRESSED_BYTES, MLOPS_MAX_COMPRESSION_RATIO)",
        )


# Decompressed bytes after which the compression ratio is checked (headers skew it before).
RATIO_CHECK_AFTER = 64 * 2**20


class _Budget:
    """Counts decompressed bytes as they stream, and stops at the limits or the deadline."""

    def __init__(
        self,
        limits: IntakeLimits,
        name: str,
        *,
        compressed_position: Callable[[], int] | None,
        deadline: float | None,
    ) -> None:
        self.limits, self.name = limits, name
        self.compressed_position, self.deadline = compressed_position, deadline
        self.total = 0

    def add(self, size: int) -> None:
        self.total += size
        if self.total > self.limits.max_bytes:
            raise self.limits.too_large(
                self.name, f"more than {self.limits.max_bytes} bytes when decompressed"
            )
        if self.compressed_position is not None and self.total > RATIO_CHECK_AFTER:
            ratio = self.total / max(1, self.compressed_position())
            if ratio > self.limits.max_ratio:
                raise self.limits.too_large(
                    self.name,
                    f"expands {ratio:.0f} times (more than {self.limits.max_ratio:.0f})",
                )
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise IntakeTimeoutError(
                f"{self.name}: the intake took longer than {self.limits.timeout_seconds:.0f} s",
                hint="split the file, or raise MLOPS_INTAKE_TIMEOUT",
            )


@contextlib.contextmanager
def scan_text(
    path: Path,
    task: TaskSchema,
    *,
    compression: str | None,
    preferred_delimiter: str | None = None,
    limits: IntakeLimits | None = None,
    deadline: float | None = None,
) -> Iterator[TextScan]:
    """Stream ``path`` once: check it is text, sniff its dialect, count its records.

    Raises :class:`ContributionUnreadableError` for bytes that are not UTF-8 (naming the byte
    offset and line), an empty file, or a first line that is data of the wrong shape for
    the task (a hint says to add a header); :class:`ContributionTooLargeError` past
    ``limits``, :class:`IntakeTimeoutError` past ``deadline`` (``time.monotonic()``).
    """
    limits = limits or IntakeLimits()
    with contextlib.ExitStack() as stack:
        file = stack.enter_context(path.open("rb"))
        raw = stack.enter_context(_open_stream(file, compression, path.name))
        head = raw.read(4)
        utf16 = head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        chunks = _utf8_chunks(raw, head, utf16=utf16, name=path.name)
        budget = _Budget(
            limits,
            path.name,
            compressed_position=file.tell if compression else None,
            deadline=deadline,
        )
        sample = b""
        for chunk in chunks:
            budget.add(len(chunk))
            sample += chunk
            if len(sample) >= SAMPLE_BYTES:
                break
        if not sample.strip():
            raise ContributionUnreadableError(
                f"{path.name}: the file is empty", hint="submit a file with a header and rows"
            )
        bom = sample.startswith(codecs.BOM_UTF8)
        # At least the header and a record whole, however long the header is.
        cut = max(SAMPLE_BYTES, _after_lines(sample, 2))
        text_sample = sample[:cut].decode("utf-8", errors="replace")
        whole = len(sample) <= cut
        lines = _complete_lines(text_sample.removeprefix("\ufeff"), whole=whole)
        dialect = sniff(lines, task, preferred=preferred_delimiter, file_name=path.name)
        # DuckDB loses every record after a header holding a line break when lines end in
        # CRLF; such a header is written out on one line (the records stay as they are).
        header_end = _multiline_header_end(sample) if dialect.header else 0
        # Anything the parser cannot read in place is written out as plain UTF-8.
        target, sink = path, None
        if compression is not None or utf16 or header_end:
            folder = stack.enter_context(scratch("text"))
            target = folder / path.name.removesuffix(".gz")
            sink = stack.enter_context(target.open("wb"))
        counter = _RecordCounter(dialect.delimiter, skip_bom=bom)
        for chunk in _prepend(sample, chunks):
            if chunk is not sample:
                budget.add(len(chunk))
            counter.feed(chunk)
            if sink is not None:
                if header_end and chunk is sample:
                    chunk = _one_line(sample[:header_end]) + sample[header_end:]
                sink.write(chunk)
        if sink is not None:
            sink.close()
        records = counter.finish()
        if counter.needs_exact_count:
            records = exact_record_count(target, dialect.delimiter)
        data_records = max(0, records - (1 if dialect.header else 0))
        encoding = "utf-16 (converted)" if utf16 else "utf-8 with BOM" if bom else "utf-8"
        yield TextScan(
            path=target,
            dialect=dialect,
            records=data_records,
            encoding=encoding,
            bytes_read=budget.total,
            irregular=counter.irregular,
            sample_lines=lines[:SNIFF_RECORDS],
        )


def _after_lines(data: bytes, lines: int) -> int:
    """The offset just after the ``lines``-th line break of ``data`` (its length if fewer)."""
    position = -1
    for _ in range(lines):
        position = data.find(b"\n", position + 1)
        if position == -1:
            return len(data)
    return position + 1


def _multiline_header_end(sample: bytes) -> int:
    """Where the first record ends (after its line break) when it spans several lines, else
    0: the first line break outside quotes, if it is not the first line break."""
    start = quotes = breaks = 0
    while (position := sample.find(b"\n", start)) != -1:
        quotes += sample.count(b'"', start, position)
        breaks += 1
        if quotes % 2 == 0:
            return position + 1 if breaks > 1 else 0
        start = position + 1
    return 0


def _one_line(header: bytes) -> bytes:
    terminator = b"\r\n" if header.endswith(b"\r\n") else b"\n"
    inside = header[: -len(terminator)]
    return inside.replace(b"\r\n", b" ").replace(b"\n", b" ") + terminator


@contextlib.contextmanager
def _open_stream(file: BinaryIO, compression: str | None, name: str) -> Iterator[BinaryIO]:
    if compression == "gzip":
        with gzip.GzipFile(fileobj=file, mode="rb") as stream:
            yield _GzipErrors(stream, name)  # type: ignore[misc]
        return
    yield file


class _GzipErrors:
    """A gzip stream whose damage surfaces as an unreadable contribution."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self.stream, self.name = stream, name

    def read(self, size: int = -1) -> bytes:
        try:
            return self.stream.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise ContributionUnreadableError(
                f"{self.name}: the compressed file is damaged or truncated ({exc})",
                hint="compress the file again",
            ) from None


def _utf8_chunks(raw: BinaryIO, head: bytes, *, utf16: bool, name: str) -> Iterator[bytes]:
    """The stream as chunks of valid UTF-8 (UTF-16 converted), each ending on a character
    boundary; bytes that are not UTF-8 raise, naming their offset and line."""
    if utf16:
        decoder = codecs.getincrementaldecoder("utf-16")()
        pending = head
        while True:
            block = pending + raw.read(CHUNK_BYTES)
            pending = b""
            if not block:
                return
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise ContributionUnreadableError(
                    f"{name}: the file starts with a UTF-16 byte-order mark but is not "
                    f"valid UTF-16 ({exc.reason})",
                    hint="re-save the file as UTF-8 (CSV UTF-8 in Excel)",
                ) from None
            yield text.encode("utf-8")
    offset, lines, carry = 0, 1, head
    while True:
        block = raw.read(CHUNK_BYTES)
        data = carry + block
        if not data:
            return
        if data.isascii():
            valid, carry = data, b""
        else:
            try:
                _, consumed = codecs.utf_8_decode(data, "strict", not block)
            except UnicodeDecodeError as exc:
                position = offset + exc.start
                line = lines + data.count(b"\n", 0, exc.start)
                raise ContributionUnreadableError(
                    f"{name}: byte {position} (line {line}) is not valid UTF-8 "
                    f"(0x{data[exc.start]:02X}): the file is in another encoding",
                    hint="re-save the file as UTF-8 (in Excel: CSV UTF-8; in R: "
                    "fileEncoding = 'UTF-8')",
                ) from None
            valid, carry = data[:consumed], data[consumed:]
        offset += len(valid)
        lines += valid.count(b"\n")
        if valid:
            yield valid
        if not block:
            if carry:  # an incomplete character at the very end
                raise ContributionUnreadableError(
                    f"{name}: byte {offset} (line {lines}) is not valid UTF-8: the file ends "
                    "inside a character",
                    hint="re-save the file as UTF-8",
                )
            return


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _complete_lines(text: str, *, whole: bool) -> list[str]:
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
        return Dialect(",", names=_names(records[0] if records else ["column_1"]))
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
    return Dialect(delimiter, decimal, header=True, row_names=row_names, names=_names(names))


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
    if delimiter == ",":
        return "."
    values = [v for record in records for v in record]
    commas = sum(1 for v in values if _DECIMAL_COMMA.fullmatch(v))
    points = sum(1 for v in values if _DECIMAL_POINT.fullmatch(v))
    return "," if commas > points else "."


def _holds_numbers(fields: list[str], decimal: str) -> bool:
    """A header names columns; a first line holding a number is a record."""
    return any(_NUMBER.fullmatch(f) and (decimal == "," or "," not in f) for f in fields)


def _names(raw: list[str]) -> tuple[str, ...]:
    """Column names as the parser gets them: unnamed columns get a name, repeats a suffix."""
    names: list[str] = []
    for i, name in enumerate(raw):
        name = name.strip() or f"column_{i + 1}"
        candidate, n = name, 2
        while candidate in names:
            candidate, n = f"{name}_{n}", n + 1
        names.append(candidate)
    return tuple(names)


class _RecordCounter:
    """Counts records quote-aware (RFC 4180), in numpy over whole chunks.

    A record ends at a newline outside quotes; empty lines are not records. A quote opens a
    quoted field only at the start of a field; one anywhere else means the quoting does not
    follow the rules the fast count relies on, and ``needs_exact_count`` asks for
    :func:`exact_record_count` instead.
    """

    def __init__(self, delimiter: str, *, skip_bom: bool) -> None:
        self.delimiter = ord(delimiter)
        self.in_quotes = False
        self.line_has_content = False
        self.previous = ord("\n")
        self.records = 0
        self.irregular = False
        self.needs_exact_count = False
        self.skip = 3 if skip_bom else 0

    def feed(self, chunk: bytes) -> None:
        data = np.frombuffer(chunk, np.uint8)
        if self.skip:
            data, self.skip = data[self.skip :], 0
        if not len(data) or self.needs_exact_count:
            return
        newlines = np.flatnonzero(data == 10)
        quotes = np.flatnonzero(data == 34)
        if len(quotes):
            opening = quotes[((np.arange(len(quotes)) + self.in_quotes) & 1) == 0]
            before = np.where(opening > 0, data[np.maximum(opening - 1, 0)], self.previous)
            # After a delimiter, a line break, or a quote (the second of an escaped pair).
            allowed = (before == self.delimiter) | (before == 10) | (before == 13) | (before == 34)
            if not np.all(allowed):
                self.needs_exact_count = True
                return
            inside = ((np.searchsorted(quotes, newlines) + self.in_quotes) & 1).astype(bool)
            if inside.any():
                self.irregular = True
            ends = newlines[~inside]
            self.in_quotes = bool((len(quotes) + self.in_quotes) & 1)
        else:
            ends = newlines[:0] if self.in_quotes else newlines
        if len(ends):
            starts = np.concatenate(([0], ends[:-1] + 1))
            carriage = (ends > starts) & (data[np.maximum(ends - 1, 0)] == 13)
            content = (ends - starts - carriage) > 0
            content[0] |= self.line_has_content
            filled = int(content.sum())
            if filled < len(ends):
                self.irregular = True  # blank lines
            self.records += filled
            self.line_has_content = False
            tail = data[ends[-1] + 1 :]
        else:
            tail = data
        if len(tail) > 1 or (len(tail) == 1 and tail[0] != 13):
            self.line_has_content = True
        self.previous = int(data[-1])

    def finish(self) -> int:
        return self.records + (1 if self.line_has_content else 0)


def exact_record_count(path: Path, delimiter: str) -> int:
    """Records by Python's csv module, which reads a stray quote inside a field as text, as
    the parser does: slower, for the files the fast count cannot take."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        csv.field_size_limit(2**31 - 1)
        reader = csv.reader(handle, delimiter=delimiter, quotechar=QUOTE, strict=False)
        return sum(1 for row in reader if row)


def record_positions(path: Path, delimiter: str, lines: list[int]) -> dict[int, int]:
    """For parser line numbers (records and blank lines counted alike, header included), the
    0-based position of the record among the data records, when blank lines or multi-line
    records make the two differ."""
    wanted = sorted(set(lines))
    positions: dict[int, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        csv.field_size_limit(2**31 - 1)
        reader = csv.reader(handle, delimiter=delimiter, quotechar=QUOTE, strict=False)
        record = -1
        for line, row in enumerate(reader, start=1):
            if row:
                record += 1
            if wanted and line == wanted[0]:
                positions[wanted.pop(0)] = record
                if not wanted:
                    break
    return positions


def copy_capped(source: BinaryIO, target: Path, budget: Callable[[int], None]) -> int:
    """Copy ``source`` to ``target``, each block counted by ``budget`` (which raises to stop);
    returns the bytes copied."""
    copied = 0
    with target.open("wb") as sink:
        while block := source.read(1 << 20):
            copied += len(block)
            budget(len(block))
            sink.write(block)
    return copied
