"""Bytes to UTF-8 as contributors' tools write text: UTF-8 (with or without a BOM), UTF-16 with
a BOM (Excel's "Unicode Text"), and Windows-1252 (Excel's "CSV (Comma delimited)" on a Western
Windows machine) when detection leaves no doubt; otherwise a refusal naming the first byte that
is not UTF-8."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import BinaryIO

from mlops_assets.errors import ContributionUnreadableError

UTF8, UTF16, CP1252 = "utf-8", "utf-16", "cp1252"
CHUNK_BYTES = 1 << 24
# Western text has accented letters between plain ones ("Blütenblattlänge", "Espèce"); long
# runs of them are another alphabet (Cyrillic, Greek) read with the wrong code page.
_LONG_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]{4,}")
# Bytes around a late non-UTF-8 byte that detection looks at.
DETECTION_WINDOW = 1 << 16


class NotUtf8(Exception):
    """Bytes that are not UTF-8, at ``offset`` (``line``); ``ascii_before`` says every byte
    before them was ASCII, so the stream can be read again in another encoding."""

    def __init__(self, offset: int, line: int, byte: int, window: bytes, ascii_before: bool):
        super().__init__(offset)
        self.offset, self.line, self.byte = offset, line, byte
        self.window, self.ascii_before = window, ascii_before

    def refusal(self, name: str) -> ContributionUnreadableError:
        return ContributionUnreadableError(
            f"{name}: byte {self.offset} (line {self.line}) is not valid UTF-8 "
            f"(0x{self.byte:02X}): the file is in another encoding",
            hint="re-save the file as UTF-8 (in Excel: CSV UTF-8; in R: fileEncoding = 'UTF-8')",
        )


def is_windows_1252(data: bytes) -> bool:
    """Whether ``data`` (not UTF-8) is Windows-1252 beyond doubt: every byte defined there, no
    UTF-8 sequence mixed in (two encodings in one file), no long run of accented letters
    (another alphabet), and charset-normalizer finds cp1252 among the readings that make the
    most sense (it tells code pages that decode the same bytes to the same text apart only by
    language, so a Western reading among the best is what matters)."""
    try:
        text = data.decode(CP1252)
    except UnicodeDecodeError:
        return False
    if any(ord(ch) > 0x7F and ch != "\ufffd" for ch in data.decode(UTF8, errors="replace")):
        return False
    if _LONG_NON_ASCII_RUN.search(text):
        return False
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        return False
    least = min(m.chaos for m in matches)
    return any(
        m.chaos == least and {CP1252, "latin_1"} & {m.encoding, *m.could_be_from_charset}
        for m in matches
    )


def starts_utf16(head: bytes) -> bool:
    return head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def utf8_chunks(raw: BinaryIO, head: bytes, *, encoding: str, name: str) -> Iterator[bytes]:
    """The stream (``head`` its first bytes, already read) as chunks of UTF-8, each ending on
    a character boundary. UTF-16 and Windows-1252 are converted; in UTF-8, the first byte that
    is not raises :class:`NotUtf8`."""
    if encoding == UTF16:
        yield from _converted(raw, head, "utf-16", name)
    elif encoding == CP1252:
        yield from _converted(raw, head, CP1252, name)
    else:
        yield from _checked_utf8(raw, head)


def _converted(raw: BinaryIO, head: bytes, encoding: str, name: str) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder(encoding)()
    pending = head
    while True:
        block = pending + raw.read(CHUNK_BYTES)
        pending = b""
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            what = "UTF-16" if encoding == "utf-16" else "Windows-1252"
            raise ContributionUnreadableError(
                f"{name}: the file reads as {what} up to a byte that is not ({exc.reason})",
                hint="re-save the file as UTF-8 (CSV UTF-8 in Excel)",
            ) from None
        if text:
            yield text.encode(UTF8)
        if not block:
            return


def _checked_utf8(raw: BinaryIO, head: bytes) -> Iterator[bytes]:
    offset, lines, carry, ascii_so_far = 0, 1, head, True
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
                window = data[max(0, exc.start - DETECTION_WINDOW // 2) :][:DETECTION_WINDOW]
                raise NotUtf8(
                    offset + exc.start,
                    lines + data.count(b"\n", 0, exc.start),
                    data[exc.start],
                    window,
                    ascii_before=ascii_so_far and data[: exc.start].isascii(),
                ) from None
            valid, carry = data[:consumed], data[consumed:]
            ascii_so_far = False
        offset += len(valid)
        lines += valid.count(b"\n")
        if valid:
            yield valid
        if not block:
            if carry:  # an incomplete character at the very end
                raise NotUtf8(offset, lines, carry[0], carry, ascii_before=False)
            return


def describe(encoding: str, *, bom: bool, detected: bool) -> str:
    """The encoding as the report says it: ``utf-8``, ``utf-8 with BOM``, ``utf-16
    (converted)``, ``cp1252 (detected)``."""
    if encoding == UTF16:
        return "utf-16 (converted)"
    if encoding == CP1252:
        return "cp1252 (detected)" if detected else CP1252
    return "utf-8 with BOM" if bom else UTF8
