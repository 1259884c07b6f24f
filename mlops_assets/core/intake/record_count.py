"""An independent count of a delimited text's records, quote-aware, and the mapping from a
parser's line numbers back to record positions."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

QUOTE = '"'


class RecordCounter:
    """Counts records quote-aware (RFC 4180), in numpy over whole chunks.

    A record ends at a newline outside quotes; empty lines are not records. A quote opens a
    quoted field only at the start of a field; one anywhere else means the quoting does not
    follow the rules the fast count relies on, and ``needs_exact_count`` asks for
    :func:`exact_record_count` instead. Without ``quoted`` (JSON Lines, whose strings never
    hold a raw line break) every non-empty line is a record.
    """

    def __init__(self, delimiter: str, *, skip_bom: bool, quoted: bool = True) -> None:
        self.delimiter = ord(delimiter)
        self.quoted = quoted
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
        quotes = np.flatnonzero(data == 34) if self.quoted else newlines[:0]
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
