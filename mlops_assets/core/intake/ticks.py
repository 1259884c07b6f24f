"""What one tick of the landing-zone sensor takes: the files of a listing whose partitions
do not exist yet, once per content, oldest first up to a cap, and the small cursor it leaves
for the next tick (no Dagster here: the sensor asks, `defs/contributions/sensors.py` acts)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mlops_assets.core.common.names import safe_text
from mlops_assets.core.intake.landing import LandingFile, Listing, contribution_key

# A local file whose modification time is at least this old is complete; a younger one is
# taken once a second tick sees the same size and time (it may still be being written).
SETTLE_SECONDS = 2.0


# How long a taken file's size and modification time stay in the cursor after that time. A
# taken file without them is unchanged unless its time is at or after the horizon the previous
# tick left (``now - RECENT_WINDOW_SECONDS`` then): an edit made after that tick listed the zone
# has a newer time. So the window only has to cover what can make a fresh edit's time look
# older than that tick: clock skew between the zone and this host (seconds with NTP), a long
# listing of a large zone (up to a minute), an S3 multipart upload whose LastModified is when
# it began (minutes). 15 minutes covers these with room (180 ticks at the default 5 s) and
# keeps in the cursor only the files modified in the last quarter hour, however many the zone
# holds. Not seen: an edit that sets an old time again (`cp -p` or `rsync -t` of an older
# copy) over a file taken before the window. A local zone's folders quiet for this window keep
# their listing for up to a minute (`KeptFolders`): an edit in place is still within it.
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
    if any(f.mtime > now for f in files) or not (listing.oldest_first or _oldest_first(files)):
        files = sorted(files, key=lambda f: (min(f.mtime, now), f.relative_path))
    for file in files:
        key = contribution_key(file.relative_path)
        if key in known:
            # Taken before: a new size or time means it may have been edited since. Without a
            # stamp, it was taken and left the window: only a time at or after the previous
            # horizon (an edit since) says so.
            before = cursor.taken.get(file.relative_path)
            if before is not None:
                changed = before != [file.size, file.mtime]
            else:
                changed = cursor.horizon is not None and file.mtime >= cursor.horizon
            if not changed:
                if file.mtime >= horizon:
                    taken[file.relative_path] = [file.size, file.mtime]
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
                taken[file.relative_path] = [file.size, file.mtime]
            key = edited_key(file.relative_path, version)
            if key in known or version in versions or already_taken(version):
                continue  # the same bytes (a touch), or the edit is taken already
            shown = safe_text(file.relative_path)
            news.append(f"{shown}: changed after its intake; the new content is contribution {key}")
            versions.add(version)
            intakes.append(PlannedIntake(file, key, version))
            continue
        # Made only here: most files of a large zone are taken and unchanged.
        stamp = [file.size, file.mtime]
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
