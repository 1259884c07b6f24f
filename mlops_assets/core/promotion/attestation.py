"""Attestation: a versioned, self-hashed record of what a registered version was made from,
and its verification from the stored artifacts.

The document names every input by content hash (benchmark, integrated dataset, each
contribution's file, the baseline's and the candidate's model files), with metrics, the
promotion decision and package versions. ``document_sha256`` is the sha256 of the document's
canonical JSON without that field, so changing any byte of the record shows; recomputing the
input hashes from what is stored shows whether the record still describes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from mlops_assets.core.registry import tags as tag

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_assets.core.intake.report import ContributionReport
    from mlops_assets.core.modeling.candidate import Candidate
    from mlops_assets.core.promotion.gate import PromotionDecision

SCHEMA = "mlops-assets/attestation@1"
_PACKAGES = ("mlops-assets", "dagster", "mlflow", "scikit-learn", "skops", "pandas", "duckdb")


def attested_contributions(
    reports: list[ContributionReport], ids: list[str]
) -> list[dict[str, Any]]:
    """What an attestation records of each contribution in ``ids``, from its intake report."""
    by_id = {r.contribution_id: r for r in reports}
    return [
        {
            "contribution_id": cid,
            "contributor": by_id[cid].contributor,
            "landing_path": by_id[cid].landing_path,
            "file_sha256": by_id[cid].sha256,
            "rows_accepted": by_id[cid].rows_clean,
            "quality_score": by_id[cid].quality_score,
            "snapshot": by_id[cid].snapshot,
            # Under what terms the data was given, as its contributor's sidecar said.
            "license": by_id[cid].license or None,
            "consent_at": by_id[cid].consent_at or None,
        }
        for cid in ids
        if cid in by_id
    ]


def document_sha256(document: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``document`` without its own ``document_sha256``."""
    body = {k: v for k, v in document.items() if k != "document_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def seal(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its schema, package versions and ``document_sha256``."""
    body = {"schema": SCHEMA, **document, "packages": package_versions()}
    return {**body, "document_sha256": document_sha256(body)}


def attestation_document(
    *,
    model_name: str,
    version: str,
    candidate: dict[str, Any],
    benchmark_sha256: str,
    dataset_sha256: str,
    metrics: dict[str, float],
    decision: dict[str, Any],
    dagster_run_id: str,
    contributions: list[dict[str, Any]] = (),  # type: ignore[assignment]
    baseline: dict[str, Any] | None = None,
    baseline_metrics: dict[str, float] | None = None,
    deltas: dict[str, float] | None = None,
    test: dict[str, Any] | None = None,
    valuation: dict[str, Any] | None = None,
    task: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The sealed attestation of one registered version. ``candidate`` names the version's
    model (``version``, ``model_uuid``, ``model_uri``, ``mlflow_run_id``, and the sha256 of
    every file as ``artifact_sha256``); ``baseline`` the same of the model it was compared
    with, None for a first model (a cold start), which has no comparison. ``valuation``: the
    new contributions' values and what it takes to recompute them; ``task``: the task the
    version predicts (``TaskSchema.attested``)."""
    from datetime import UTC, datetime

    return seal(
        {
            "model_name": model_name,
            "version": version,
            "task": task,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "dagster_run_id": dagster_run_id,
            "benchmark_dataset_sha256": benchmark_sha256,
            "integrated_dataset_sha256": dataset_sha256,
            "contributions": list(contributions),
            "candidate": candidate,
            "baseline": baseline,
            "metrics": metrics,
            "baseline_metrics": baseline_metrics,
            "deltas": deltas,
            "test": test,
            "decision": decision,
            "valuation": valuation,
        }
    )


@dataclass(frozen=True)
class Finding:
    """One recomputed hash against the attested one."""

    what: str
    holds: bool
    detail: str = ""


def verify(
    document: dict[str, Any],
    *,
    model_digests: Callable[[str, str], dict[str, str] | None],
    dataset_sha256: Callable[[str], str | None],
    contribution_sha256: Callable[[dict[str, Any]], str | None],
    revalue: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
) -> list[Finding]:
    """Recompute what ``document`` attests and say, item by item, whether it holds.

    The callables recompute from storage: the file digests of a registered model version
    (by model name and version; the baseline may belong to another registered model),
    the content hash of a dataset (``"benchmark"`` or ``"integrated"``), the sha256 of a
    contribution's original file; None when the thing is gone (which does not hold).
    """
    findings = [
        Finding(
            "document",
            document.get("document_sha256") == document_sha256(document),
            "the record itself is unchanged",
        ),
        Finding("schema", document.get("schema") == SCHEMA, str(document.get("schema"))),
    ]
    for role in ("candidate", "baseline"):
        model = document.get(role)
        if model is None and role == "baseline":
            findings.append(Finding("baseline", True, "none: the first model (a cold start)"))
            continue
        model = model or {}
        name = str(model.get("model_name") or document.get("model_name"))
        actual = model_digests(name, str(model.get("version")))
        findings.append(
            Finding(
                f"{role} model files (v{model.get('version')})",
                actual is not None and actual == model.get("artifact_sha256"),
                _difference(model.get("artifact_sha256") or {}, actual),
            )
        )
    for name in ("benchmark", "integrated"):
        expected = document.get(f"{name}_dataset_sha256")
        actual = dataset_sha256(name)
        findings.append(
            Finding(
                f"{name} dataset",
                expected is not None and actual == expected,
                f"{expected or 'not recorded'} vs {actual or 'missing'}",
            )
        )
    for contribution in document.get("contributions", []):
        actual = contribution_sha256(contribution)
        findings.append(
            Finding(
                f"contribution {contribution.get('contribution_id')}",
                actual is not None and actual == contribution.get("file_sha256"),
                f"{contribution.get('file_sha256')} vs {actual or 'missing'}",
            )
        )
    valuation = document.get("valuation") or {}
    if revalue is not None and valuation.get("values"):
        findings.append(_revalued(valuation, revalue(valuation)))
    return findings


def _revalued(recorded: dict[str, Any], again: dict[str, Any] | None) -> Finding:
    what = f"contribution values ({len(recorded['values'])}, {recorded['method']})"
    if again is None:
        return Finding(what, False, "the valued dataset cannot be read")
    keys = ("value", "value_interval", "loo_delta", "status")
    before = {v["contribution_id"]: [v[k] for k in keys] for v in recorded["values"]}
    after = {v["contribution_id"]: [v[k] for k in keys] for v in again["values"]}
    differ = sorted(cid for cid in before if not _close(before[cid], after.get(cid)))
    if differ:
        return Finding(what, False, "recomputed differently: " + ", ".join(differ))
    return Finding(what, True, "recomputed with the same seed: every value holds")


def _close(a: list[Any], b: list[Any] | None, tolerance: float = 1e-6) -> bool:
    """Same status, and value, interval and leave-one-out delta within ``tolerance``
    (another BLAS may differ in the last digits)."""
    if b is None or a[3] != b[3]:
        return False
    numbers_a, numbers_b = [a[0], *a[1], a[2]], [b[0], *b[1], b[2]]
    return all(abs(x - y) <= tolerance for x, y in zip(numbers_a, numbers_b, strict=True))


def _difference(expected: dict[str, str], actual: dict[str, str] | None) -> str:
    if actual is None:
        return "the model's files cannot be read"
    changed = sorted(
        path for path in set(expected) | set(actual) if expected.get(path) != actual.get(path)
    )
    return f"{len(expected)} files match" if not changed else "differs: " + ", ".join(changed)


@dataclass(frozen=True)
class Provenance:
    """What a registration's attestation names besides the models: the Dagster run, the
    benchmark's content hash, the record of each contribution in the training data, and the
    task (``TaskSchema.attested``)."""

    dagster_run_id: str
    benchmark_sha256: str
    contributions: list[dict[str, Any]]
    task: dict[str, str] | None = None


def attested_model(
    tracking_uri: str,
    model_name: str,
    version: str,
    *,
    model_uuid: str | None,
    model_uri: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """How an attestation names a registered model: its version, ids, and the sha256 of
    every one of its files (the weights, not only the metadata)."""
    from mlops_assets.core.registry.models import model_file_digests

    named: dict[str, Any] = {"version": version, "model_uuid": model_uuid}
    if model_uri is not None:
        named["model_uri"] = model_uri
    if run_id is not None:
        named["mlflow_run_id"] = run_id
    return {**named, "artifact_sha256": model_file_digests(tracking_uri, model_name, version)}


def candidate_attestation(
    client: MlflowClient,
    *,
    tracking_uri: str,
    model_name: str,
    version: str,
    candidate: Candidate,
    decision: PromotionDecision,
    promoted: bool,
    reason: str,
    provenance: Provenance,
) -> dict[str, Any]:
    """The sealed attestation of a candidate's version: what it was trained on, the files of
    both models, the metrics, the paired test and the decision."""
    registered = client.get_model_version(model_name, version)
    baseline_name = candidate.baseline_model_name or model_name
    baseline = client.get_model_version(baseline_name, candidate.baseline_version)
    return attestation_document(
        model_name=model_name,
        version=version,
        dagster_run_id=provenance.dagster_run_id,
        benchmark_sha256=provenance.benchmark_sha256,
        dataset_sha256=candidate.data_sha256,
        contributions=provenance.contributions,
        task=provenance.task,
        candidate=attested_model(
            tracking_uri,
            model_name,
            version,
            model_uuid=candidate.model_uuid,
            model_uri=candidate.model_uri,
            run_id=registered.run_id,
        ),
        baseline={
            "model_name": baseline_name,
            **attested_model(
                tracking_uri,
                baseline_name,
                str(candidate.baseline_version),
                model_uuid=baseline.tags.get(tag.MODEL_UUID),
            ),
        },
        metrics=candidate.metrics,
        baseline_metrics=candidate.baseline_metrics,
        deltas=candidate.deltas,
        test={
            "name": decision.test or "none",
            "p_value": decision.p_value,
            **candidate.paired_outcome,
            "delta_intervals": candidate.delta_intervals,
        },
        decision={"metric": decision.metric, "promoted": promoted, "reason": reason},
        valuation={
            **candidate.valuation,
            "excluded_contributions": candidate.excluded_contributions,
        },
    )
