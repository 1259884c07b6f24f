"""The embedded MLflow store: a SQLite file, created as a copy of an empty one.

MLflow creates a SQLite store by running its whole chain of schema migrations, seconds on
every new home. An empty, migrated store is made once per installed MLflow (``make setup``
makes it; so does the first new home) and every new store starts as a copy of it.

    python -m mlops_assets.core.registry.store [TRACKING_URI]
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from importlib.metadata import version
from pathlib import Path
from urllib.parse import unquote, urlparse


def prepare_sqlite_store(tracking_uri: str) -> None:
    """Create the SQLite store ``tracking_uri`` names, unless it exists, as a copy of the
    empty store (:func:`empty_store`). Any other store is left to MLflow, and so is this one
    when no empty store can be kept."""
    path = sqlite_path(tracking_uri)
    if path is None or path.exists():
        return
    template = empty_store()
    if template is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        shutil.copyfile(template, partial)
        # A link, not a rename: it never replaces a store another process made meanwhile.
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI, or None for any other store."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite" or parsed.path in ("", "/", "/:memory:"):
        return None
    return Path(unquote(parsed.path))


def empty_store() -> Path | None:
    """An empty store of the installed MLflow's schema, kept in this environment (made now
    if missing), or None when the environment cannot hold it (read-only)."""
    template = Path(sys.prefix) / "var" / "mlops_assets" / f"mlflow-{version('mlflow')}.db"
    if template.exists():
        return template
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        partial = template.with_name(f".{template.name}.{uuid.uuid4().hex}.part")
        try:
            from mlflow import MlflowClient

            MlflowClient(tracking_uri=f"sqlite:///{partial}").search_experiments()
            os.replace(partial, template)
        finally:
            partial.unlink(missing_ok=True)
    except OSError:
        return None
    return template


if __name__ == "__main__":
    if len(sys.argv) > 1:
        prepare_sqlite_store(sys.argv[1])
    else:
        print(empty_store())
