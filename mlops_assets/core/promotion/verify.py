"""``mlops verify``: recompute every hash a version's attestation records (its model files
and its baseline's, the benchmark, the integrated dataset, each contribution's kept bytes),
replay its contributions' valuation, and compare.

Reads a local registry, store and landing zone in place (no MLflow or Dagster import); the
work is the hashing and the replayed valuation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.core.common import layout
from mlops_assets.core.promotion.attestation import Finding, verify
from mlops_assets.core.registry import tags as tag
from mlops_assets.errors import MlopsError, ModelNotFoundError

if TYPE_CHECKING:
    from mlops_assets.core.storage.places import Landing, Store
    from mlops_assets.task import TaskSchema


@dataclass(frozen=True)
class Verification:
    """What was checked of ``model_name`` v``version``, and whether all of it held."""

    model_name: str
    version: str
    findings: list[Finding]

    @property
    def holds(self) -> bool:
        return all(f.holds for f in self.findings)


def verify_version(
    *,
    tracking_uri: str,
    model_name: str,
    version: str,
    task: TaskSchema,
    store: Store,
    landing: Callable[[], Landing],
) -> Verification:
    """Check ``model_name`` v``version``'s attestation against what is stored now: the
    registry tag, the model files, the datasets in ``store``, each contribution's bytes (kept
    in ``store``, else the file in the landing zone ``landing()`` opens) and the valuation.

    Raises ModelNotFoundError when the version does not exist or has no attestation of its
    own; anything that cannot be read fails its finding instead of the whole check."""
    from mlops_assets.core.common.hashing import file_sha256, frame_sha256
    from mlops_assets.core.registry.attestations import attestation_of
    from mlops_assets.core.registry.models import version_file_digests
    from mlops_assets.core.registry.reader import find_version
    from mlops_assets.core.storage.places import stored_file

    found = find_version(tracking_uri, model_name, version=version)
    if found is None:
        raise ModelNotFoundError(
            f"{model_name} has no version {version}",
            hint="`mlops model show` shows the champion's number",
        )
    document = attestation_of(tracking_uri, found)
    if document is None:
        raise ModelNotFoundError(
            f"{model_name} v{version} has no attestation of its own: it was registered "
            "before versions were attested one by one",
            hint="versions registered since are attested; retrain to get one that is",
        )

    def model_digests(name: str, number: str) -> dict[str, str] | None:
        try:
            return version_file_digests(tracking_uri, name, number)
        except (OSError, MlopsError):
            return None

    def dataset_sha256(which: str) -> str | None:
        attested = str(document.get("integrated_dataset_sha256") or "")
        if which == "benchmark":
            key = layout.BENCHMARK
        elif attested:
            key = layout.integrated(attested)
        else:
            return None  # a record without the hash cannot hold
        path = stored_file(store, key)
        return frame_sha256(_read_parquet(path)) if path else None

    def contribution_sha256(contribution: dict[str, Any]) -> str | None:
        """The kept bytes when there are (the landing file may have changed since), else
        the landing file."""
        try:
            if snapshot := contribution.get("snapshot"):
                path = stored_file(store, f"{layout.ORIGINALS}/{snapshot}")
                return file_sha256(path) if path else None
            with landing().local_copy(contribution["landing_path"]) as local:
                return file_sha256(local)
        except (OSError, KeyError, TypeError, ValueError, MlopsError):
            return None

    def revalue(valuation: dict[str, Any]) -> dict[str, Any] | None:
        from mlops_assets.core.modeling.valuation import recompute

        data = stored_file(store, layout.integrated(str(valuation.get("dataset_sha256"))))
        benchmark = stored_file(store, layout.BENCHMARK)
        if data is None or benchmark is None:
            return None
        frame, rows = _read_parquet(data), _read_parquet(benchmark)
        return recompute(valuation, frame, rows, task).to_dict()

    findings = verify(
        document,
        model_digests=model_digests,
        dataset_sha256=dataset_sha256,
        contribution_sha256=contribution_sha256,
        revalue=revalue,
    )
    findings.insert(
        0,
        Finding(
            "registry tag",
            found.tags.get(tag.ATTESTATION_SHA256) == document.get("document_sha256"),
            "attestation_sha256 on the version matches the record",
        ),
    )
    return Verification(model_name, version, findings)


def _read_parquet(path: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(path)
