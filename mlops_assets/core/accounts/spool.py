"""An upload's bytes on their way in: spooled to a private scratch file, hashed and counted,
never held whole in memory."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mlops_assets.errors import UploadTooLargeError


class Spool:
    """An upload's bytes on their way in: written to a private scratch file as they arrive,
    hashed and counted, never held whole in memory; refused the moment they pass
    ``max_bytes``. The file is named as the upload is (its name says its format)."""

    def __init__(self, file_name: str, max_bytes: int, scratch: Path | None = None) -> None:
        self.max_bytes, self.size = max_bytes, 0
        self._folder = Path(tempfile.mkdtemp(prefix="mlops-upload-", dir=scratch))
        self.path = self._folder / file_name
        self._file = self.path.open("wb")
        self._digest = hashlib.sha256()
        self._kept = False

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.close()
            raise UploadTooLargeError(
                f"the upload is larger than {self.max_bytes} bytes; reading stopped there",
                hint="split the file, or compress it (gzip or zip)",
            )
        self._digest.update(chunk)
        self._file.write(chunk)

    def finish(self) -> str:
        """The sha256 of everything written; the file is complete on disk."""
        self._file.close()
        return self._digest.hexdigest()

    def close(self) -> None:
        self._file.close()
        if not self._kept:
            shutil.rmtree(self._folder, ignore_errors=True)

    def keep(self) -> Callable[[], None]:
        """Keep the file past the request (a check in the background reads it); the
        function returned removes it."""
        self._kept = True
        return lambda: shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
