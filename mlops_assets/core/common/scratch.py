"""Temporary folders for one intake that never outlive it: removed on every exit path, and a
process killed before it could remove its own (``kill -9``, out of memory) has them removed
by the next intake."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_PREFIX = "mlops-"


@contextlib.contextmanager
def scratch(purpose: str) -> Iterator[Path]:
    """A fresh folder named after this process and ``purpose``, removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-{purpose}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_stale() -> list[Path]:
    """Remove the scratch folders of processes that no longer exist; returns what it removed."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = folder.name.removeprefix(_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not is_alive(int(pid)) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
