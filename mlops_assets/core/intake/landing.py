"""What a landing zone holds: the files that are contributions, and the entries that are
refused (never read) with the reason, whatever flavour of zone lists them."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlops_assets.core.common.names import name_problem, safe_text

# Names of files still being written (taken once renamed), and sidecars that describe a file.
IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".crdownload", ".download")
SIDECAR_SUFFIX = ".meta.json"
# Files operating systems leave behind: not contributions, not worth a word either.
OS_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX"})


@dataclass(frozen=True)
class LandingFile:
    """A file in the landing zone: ``<landing>/<contributor>/<name>``."""

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


# A local file whose modification time is at least this old is complete; a younger one is
# taken once a second tick sees the same size and time (it may still be being written).
SETTLE_SECONDS = 2.0


# How long a taken file's size and modification time stay in the cursor after that time. A
# taken file without them is unchanged unless its time is at or after the horizon the previous
# tick left (``now - RECENT_WINDOW_SECONDS`` then): an edit made after that tick listed the zone
# has a newer time. So the window only has to cover what can make a fresh edit's time look
# older than that tick: clock skew between the zone and this host (seconds with NTP), a long
# listing of a large zone (up to a minute), an S3 multipart upload whose LastModified is when
# it began (minutes). 15 minutes covers these with room, is 180 ticks at the default 5 s and 60
# at the production 15 s, and keeps in the cursor only the files modified in the last quarter
# hour, however many the zone holds. Not seen: an edit that sets an old time again (`cp -p`
# or `rsync -t` of an older copy) over a file taken before the window.
RECENT_WINDOW_SECONDS = 15 * 60.0
# The stamp of a taken file that must be looked at again next tick (it changed, but this tick
# could not take it): it matches no real size and time.
_LOOK_AGAIN = [-1, -1.0]


@dataclass(frozen=True)
class TickCursor:
    """What one tick of the landing-zone sensor leaves for the next: files on probation,
    ``pending`` ones seen once while possibly still being written and ``resubmitted`` ones
    whose bytes an earlier run already took (each with its size and modification time), the
    size and modification time of the files ``taken`` that were modified since ``horizon``
    (to see them edited later), and the refused entries already reported.

    Its size does not grow with what was taken: Dagster's partitions are the record of that,
    and ``taken`` holds only recent files. ``pending``, ``resubmitted`` and ``reported`` are
    rebuilt from each listing, so they hold only entries in the zone now (a file still being
    written, a copy of bytes already taken, a refused entry): deleting them from the zone
    drops them from the cursor. A cursor written before ``horizon`` existed (every taken
    file's stamp) is read as is; the next tick keeps only the recent stamps.
    """

    pending: dict[str, list[float]] = field(default_factory=dict)
    resubmitted: dict[str, list[float]] = field(default_factory=dict)
    reported: list[str] = field(default_factory=list)
    taken: dict[str, list[float]] = field(default_factory=dict)
    # Taken files modified before this time are left out of ``taken``; None in old cursors.
    horizon: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> TickCursor:
        stored = json.loads(text) if text else {}
        return cls(
            stored.get("pending", {}),
            stored.get("resubmitted", {}),
            stored.get("reported", []),
            stored.get("taken", {}),
            stored.get("horizon"),
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "pending": self.pending,
                "resubmitted": self.resubmitted,
                "reported": self.reported,
                "taken": self.taken,
                "horizon": self.horizon,
            }
        )


def edited_key(relative_path: str, version: str) -> str:
    """The partition of a file's new content after it was edited: a new contribution."""
    return contribution_key(f"{relative_path}#{version}")


@dataclass(frozen=True)
class PlannedIntake:
    file: LandingFile
    key: str  # the partition
    version: str  # the content version: the run key
    # When it landed, as this system saw it (see ``plan_tick``): what orders contributions.
    landed_at: float = 0.0


# Files taken in one tick are this many seconds apart in landing order (well under a tick).
_SAME_TICK_STEP = 1e-6


@dataclass(frozen=True)
class TickPlan:
    intakes: list[PlannedIntake]
    cursor: TickCursor
    # Reasons to say, each once: refused entries not reported before, files that could not
    # be looked at this tick (they are looked at again next tick), resubmitted bytes.
    news: list[str]
    waiting: int  # files still being written
    deferred: int = 0  # complete files left for the next ticks by the per-tick cap

    def skip_reason(self, location: str) -> str:
        """Why nothing is taken this tick."""
        reason = f"no new files in {location}"
        if self.waiting:
            reason += f"; {self.waiting} still being written, taken once their size stops changing"
        if self.deferred:
            reason += f"; {self.deferred} waiting for the next tick"
        if self.cursor.reported:
            reason += f"; {len(self.cursor.reported)} refused (see `mlops contributions`)"
        return reason


def _oldest_first(files: list[LandingFile]) -> bool:
    # Listings come sorted (a local scan sorts them): checked in one pass, not sorted again.
    return all(
        a.mtime < b.mtime or (a.mtime == b.mtime and a.relative_path <= b.relative_path)
        for a, b in itertools.pairwise(files)
    )


def plan_tick(
    listing: Listing,
    *,
    known: set[str],
    cursor: TickCursor,
    now: float,
    writes_are_atomic: bool,
    content_version: Callable[[LandingFile], str],
    already_taken: Callable[[str], bool],
    max_intakes: int | None = None,
) -> TickPlan:
    """Which files of ``listing`` to take now: every complete file whose partition (its key)
    is not in ``known``, once per content version (the same bytes under another name are
    not taken again), oldest first and at most ``max_intakes`` (the rest wait for the next
    ticks). A file that cannot be looked at is left for the next tick; it never stops the
    others."""
    horizon = now - RECENT_WINDOW_SECONDS
    pending: dict[str, list[float]] = {}
    resubmitted: dict[str, list[float]] = {}
    taken: dict[str, list[float]] = {}
    intakes: list[PlannedIntake] = []
    news: list[str] = []
    versions: set[str] = set()
    waiting = deferred = 0

    def full() -> bool:
        return max_intakes is not None and len(intakes) >= max_intakes

    def look_again(file: LandingFile) -> None:
        # A changed file not taken this tick: with no stamp, a time since the horizon says
        # "changed" next tick; an older one needs a stamp that matches nothing.
        if file.mtime < horizon:
            taken[file.relative_path] = _LOOK_AGAIN

    # Oldest first, so that a backlog over the cap is taken in the order it landed (a time in
    # the future counts as now: no sender's clock puts a file ahead of the others).
    files = listing.files
    if any(f.mtime > now for f in files) or not _oldest_first(files):
        files = sorted(files, key=lambda f: (min(f.mtime, now), f.relative_path))
    for file in files:
        key = contribution_key(file.relative_path)
        stamp = [file.size, file.mtime]
        if key in known:
            # Taken before: a new size or time means it may have been edited since. Without a
            # stamp, it was taken and left the window: only a time at or after the previous
            # horizon (an edit since) says so.
            before = cursor.taken.get(file.relative_path)
            if before is not None:
                changed = before != stamp
            else:
                changed = cursor.horizon is not None and file.mtime >= cursor.horizon
            if not changed:
                if file.mtime >= horizon:
                    taken[file.relative_path] = stamp
                continue
            if full():
                deferred += 1
                look_again(file)
                continue
            try:
                version = content_version(file)
            except Exception:  # looked at again next tick
                look_again(file)
                continue
            if file.mtime >= horizon:
                taken[file.relative_path] = stamp
            key = edited_key(file.relative_path, version)
            if key in known or version in versions or already_taken(version):
                continue  # the same bytes (a touch), or the edit is taken already
            shown = safe_text(file.relative_path)
            news.append(f"{shown}: changed after its intake; the new content is contribution {key}")
            versions.add(version)
            intakes.append(PlannedIntake(file, key, version))
            continue
        if cursor.resubmitted.get(file.relative_path) == stamp:
            resubmitted[file.relative_path] = stamp
            continue
        complete = (
            writes_are_atomic
            or now - file.mtime >= SETTLE_SECONDS
            or cursor.pending.get(file.relative_path) == stamp
        )
        if not complete:
            pending[file.relative_path] = stamp
            waiting += 1
            continue
        if full():
            # Left for the next tick, not in the cursor: unless it is complete only by holding
            # still since the last tick (a few seconds old), it is complete then too.
            if now - file.mtime < SETTLE_SECONDS:
                pending[file.relative_path] = stamp
            deferred += 1
            continue
        try:
            version = content_version(file)
        except Exception as exc:  # one bad entry never stops the tick
            news.append(f"{safe_text(file.relative_path)}: not taken this tick ({exc})"[:500])
            continue
        if version in versions or already_taken(version):
            news.append(
                f"{safe_text(file.relative_path)}: same bytes as an earlier file, not taken"
            )
            resubmitted[file.relative_path] = stamp
            continue
        versions.add(version)
        if file.mtime >= horizon:
            taken[file.relative_path] = stamp
        intakes.append(PlannedIntake(file, key, version))
    # Landing order is this system's clock, never a time the sender can set: files taken in
    # one tick landed now, in the order of their modification times (clamped to now) and
    # names, a step apart.
    ordered = sorted(intakes, key=lambda i: (min(i.file.mtime, now), i.file.relative_path))
    intakes = [
        replace(intake, landed_at=now + rank * _SAME_TICK_STEP)
        for rank, intake in enumerate(ordered)
    ]
    refusals = {r.relative_path: r.reason for r in listing.refused}
    news += [
        f"{path}: refused, {reason}"
        for path, reason in refusals.items()
        if path not in cursor.reported
    ]
    return TickPlan(
        intakes=intakes,
        cursor=TickCursor(pending, resubmitted, sorted(refusals), taken, horizon),
        news=news,
        waiting=waiting,
        deferred=deferred,
    )


# ---- a landing zone in a local folder (the resource, and the CLI without Dagster) ----------


def scan_folder(root: Path) -> Listing:
    """Every candidate contribution in the local folder ``root``, oldest first, and every
    refused entry with the reason; only regular files are taken, nothing is followed."""
    if not root.is_dir():
        return Listing()
    files: list[LandingFile] = []
    refusals: list[RefusedEntry] = []
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
            _scan_contributor(top, files, refusals)
    return Listing(
        sorted(files, key=lambda f: (f.mtime, f.relative_path)),
        sorted(refusals, key=lambda r: r.relative_path),
    )


def _scan_contributor(
    folder: os.DirEntry, files: list[LandingFile], refusals: list[RefusedEntry]
) -> None:
    for entry in os.scandir(folder.path):
        relative = f"{folder.name}/{entry.name}"
        if is_waiting(entry.name):
            continue
        if entry.is_symlink():
            refusals.append(refused(relative, "a symbolic link: it is never followed"))
            continue
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            problem = entry_problem([folder.name, entry.name, "file"])
        elif not stat.S_ISREG(info.st_mode):
            problem = "not a regular file (a device, FIFO or socket)"
        else:  # the folder's name was checked once, by the caller
            problem = _file_name_problem(entry.name)
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
