"""Which format a contributed file is in: from its name, and from its first bytes when they
plainly say another format (an Excel workbook saved under a ``.csv`` name, a Parquet file named
``.dat``), so a contributor hears what the file is rather than "unknown format"."""

from __future__ import annotations

import zipfile
from pathlib import Path

from mlops_assets.errors import ContributionUnreadableError

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "text",
    ".data": "text",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".arrows": "arrow",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".xlsb": "xlsb",
    ".xls": "xls",
    ".ods": "ods",
}
TEXT_FORMATS = frozenset({"csv", "tsv", "text"})
# Formats that may come gzip-compressed (.csv.gz); the binary ones compress themselves.
GZIPPABLE = TEXT_FORMATS | {"json", "jsonl"}
BINARY = frozenset({"parquet", "arrow", "xlsx", "xlsb", "xls", "ods"})
ZIPPED_WORKBOOKS = frozenset({"xlsx", "xlsb", "ods"})
READERS = {
    "csv": "delimited text",
    "tsv": "delimited text",
    "text": "delimited text",
    "json": "JSON",
    "jsonl": "JSON Lines",
    "parquet": "Parquet",
    "arrow": "Arrow IPC (Feather)",
    "xlsx": "Excel workbook",
    "xlsb": "Excel binary workbook",
    "xls": "Excel 97-2003 workbook",
    "ods": "OpenDocument spreadsheet",
}
SUPPORTED = ", ".join(
    [*FORMATS, *(f"{s}.gz" for s, f in FORMATS.items() if f in GZIPPABLE), ".zip"]
)
_MAGIC = {
    b"PAR1": "parquet",
    b"ARROW1": "arrow",
    b"FEA1": "arrow",
    b"\xff\xff\xff\xff": "arrow",  # the IPC stream format's first message
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "xls",  # an OLE2 compound file
    b"\x1f\x8b": "gzip",
}
_ODS = b"application/vnd.oasis.opendocument.spreadsheet"


def detect_format(name: str, *, strict: bool = True) -> tuple[str | None, str | None]:
    """(format, compression) from a file name, e.g. ``data.csv.gz`` -> ``("csv", "gzip")``.
    An unknown name raises, or with ``strict=False`` gives a format of None."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    compression = None
    if suffixes and suffixes[-1] in (".gz", ".zip"):
        compression = "gzip" if suffixes.pop() == ".gz" else "zip"
    if compression == "zip" and not suffixes:
        return "zip", "zip"  # the member's own name tells its format
    if not suffixes or suffixes[-1] not in FORMATS:
        if strict:
            raise ContributionUnreadableError(
                f"{name}: unknown format", hint=f"submit one of: {SUPPORTED}"
            )
        return None, compression
    return FORMATS[suffixes[-1]], compression


def format_by_content(path: Path) -> str | None:
    """The format the first bytes of ``path`` say, for the formats that say one: the binary
    ones, gzip, zip (a workbook or an archive), JSON; None for anything else (text)."""
    with path.open("rb") as handle:
        head = handle.read(8)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if text[:1] in (b"{", b"[") else None


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "xl/workbook.xml" in names:
                return "xlsx"
            if "xl/workbook.bin" in names:
                return "xlsb"
            if "mimetype" in names and archive.read("mimetype").strip() == _ODS:
                return "ods"
    except (zipfile.BadZipFile, OSError, KeyError):
        pass
    return "zip"


def reading_of(
    path: Path, named: tuple[str | None, str | None], by_content: str | None
) -> tuple[str, str | None, str]:
    """(format, compression, a note for the report) to read ``path`` with: its name's format,
    unless its content is plainly another; raises when neither tells a format it reads."""
    file_format, compression = named
    if by_content == "gzip" and compression != "gzip":
        raise ContributionUnreadableError(
            f"{path.name}: a gzip-compressed file without .gz in its name",
            hint="name it after what it holds, e.g. data.csv.gz",
        )
    if compression == "gzip":
        if by_content != "gzip":
            raise ContributionUnreadableError(
                f"{path.name}: named .gz but not gzip-compressed", hint="remove .gz from its name"
            )
        if file_format not in GZIPPABLE:
            what = READERS.get(file_format or "", "file")
            raise ContributionUnreadableError(
                f"{path.name}: a gzip-compressed {what}, which the intake does not read",
                hint="submit the file uncompressed (or zipped)",
            )
        return file_format, compression, ""  # type: ignore[return-value]
    if by_content == "zip" and file_format in ZIPPED_WORKBOOKS:
        return file_format, None, ""  # a damaged workbook: its reader says so
    if by_content in BINARY and by_content != file_format:
        said = f"the name says {Path(path.name).suffix or 'nothing'}"
        return by_content, None, f" (by its content; {said})"
    if by_content == "zip" and file_format != "zip":
        raise ContributionUnreadableError(
            f"{path.name}: a zip archive under another name", hint="name it .zip"
        )
    if file_format is None:
        if by_content == "json":
            return "json", None, " (by its content)"
        with path.open("rb") as handle:
            if b"\x00" in handle.read(4096):
                raise ContributionUnreadableError(
                    f"{path.name}: unknown format: not text, and none of the formats the "
                    "intake reads",
                    hint=f"submit one of: {SUPPORTED}",
                )
        return "text", None, " (by its content: the name has no known format)"
    if file_format in BINARY and by_content != file_format:
        raise ContributionUnreadableError(
            f"{path.name}: named as a {READERS[file_format]} but it is not one",
            hint=f"save it again as a {READERS[file_format]}, or name it after what it is",
        )
    return file_format, compression, ""
