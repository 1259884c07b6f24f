"""Where attestations are kept: an artifact of the version's MLflow run at a path named by
the version, and two version tags (its path and sha256). What an attestation says is
``core.promotion.attestation``'s."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.core.registry import tags as tag

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from mlops_assets.core.registry.reader import VersionView

# Where versions registered before attestations were stored per version kept theirs: one
# per MLflow run, so two versions registered in one run shared it.
LEGACY_ARTIFACT_PATH = "attestation/attestation.json"


def artifact_path(model_name: str, version: str) -> str:
    """Where a version's attestation is kept in its MLflow run: named by the version, so
    versions registered in the same run (a cold start and its first candidate) never share
    one."""
    return f"attestations/{model_name}/v{version}.json"


def record_attestation(
    client: MlflowClient, model_name: str, version: str, run_id: str, document: dict[str, Any]
) -> str:
    """Store ``document`` as ``version``'s attestation (an artifact of its MLflow run, at a
    path named by the version) and tag the version with its path and sha256; returns its URI."""
    path = artifact_path(model_name, version)
    client.log_dict(run_id, document, path)
    client.set_model_version_tag(model_name, version, tag.ATTESTATION_PATH, path)
    client.set_model_version_tag(
        model_name, version, tag.ATTESTATION_SHA256, document["document_sha256"]
    )
    return f"runs:/{run_id}/{path}"


def read_attestation(client: MlflowClient, version: ModelVersion) -> dict[str, Any] | None:
    """``version``'s attestation, or None when it has none (registered before attestations,
    or before they were kept per version and not the one its run's record is about)."""
    import json
    import tempfile

    from mlflow.exceptions import MlflowException

    path = version.tags.get(tag.ATTESTATION_PATH, LEGACY_ARTIFACT_PATH)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            document = json.loads(
                Path(client.download_artifacts(version.run_id, path, tmp)).read_text()
            )
    except (MlflowException, OSError, ValueError):
        return None
    if str(document.get("version")) != str(version.version):
        return None  # a shared record of the run, about another version
    return document


def attestation_of(tracking_uri: str, version: VersionView) -> dict[str, Any] | None:
    """``version``'s attestation, read in place from a local artifact store (no MLflow
    import), else through MLflow; None when it has none of its own."""
    import json

    from mlops_assets.core.registry.reader import run_artifacts

    root = run_artifacts(tracking_uri, version.run_id)
    if root is None:
        from mlops_assets.core.registry.client import mlflow_client, registry_errors

        with registry_errors(tracking_uri):
            client = mlflow_client(tracking_uri)
            return read_attestation(client, client.get_model_version(version.name, version.version))
    path = root / version.tags.get(tag.ATTESTATION_PATH, LEGACY_ARTIFACT_PATH)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if str(document.get("version")) == version.version else None
