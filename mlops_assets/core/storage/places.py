"""The dataset store and the landing zone opened from their URIs (``MLOPS_STORAGE_URI``,
``MLOPS_LANDING_URI``): a local folder, read in place, or ``s3://bucket/prefix``. What the
command line reads and writes them with; the pipeline's resources wrap the same code."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlops_assets.core.intake.landing import Listing, file_in_folder, scan_folder

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


class Store(Protocol):
    """What is read of the dataset store outside the pipeline."""

    def exists(self, key: str) -> bool: ...
    def fetch(self, key: str) -> Path: ...
    def fetch_tree(self, key: str, ending: str | tuple[str, ...] = "") -> Path: ...
    def remove(self, key: str) -> None: ...


class Landing(Protocol):
    """What is done with the landing zone outside the pipeline."""

    @property
    def location(self) -> str: ...
    def scan(self) -> Listing: ...
    def local_copy(self, relative_path: str) -> AbstractContextManager[Path]: ...
    def exists(self, relative_path: str) -> bool: ...
    def put(self, source: Path, relative_path: str) -> None: ...
    def remove(self, relative_path: str) -> None: ...


class LocalStore:
    """The store in a local folder: every key is a file under ``root``, read in place."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def fetch(self, key: str) -> Path:
        return self._path(key)

    def fetch_tree(self, key: str, ending: str | tuple[str, ...] = "") -> Path:
        return self._path(key)

    def remove(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class LocalLanding:
    """A landing zone in a local folder. Only regular files are read: a symbolic link (to a
    file or a folder), a device or a FIFO is refused, never followed."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)

    @property
    def location(self) -> str:
        return self.root

    def scan(self) -> Listing:
        return scan_folder(Path(self.root))

    def path(self, relative_path: str) -> Path:
        return file_in_folder(Path(self.root), relative_path)

    @contextlib.contextmanager
    def local_copy(self, relative_path: str) -> Iterator[Path]:
        yield self.path(relative_path)  # already local: read in place, never modified

    def put(self, source: Path, relative_path: str) -> None:
        target = self.path(relative_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")  # ignored until renamed
        shutil.copyfile(source, partial)
        os.replace(partial, target)

    def exists(self, relative_path: str) -> bool:
        return self.path(relative_path).exists()

    def remove(self, relative_path: str) -> None:
        self.path(relative_path).unlink(missing_ok=True)


def open_store(uri: str, s3_endpoint_url: str | None = None) -> Store:
    """The dataset store at ``uri``: ``s3://bucket/prefix`` or a folder."""
    if uri.startswith("s3://"):
        from mlops_assets.core.storage.s3 import S3Store, s3_client

        client = s3_client(s3_endpoint_url)
        return S3Store(uri, lambda: client)
    return LocalStore(uri)


def open_landing(uri: str, s3_endpoint_url: str | None = None) -> Landing:
    """The landing zone at ``uri``: ``s3://bucket/prefix`` or a folder."""
    if uri.startswith("s3://"):
        from mlops_assets.core.storage.s3 import S3Landing, s3_client

        client = s3_client(s3_endpoint_url)
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return S3Landing(bucket, prefix, lambda: client)
    return LocalLanding(uri)


def stored_file(store: Store, key: str) -> Path | None:
    """A local path holding the stored file ``key`` (in place when the store is local), or
    None when it is not stored."""
    return store.fetch(key) if store.exists(key) else None
