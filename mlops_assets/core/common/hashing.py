"""Content hashes: the version of a dataset or file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a frame is hashed: hashing a file needs no pandas
    import pandas as pd

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in chunks so any size fits in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def frame_sha256(frame: pd.DataFrame) -> str:
    """sha256 of a frame's column names, dtypes and values in row order (the index is ignored).

    Two frames with the same content in the same order hash equally on any machine:
    ``hash_pandas_object`` uses a fixed key.
    """
    import pandas as pd

    digest = hashlib.sha256()
    for name, dtype in frame.dtypes.items():
        digest.update(f"{name}:{dtype};".encode())
    # Not categorized first: the same hashes, and twice as fast on columns of distinct strings.
    row_hashes = pd.util.hash_pandas_object(frame, index=False, categorize=False)
    digest.update(row_hashes.to_numpy().tobytes())
    return digest.hexdigest()


def directory_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by path relative to it."""
    return {
        path.relative_to(root).as_posix(): file_sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
