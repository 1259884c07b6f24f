"""Atomic writes: a reader never sees a half-written Parquet or JSON file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd


def _write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` (without its index) to ``path`` as Parquet, replacing it atomically."""
    return _write_atomically(Path(path), lambda tmp: frame.to_parquet(tmp, index=False))


def write_json(document: Any, path: str | Path) -> Path:
    """Write ``document`` as indented JSON, replacing ``path`` atomically."""
    text = json.dumps(document, indent=2, sort_keys=True, default=str)
    return _write_atomically(Path(path), lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def replace_directory(staging: Path, target: Path) -> None:
    """Make the fully written ``staging`` directory become ``target``, replacing any old one.

    Readers see the old directory or the new one, never a mix: each step is a rename.
    """
    backup = target.with_name(f".{target.name}.old")
    shutil.rmtree(backup, ignore_errors=True)
    if target.exists():
        os.replace(target, backup)
    os.replace(staging, target)
    shutil.rmtree(backup, ignore_errors=True)
