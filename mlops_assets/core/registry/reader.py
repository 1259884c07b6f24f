"""A read-only view of the model registry for the command line, without importing MLflow.

Importing MLflow costs seconds (it brings pandas, SQLAlchemy and its GenAI modules), far more
than ``mlops contributions``, ``mlops model show`` and ``mlops verify`` spend reading a few
rows. On the embedded default's SQLite store they read MLflow's registry tables directly,
read-only (versions, their tags and aliases; where a run's and a logged model's files are);
on any other store (an MLflow server, a database server) MLflow's own client answers.
``test_registry_reader.py`` holds the two to the same answers on a real store, so an MLflow
upgrade that moves a table fails there, not in front of a user.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

DEFAULT_WORKSPACE = "default"  # MLflow's, when workspaces are not used


@dataclass(frozen=True)
class VersionView:
    """One registered version as the commands show it."""

    name: str
    version: str
    run_id: str
    source: str  # models:/<model id> for a model logged with MLflow 3
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    storage_location: str = ""  # where the version's files are (a URI)
    created_at: float | None = None  # seconds since the epoch

    def local_files(self) -> Path | None:
        """The local folder of the version's model files, or None when they are not local
        files (an MLflow server's, a bucket's: read them through MLflow then)."""
        return _local_folder(self.storage_location)


def is_local_store(tracking_uri: str) -> bool:
    """Whether the registry is a SQLite file this process can read directly."""
    return tracking_uri.startswith("sqlite:///")


def model_versions(tracking_uri: str, model_name: str) -> list[VersionView]:
    """Every version of ``model_name`` (oldest first) with its tags and aliases; none when
    the store does not exist yet."""
    if not is_local_store(tracking_uri):
        return _versions_from_client(tracking_uri, model_name)
    with _read_only(tracking_uri) as db:
        if db is None:
            return []
        scope = _workspace_clause(db, "model_versions")
        tags: dict[str, dict[str, str]] = {}
        for version, key, value in db.execute(
            f"SELECT version, key, value FROM model_version_tags WHERE name = ?{scope}",
            (model_name,),
        ):
            tags.setdefault(str(version), {})[key] = value
        aliases: dict[str, list[str]] = {}
        for version, alias in db.execute(
            f"SELECT version, alias FROM registered_model_aliases WHERE name = ?{scope}",
            (model_name,),
        ):
            aliases.setdefault(str(version), []).append(alias)
        rows = db.execute(
            f"SELECT version, run_id, source, storage_location, creation_time FROM model_versions "
            f"WHERE name = ?{scope} ORDER BY version",
            (model_name,),
        ).fetchall()
    return [
        VersionView(
            name=model_name,
            version=str(version),
            run_id=run_id or "",
            source=source or "",
            aliases=sorted(aliases.get(str(version), [])),
            tags=tags.get(str(version), {}),
            storage_location=location or "",
            created_at=created / 1000 if created else None,
        )
        for version, run_id, source, location, created in rows
    ]


def find_version(
    tracking_uri: str,
    model_name: str,
    *,
    version: str | None = None,
    alias: str | None = None,
    model_uuid: str | None = None,
) -> VersionView | None:
    """The version with this number, alias or ``model_uuid`` tag, or None."""
    from mlops_assets.core.registry.tags import MODEL_UUID

    for found in model_versions(tracking_uri, model_name):
        if (
            (version is not None and found.version == str(version))
            or (alias is not None and alias in found.aliases)
            or (model_uuid is not None and found.tags.get(MODEL_UUID) == model_uuid)
        ):
            return found
    return None


def run_artifacts(tracking_uri: str, run_id: str) -> Path | None:
    """The local folder of a run's artifacts, or None when they are not local files."""
    if not is_local_store(tracking_uri):
        return None
    with _read_only(tracking_uri) as db:
        query = "SELECT artifact_uri FROM runs WHERE run_uuid = ?"
        row = db.execute(query, (run_id,)).fetchone() if db is not None else None
    return _local_folder(row[0]) if row and row[0] else None


def _local_folder(location: str) -> Path | None:
    parsed = urlparse(location)
    if not location or parsed.scheme not in ("", "file"):
        return None
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else location)
    return path if path.is_dir() else None


@contextlib.contextmanager
def _read_only(tracking_uri: str) -> Iterator[sqlite3.Connection | None]:
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.exists():
        yield None
        return
    from mlops_assets.errors import RegistryUnavailableError

    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        yield db
    except sqlite3.Error as exc:
        raise RegistryUnavailableError(
            f"the registry {path} cannot be read: {exc}",
            hint="check MLFLOW_TRACKING_URI, and that the file is an MLflow store",
        ) from None
    finally:
        db.close()


def _workspace_clause(db: sqlite3.Connection, table: str) -> str:
    """Only the default workspace's rows, on a schema that has workspaces (MLflow 3.x)."""
    columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    return f" AND workspace = '{DEFAULT_WORKSPACE}'" if "workspace" in columns else ""


def _versions_from_client(tracking_uri: str, model_name: str) -> list[VersionView]:
    from mlops_assets.core.registry.client import mlflow_client, registry_errors

    with registry_errors(tracking_uri):
        found = mlflow_client(tracking_uri).search_model_versions(f"name = '{model_name}'")
    return sorted(
        (
            VersionView(
                name=v.name,
                version=str(v.version),
                run_id=v.run_id or "",
                source=v.source or "",
                aliases=sorted(v.aliases),
                tags=dict(v.tags),
                created_at=v.creation_timestamp / 1000 if v.creation_timestamp else None,
            )
            for v in found  # their files are read through MLflow: no storage_location
        ),
        key=lambda v: int(v.version),
    )
