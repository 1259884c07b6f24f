"""What a landing zone holds: the files that are contributions, and the entries that are
refused (never read) with the reason, whatever flavour of zone lists them."""

from __future__ import annotations

import functools
import hashlib
import operator
import os
import re
import stat
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from mlops_assets.core.common.names import name_problem, safe_text

# Names of files still being written (taken once renamed), and sidecars that describe a file.
IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".crdownload", ".download")
SIDECAR_SUFFIX = ".meta.json"
# Files operating systems leave behind: not contributions, not worth a word either.
OS_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX"})


class LandingFile(NamedTuple):
    """A file in the landing zone: ``<landing>/<contributor>/<name>``. (A named tuple: made
    for every file of the zone on every tick, at half a frozen dataclass's cost.)"""

    relative_path: str
    contributor: str
    name: str
    size: int
    mtime: float
    etag: str | None = None  # S3 lists it for free; a local folder has none


@dataclass(frozen=True)
class RefusedEntry:
    """Something in the landing zone that is never read, and why (its path made safe to
    show)."""

    relative_path: str
    reason: str


@dataclass(frozen=True)
class Listing:
    files: list[LandingFile] = field(default_factory=list)
    refused: list[RefusedEntry] = field(default_factory=list)
    # The files are sorted by modification time, then path (the scans sort them): a tick
    # need not check the order of 100,000 files again.
    oldest_first: bool = False


@dataclass(frozen=True)
class Sidecar:
    """What a file's sidecar (``<file>.meta.json``) says that the pipeline keeps: the license
    the data is given under and when its contributor consented to training on it."""

    license: str = ""
    consent_at: str = ""

    @classmethod
    def parse(cls, text: str) -> Sidecar:
        """The sidecar in ``text``; anything unreadable or of the wrong type is left out
        (a sidecar is optional, and never stops an intake)."""
        import json

        try:
            data = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        license = data.get("license")
        consent = data.get("consent")
        at = consent.get("at") if isinstance(consent, dict) and consent.get("given") else None
        return cls(
            safe_text(license, limit=100) if isinstance(license, str) else "",
            safe_text(at, limit=40) if isinstance(at, str) else "",
        )


OLDEST_FIRST = operator.attrgetter("mtime", "relative_path")  # the order of a listing


def is_waiting(name: str) -> bool:
    """Files nobody needs to hear about: still being written, sidecars, OS litter, and our
    own hidden partial copies (``.<name>.part``)."""
    return (
        name.endswith(IN_PROGRESS_SUFFIXES)
        or name.endswith(SIDECAR_SUFFIX)
        or name in OS_LITTER
        or name.startswith("~")  # editors' and Office's lock files
        or name.endswith("~")  # editors' backups
    )


def entry_problem(parts: list[str]) -> str | None:
    """Why the entry at ``parts`` (its path in the zone, split) cannot be a contribution, or
    None when it is ``<contributor>/<file>`` with names that are safe to use."""
    if len(parts) == 1:
        return "not inside a contributor folder: put it at <contributor>/<file>"
    if len(parts) > 2:
        return "inside a folder of a contributor folder: put it at <contributor>/<file>"
    contributor, name = parts
    if not contributor:
        return "an empty name"
    if contributor.startswith("."):
        return "inside a hidden folder (its name starts with a dot)"
    if problem := name_problem(contributor):
        return f"the contributor folder: {problem}"
    return _file_name_problem(name)


def _file_name_problem(name: str) -> str | None:
    """What :func:`entry_problem` says of a file's name in a contributor folder found fine
    (a local scan checks each folder once)."""
    if not name:
        return "an empty name"
    if name.startswith("."):
        return "a hidden file (its name starts with a dot): rename it to submit it"
    if problem := name_problem(name):
        return f"the file: {problem}"
    return None


def refused(relative_path: str, reason: str) -> RefusedEntry:
    return RefusedEntry(safe_text(relative_path, limit=200), reason)


_MAX_KEY_LENGTH = 120
# Compiled once: a key is made for every file of the zone on every tick.
_UNSAFE_IN_KEY = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")


