"""What one contribution may cost: decompressed size, compression ratio and time, checked while
bytes stream, for gzip, zip, and the zip containers that workbooks are (.xlsx, .ods)."""

from __future__ import annotations

import contextlib
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mlops_assets.core.common.scratch import scratch
from mlops_assets.errors import (
    ContributionTooLargeError,
    ContributionUnreadableError,
    IntakeTimeoutError,
)

# Decompressed bytes after which the compression ratio is checked (headers skew it before).
RATIO_CHECK_AFTER = 64 * 2**20


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


class Budget:
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


def copy_capped(source: BinaryIO, target: Path | None, budget: Callable[[int], None]) -> int:
    """Copy ``source`` to ``target`` (or only count it, with None), each block counted by
    ``budget`` (which raises to stop); returns the bytes copied."""
    copied = 0
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(target.open("wb")) if target is not None else None
        while block := source.read(1 << 20):
            copied += len(block)
            budget(len(block))
            if sink is not None:
                sink.write(block)
    return copied


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ContributionUnreadableError(
            f"{path.name}: not a valid {what}", hint=f"save the {what} again"
        ) from None


def _member_budget(
    path: Path, members: list[zipfile.ZipInfo], limits: IntakeLimits
) -> Callable[[int], None]:
    """A budget over ``members``' decompressed bytes: their headers' sizes first, then the
    bytes as they come out (a header can lie)."""
    packed = sum(m.compress_size for m in members)
    declared = sum(m.file_size for m in members)
    if declared > limits.max_bytes or declared / max(1, packed) > limits.max_ratio:
        says = "its member says it expands" if len(members) == 1 else "its members say they expand"
        raise limits.too_large(path.name, f"{says} to {declared} bytes")
    limit = min(limits.max_bytes, int(max(1, packed) * limits.max_ratio))
    copied = 0

    def budget(size: int) -> None:
        nonlocal copied
        copied += size
        if copied > limit:
            raise limits.too_large(path.name, f"more than {limit} bytes when decompressed")

    return budget


@contextlib.contextmanager
def unzipped(path: Path, limits: IntakeLimits) -> Iterator[Path]:
    """The single data file inside a zip archive, extracted (streamed, size-capped) to a
    scratch folder that is removed however the intake ends."""
    archive = _open_zip(path, "zip archive")
    with archive, scratch("unzip") as folder:
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
        member = members[0]
        budget = _member_budget(path, [member], limits)
        target = folder / Path(member.filename).name  # never the member's directories
        try:
            with archive.open(member) as source:
                copy_capped(source, target, budget)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ContributionUnreadableError(
                f"{path.name}: the archive is damaged ({exc})", hint="re-create the archive"
            ) from None
        yield target


def check_container(path: Path, limits: IntakeLimits, what: str) -> None:
    """A workbook that is a zip (.xlsx, .ods) decompressed member by member and counted, under
    the same limits as a zip archive, before any reader expands it in memory."""
    archive = _open_zip(path, what)
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        budget = _member_budget(path, members, limits)
        try:
            for member in members:
                with archive.open(member) as source:
                    copy_capped(source, None, budget)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ContributionUnreadableError(
                f"{path.name}: the {what} is damaged ({exc})", hint=f"save the {what} again"
            ) from None
