"""The landing zone: where contributors drop files, as `<contributor>/<file>`."""

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import ClassVar

import dagster as dg

from mlops_assets.core.intake.landing import (
    SIDECAR_SUFFIX,
    KeptFolders,
    LandingFile,
    Listing,
    Sidecar,
    file_in_folder,
    scan_folder,
)
from mlops_assets.core.intake.ticks import RECENT_WINDOW_SECONDS


class LandingZone(dg.ConfigurableResource, ABC):
    """Where contributors drop files, as `<contributor>/<file>`: a local folder or S3."""

    # Whether a listed file is always complete. An S3 object appears whole when its upload
    # ends; a local file can be listed while it is still being written.
    writes_are_atomic: ClassVar[bool] = False

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the zone is, for messages (never with credentials)."""

    @abstractmethod
    def scan(self) -> Listing:
        """Every candidate contribution, oldest first, and every entry that is refused with
        the reason (symbolic links, devices, FIFOs, paths outside the zone or not at
        `<contributor>/<file>`, unsafe names); files still being written and sidecars are
        left out of both."""

    def list_files(self) -> list[LandingFile]:
        return self.scan().files

    @abstractmethod
    def content_version(self, file: LandingFile) -> str:
        """An identifier of the file's bytes: the same bytes, under any name, give the same one.

        The sensor asks only for files it has not seen, so hashing stays off the hot path.
        """

    @abstractmethod
    def local_copy(self, relative_path: str) -> AbstractContextManager[Path]:
        """A local path holding the file's bytes for as long as the context is open."""

    @abstractmethod
    def put(self, source: Path, relative_path: str) -> None:
        """Place `source` at `relative_path` (how `mlops submit` delivers a file)."""

    def sidecar(self, relative_path: str) -> Sidecar:
        """What the file's sidecar (`<file>.meta.json`) says, or nothing when it has none."""
        try:
            with self.local_copy(relative_path + SIDECAR_SUFFIX) as path:
                if not path.is_file() or path.stat().st_size > 1 << 20:
                    return Sidecar()
                return Sidecar.parse(path.read_text(encoding="utf-8", errors="replace"))
        except Exception:  # optional: a missing or unreadable one is none
            return Sidecar()


# Each local zone's quiet folders, listed once and kept between ticks in the code server that
# runs the sensor. Quiet for as long as a taken file's size and time are watched for edits
# (the tick's window): a folder with a file modified in it is listed every tick.
_KEPT_FOLDERS: dict[str, KeptFolders] = {}


class LocalLandingZone(LandingZone):
    """A landing zone in a local folder. Only regular files are read: a symbolic link (to a
    file or a folder), a device or a FIFO is refused, never followed."""

    root: str

    @property
    def location(self) -> str:
        return self.root

    def scan(self) -> Listing:
        kept = _KEPT_FOLDERS.get(self.root)
        if kept is None:
            kept = _KEPT_FOLDERS[self.root] = KeptFolders(quiet_seconds=RECENT_WINDOW_SECONDS)
        return scan_folder(Path(self.root), kept)

    def _path(self, relative_path: str) -> Path:
        return file_in_folder(Path(self.root), relative_path)

    def content_version(self, file: LandingFile) -> str:
        from mlops_assets.core.common.hashing import file_sha256

        return f"sha256:{file_sha256(self._path(file.relative_path))}"

    @contextlib.contextmanager
    def local_copy(self, relative_path: str) -> Iterator[Path]:
        yield self._path(relative_path)  # already local: read in place, never modified

    def put(self, source: Path, relative_path: str) -> None:
        from mlops_assets.core.storage.places import LocalLanding

        LocalLanding(self.root).put(source, relative_path)
