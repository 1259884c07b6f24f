"""Delimited text as real tools write it: the encoding, the dialect, and an independent count of
its records.

One streaming pass over the bytes (decompressed on the fly) decodes them (UTF-8, UTF-16 with a
BOM, Windows-1252 when detection leaves no doubt), finds the header under any preamble (a block
of ``#`` comments, or a title block above a line naming the task's columns), sniffs the dialect
from the first megabyte and counts the records with its own quote-aware scan, so the parser's
count can be held against it: a record the parser skipped or merged is never lost silently.
Whatever the parser cannot read in place (compressed, converted, old-Mac CR line endings, a
preamble) is written out as plain UTF-8 on the way.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from mlops_assets.core.common.scratch import scratch
from mlops_assets.core.intake.dialect import (
    SNIFF_RECORDS,
    Dialect,
    complete_lines,
    find_header,
    sniff,
)
from mlops_assets.core.intake.encodings import (
    CP1252,
    UTF8,
    UTF16,
    NotUtf8,
    describe,
    is_windows_1252,
    starts_utf16,
    utf8_chunks,
)

# Re-exported: where the rest of the intake has always found them.
from mlops_assets.core.intake.limits import Budget, IntakeLimits, copy_capped
from mlops_assets.core.intake.record_count import (
    RecordCounter,
    exact_record_count,
    record_positions,
)
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import TaskSchema

__all__ = [
    "MISSING_TOKENS",
    "Dialect",
    "IntakeLimits",
    "TextScan",
    "copy_capped",
    "record_positions",
    "scan_lines",
    "scan_text",
]

# Spellings of "no value" that real tools write (R, pandas, Excel, the UCI repository), after
# trimming and lower-casing.
# A lone "." is SAS's missing value, and the raw Palmer penguins data's unknown sex.
MISSING_TOKENS = ("", "na", "n/a", "nan", "null", "none", "?", "#n/a", ".")
SAMPLE_BYTES = 1 << 20
# More NUL bytes than this share of the first megabyte: not text (UTF-16 without a BOM, or a
# binary file with a text file's name).
NUL_SHARE = 0.05
MAX_SHOWN_SKIPPED = 50


@dataclass(frozen=True)
class TextScan:
    """What the streaming pass found, before any parser looked at the file."""

    path: Path  # plain UTF-8 text for the parser: the file itself or a converted copy
    dialect: Dialect | None  # None for JSON Lines
    records: int  # data records: every non-empty record after the header
    encoding: str
    bytes_read: int
    # Blank lines or records spanning several lines: the parser's line numbers then differ
    # from record positions, and a second pass maps them (only when it reports bad lines).
    irregular: bool = False
    sample_lines: list[str] = field(default_factory=list, repr=False)
    # Lines of the file before line 1 of ``path`` (the preamble), so the parser's line
    # numbers can be told as the file's.
    line_offset: int = 0
    # (line, text) of every line skipped above the header (at most MAX_SHOWN_SKIPPED).
    skipped: tuple[tuple[int, str], ...] = ()
    skipped_count: int = 0
    line_endings: str = "LF"


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
    """Stream ``path`` once: decode it, find its header, sniff its dialect, count its records.

    Raises :class:`ContributionUnreadableError` for bytes in no encoding it reads (naming the
    byte offset and line), an empty file, or a first line that is data of the wrong shape for
    the task (a hint says to add a header); :class:`ContributionTooLargeError` past
    ``limits``, :class:`IntakeTimeoutError` past ``deadline`` (``time.monotonic()``).
    """
    with _decoded_pass(
        path, task, compression, preferred_delimiter, limits or IntakeLimits(), deadline
    ) as scan:
        yield scan


@contextlib.contextmanager
def scan_lines(
    path: Path,
    *,
    compression: str | None,
    limits: IntakeLimits | None = None,
    deadline: float | None = None,
) -> Iterator[TextScan]:
    """Like :func:`scan_text` for JSON Lines: every non-empty line is a record, no header."""
    with _decoded_pass(path, None, compression, None, limits or IntakeLimits(), deadline) as scan:
        yield scan


@contextlib.contextmanager
def _decoded_pass(
    path: Path,
    task: TaskSchema | None,
    compression: str | None,
    preferred: str | None,
    limits: IntakeLimits,
    deadline: float | None,
) -> Iterator[TextScan]:
    """One pass as UTF-8; when the first byte that is not UTF-8 follows nothing but ASCII and
    the bytes around it are Windows-1252 beyond doubt, a second pass reading it as that."""
    with contextlib.ExitStack() as attempt:
        try:
            scan = _stream(attempt, path, task, compression, preferred, limits, deadline, UTF8)
        except NotUtf8 as exc:
            attempt.close()
            if not (exc.ascii_before and is_windows_1252(exc.window)):
                raise exc.refusal(path.name) from None
            scan = _stream(attempt, path, task, compression, preferred, limits, deadline, CP1252)
        yield scan


def _stream(
    stack: contextlib.ExitStack,
    path: Path,
    task: TaskSchema | None,
    compression: str | None,
    preferred: str | None,
    limits: IntakeLimits,
    deadline: float | None,
    encoding: str,
) -> TextScan:
    file = stack.enter_context(path.open("rb"))
    raw = stack.enter_context(_open_stream(file, compression, path.name))
    head = raw.read(4)
    if starts_utf16(head):
        encoding = UTF16
    chunks = utf8_chunks(raw, head, encoding=encoding, name=path.name)
    budget = Budget(
        limits, path.name, compressed_position=file.tell if compression else None, deadline=deadline
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
    if sample.count(b"\x00") > NUL_SHARE * len(sample):
        raise ContributionUnreadableError(
            f"{path.name}: the file is full of NUL bytes: it is not text (a binary file, or "
            "UTF-16 without a byte-order mark)",
            hint="save it as CSV UTF-8, or submit it in its own format under its own name",
        )
    bom = sample.startswith(codecs.BOM_UTF8)
    # Old Mac OS (and some instruments) end lines with a lone CR: read as line feeds.
    cr_only = b"\n" not in sample and b"\r" in sample
    if cr_only:
        sample = sample.replace(b"\r", b"\n")
    # At least the header and a record whole, however long the header is.
    cut = max(SAMPLE_BYTES, _after_lines(sample, 2))
    text = sample[:cut].decode(UTF8, errors="replace").removeprefix("\ufeff")
    whole = len(sample) <= cut
    if task is None:
        dialect, skip, body = None, 0, sample
    else:
        raw_lines = text.split("\n")
        skip = find_header(raw_lines if whole else raw_lines[:-1], task)
        prefix = sum(len(line.encode(UTF8)) + 1 for line in raw_lines[:skip])
        body = sample[prefix + (3 if bom and skip else 0) :] if skip else sample
        lines = complete_lines("\n".join(raw_lines[skip:]), whole=whole)
        dialect = sniff(lines, task, preferred=preferred, file_name=path.name)
        dialect = replace(dialect, header_line=skip + 1)
    # DuckDB loses every record after a header holding a line break when lines end in
    # CRLF; such a header is written out on one line (the records stay as they are).
    header_end = _multiline_header_end(body) if dialect is not None and dialect.header else 0
    joined_breaks = body[:header_end].count(b"\n") - 1 if header_end else 0
    if header_end:
        body = _one_line(body[:header_end]) + body[header_end:]
    # Anything the parser cannot read in place is written out as plain UTF-8.
    target, sink = path, None
    if compression is not None or encoding != UTF8 or cr_only or skip or header_end:
        folder = stack.enter_context(scratch("text"))
        target = folder / path.name.removesuffix(".gz")
        sink = stack.enter_context(target.open("wb"))
    counter = RecordCounter(
        dialect.delimiter if dialect else "\n",
        skip_bom=bom and not skip,
        quoted=dialect is not None,
    )
    for chunk in _prepend(body, chunks):
        if chunk is not body:
            budget.add(len(chunk))
            if cr_only:
                chunk = chunk.replace(b"\r", b"\n")
        counter.feed(chunk)
        if sink is not None:
            sink.write(chunk)
    if sink is not None:
        sink.close()
    records = counter.finish()
    if counter.needs_exact_count and dialect is not None:
        records = exact_record_count(target, dialect.delimiter)
    header = 1 if dialect is not None and dialect.header else 0
    preamble = text.split("\n")[:skip]
    return TextScan(
        path=target,
        dialect=dialect,
        records=max(0, records - header),
        encoding=describe(encoding, bom=bom, detected=encoding == CP1252),
        bytes_read=budget.total,
        irregular=counter.irregular,
        sample_lines=[] if dialect is None else lines[:SNIFF_RECORDS],
        line_offset=skip + joined_breaks,
        skipped=tuple(
            (i, line.rstrip("\r")) for i, line in enumerate(preamble[:MAX_SHOWN_SKIPPED], 1)
        ),
        skipped_count=skip,
        line_endings="CR" if cr_only else "CRLF" if b"\r\n" in sample[:cut] else "LF",
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


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
