"""The landing zone: where contributors drop files, as ``<contributor>/<file>``."""

import contextlib
import os
import shutil
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import ClassVar

import dagster as dg

from mlops_assets.core.common.names import safe_text
from mlops_assets.core.intake.landing import (
    LandingFile,
    Listing,
    RefusedEntry,
    entry_problem,
    is_waiting,
    refused,
)


class LandingZone(dg.ConfigurableResource, ABC):
    """Where contributors drop files, as ``<contributor>/<file>``: a local folder or S3."""

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
        ``<contributor>/<file>``, unsafe names); files still being written and sidecars are
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
        """Place ``source`` at ``relative_path`` (how ``mlops submit`` delivers a file)."""


class LocalLandingZone(LandingZone):
    """A landing zone in a local folder. Only regular files are read: a symbolic link (to a
    file or a folder), a device or a FIFO is refused, never followed."""

    root: str

    @property
    def location(self) -> str:
        return self.root

    def scan(self) -> Listing:
        root = Path(self.root)
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
                self._scan_folder(top, files, refusals)
        return Listing(
            sorted(files, key=lambda f: (f.mtime, f.relative_path)),
            sorted(refusals, key=lambda r: r.relative_path),
        )

    @staticmethod
    def _scan_folder(
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
            else:
                problem = entry_problem([folder.name, entry.name])
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

    def _path(self, relative_path: str) -> Path:
        """The file at ``relative_path``, refused unless it is a regular file inside the zone
        reached without a symbolic link."""
        from mlops_assets.errors import LandingEntryRefusedError

        root = Path(self.root).resolve()
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

    def content_version(self, file: LandingFile) -> str:
        from mlops_assets.core.common.hashing import file_sha256

        return f"sha256:{file_sha256(self._path(file.relative_path))}"

    @contextlib.contextmanager
    def local_copy(self, relative_path: str) -> Iterator[Path]:
        yield self._path(relative_path)  # already local: read in place, never modified

    def put(self, source: Path, relative_path: str) -> None:
        target = self._path(relative_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")  # ignored until renamed
        shutil.copyfile(source, partial)
        os.replace(partial, target)