# The sensor makes the key of every file in the zone on every tick, in a long-lived code
# server: remembered for up to 2**17 paths (about 25 MB at 100,000); making them all again
# was a third of a tick over 100,000 files.
@functools.lru_cache(maxsize=1 << 17)
def contribution_key(relative_path: str) -> str:
    """A stable, filesystem-safe partition key for ``<contributor>/<file>``.

    Characters outside ``[A-Za-z0-9._-]`` become ``_`` and a short hash of the original path
    keeps keys unique when two names sanitize alike; the key is also used as a directory name,
    so it can never contain a path separator or ``..``.
    """
    readable = _UNSAFE_IN_KEY.sub("_", relative_path.replace("/", "--"))
    if ".." in readable:  # only the path's own dots make a run of them
        readable = _DOTS.sub("_", readable)
    readable = readable.strip("._-")[:_MAX_KEY_LENGTH] or "file"
    digest = hashlib.sha256(relative_path.encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


# ---- a landing zone in a local folder (the resource, and the CLI without Dagster) ----------


def scan_folder(root: Path, kept: KeptFolders | None = None) -> Listing:
    """Every candidate contribution in the local folder ``root``, oldest first, and every
    refused entry with the reason; only regular files are taken, nothing is followed.
    With ``kept``, a quiet contributor folder's listing from an earlier scan may stand in for
    listing it again (see :class:`KeptFolders`)."""
    if not root.is_dir():
        return Listing()
    files: list[LandingFile] = []
    refusals: list[RefusedEntry] = []
    list_contributor = _scan_contributor if kept is None else kept.scan
    folders: set[str] = set()
    for top in os.scandir(root):
        if is_waiting(top.name):
            continue
        if top.is_symlink():
            refusals.append(refused(top.name, "a symbolic link: it is never followed"))
        elif not top.is_dir(follow_symlinks=False):
            problem = entry_problem([top.name]) if top.is_file(follow_symlinks=False) else None
            refusals.append(refused(top.name, problem or "not a regular file or folder"))
        elif problem := entry_problem([top.name, "file"]):
            refusals.append(refused(f"{top.name}/", problem))
        else:
            folders.add(top.name)
            list_contributor(top, files, refusals)
    if kept is not None:
        kept.forget_all_but(folders)
    return Listing(
        sorted(files, key=OLDEST_FIRST),
        sorted(refusals, key=lambda r: r.relative_path),
        oldest_first=True,
    )


# A file's name says the same every tick: remembered, like its key, for up to 2**17 names.
@functools.lru_cache(maxsize=1 << 17)
def _file_verdict(name: str) -> str | None:
    """ "" for a file that is left alone (:func:`is_waiting`), else why its name is refused in
    a contributor folder found fine, or None."""
    return "" if is_waiting(name) else _file_name_problem(name)


def _scan_contributor(
    folder: os.DirEntry, files: list[LandingFile], refusals: list[RefusedEntry]
) -> None:
    for entry in os.scandir(folder.path):
        verdict = _file_verdict(entry.name)
        if verdict == "":
            continue
        relative = f"{folder.name}/{entry.name}"
        if entry.is_symlink():
            refusals.append(refused(relative, "a symbolic link: it is never followed"))
            continue
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            problem = entry_problem([folder.name, entry.name, "file"])
        elif not stat.S_ISREG(info.st_mode):
            problem = "not a regular file (a device, FIFO or socket)"
        else:  # the folder's name was checked once, by the caller
            problem = verdict
        if problem:
            refusals.append(refused(relative, problem))
            continue
        files.append(
            LandingFile(
                relative_path=relative,
                contributor=folder.name,
                name=entry.name,
                size=info.st_size,
                mtime=info.st_mtime,
            )
        )


@dataclass(frozen=True)
class _KeptListing:
    mtime_ns: int  # the folder's own, when it was listed
    until: float  # listed again from then on, changed or not
    files: list[LandingFile]
    refusals: list[RefusedEntry]


class KeptFolders:
    """Contributor folders' listings kept between the sensor's scans of a local zone, so a
    tick over 100,000 files does not look at each of them again.

    A folder's listing stands in for listing it again only while the folder's modification
    time is the one it had then (adding, removing or renaming an entry changes it) and for at
    most ``refresh_seconds`` (30 to 60 s by default, spread over the folders by name so they
    are not all listed in the same tick). Only a quiet folder is kept: one whose own time and
    every file's were older than ``quiet_seconds`` when it was listed, so a file still being
    written, or taken recently and watched for edits, is looked at every tick as before. What
    waits for the refresh is an edit in place of a file that had been quiet that long (its
    folder's time does not change): seen within a minute, not at the next tick.
    """

    def __init__(
        self,
        *,
        quiet_seconds: float,
        refresh_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._quiet = quiet_seconds
        self._refresh = refresh_seconds
        self._clock = clock
        self._kept: dict[str, _KeptListing] = {}

    def scan(
        self, folder: os.DirEntry, files: list[LandingFile], refusals: list[RefusedEntry]
    ) -> None:
        """List the contributor folder ``folder`` into ``files`` and ``refusals``, or put in
        its kept listing while that still holds."""
        now = self._clock()
        mtime_ns = folder.stat(follow_symlinks=False).st_mtime_ns  # before its entries
        kept = self._kept.get(folder.name)
        if kept is not None and kept.mtime_ns == mtime_ns and now < kept.until:
            files += kept.files
            refusals += kept.refusals
            return
        own_files: list[LandingFile] = []
        own_refusals: list[RefusedEntry] = []
        _scan_contributor(folder, own_files, own_refusals)
        files += own_files
        refusals += own_refusals
        quiet_since = now - self._quiet
        if mtime_ns / 1e9 < quiet_since and all(f.mtime < quiet_since for f in own_files):
            spread = 0.5 + 0.5 * zlib.crc32(folder.name.encode()) / 2**32
            self._kept[folder.name] = _KeptListing(
                mtime_ns, now + self._refresh * spread, own_files, own_refusals
            )
        else:
            self._kept.pop(folder.name, None)

    def forget_all_but(self, folders: set[str]) -> None:
        """Drop the listings of folders no longer in the zone."""
        for name in self._kept.keys() - folders:
            del self._kept[name]


def file_in_folder(root: Path, relative_path: str) -> Path:
    """The file at ``relative_path`` of the local zone ``root``, refused unless it is a
    regular file inside the zone reached without a symbolic link."""
    from mlops_assets.errors import LandingEntryRefusedError

    root = root.resolve()
    parts = relative_path.split("/")
    path = root.joinpath(*parts)
    problem = entry_problem(parts)
    if problem is None and (path.is_symlink() or path.parent.is_symlink()):
        problem = "a symbolic link: it is never followed"
    if problem is None and not path.resolve().is_relative_to(root):
        problem = "outside the landing zone"
    if problem is None and path.exists() and not path.is_file():
        problem = "not a regular file"
    if problem:
        raise LandingEntryRefusedError(
            f"{safe_text(relative_path, limit=200)} in the landing zone is refused: {problem}",
            hint="put a regular file at <contributor>/<file>",
        )
    return path
