"""Registering a candidate and deciding its promotion, as one sequence that a crash at any
point leaves recoverable.

Order: the version is registered (tagged ``registration=started``), the decision is made and
its tags written, the attestation written, the version tagged ``registration=complete``;
only then do ``challenger`` and (when promoted) ``champion`` move. So a champion always has
its decision and attestation. A rerun for the same logged model finds the version a crashed
run left and completes it instead of registering another; versions that a dead run left
``started`` and nobody resumes are tagged ``abandoned``, with the reason, never promoted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from mlops_assets.core.modeling.evaluation import benchmark_tags
from mlops_assets.core.registry.client.promotion import (
    PairedOutcome,
    PromotionDecision,
    PromotionGate,
)
from mlops_assets.core.registry.client.promotion import decide_promotion as gate_decision
from mlops_assets.errors import UpstreamMissingError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

REGISTRATION_TAG = "registration"  # started | complete | abandoned


@dataclass(frozen=True)
class Candidate:
    """What ``trained_model`` hands to registration (its materialization metadata)."""

    model_uri: str
    model_id: str
    model_uuid: str
    mlflow_run_id: str
    data_sha256: str
    contributions: list[str]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    deltas: dict[str, float]
    paired_outcome: dict[str, int]
    baseline_version: str
    baseline_model_name: str
    baseline_alias: str | None = None
    estimator: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> Candidate:
        if "paired_outcome" not in metadata:
            raise UpstreamMissingError(
                "the trained_model materialization has no paired benchmark outcome (it "
                "predates the promotion test)",
                hint="materialize trained_model again, then registered_model_version",
            )
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in metadata.items() if k in names}
        known["baseline_alias"] = known.get("baseline_alias") or None
        return cls(**known, extra={k: v for k, v in metadata.items() if k not in names})


@dataclass(frozen=True)
class Registration:
    """The outcome: the version, the decision and its reason, where the champion is now."""

    version: str
    model_uuid: str
    model_id: str
    run_id: str
    promoted: bool
    reason: str
    decision: PromotionDecision
    champion_version: str | None
    aliases: list[str]
    attestation_sha256: str
    attestation_uri: str
    resumed: bool = False
    abandoned: list[str] = field(default_factory=list)


def register_candidate(
    client: MlflowClient,
    *,
    model_name: str,
    candidate: Candidate,
    gate: PromotionGate,
    dagster_run_id: str,
    attest: Callable[[str, PromotionDecision, bool, str], dict[str, Any]],
    run_is_over: Callable[[str], bool],
) -> Registration:
    """Register ``candidate`` (or complete the registration a crashed run left of it),
    decide its promotion against the champion as it is now, attest it, then move the aliases.

    ``attest(version, decision, promoted, reason)`` returns the sealed attestation document;
    ``run_is_over(dagster_run_id)`` says whether the run that left a ``started`` version is
    finished or gone (its version is then abandoned, unless it is this candidate's).
    """
    from mlops_assets.core.registry.client import (
        CHALLENGER,
        CHAMPION,
        get_version_by_alias,
        promote_to_champion,
        record_attestation,
        register_model_version,
    )

    existing = _version_of_model(client, model_name, candidate.model_id)
    if existing is not None and existing.tags.get(REGISTRATION_TAG) == "complete":
        # Registered and decided already (a rerun after the aliases moved): nothing to redo.
        return _finished(client, model_name, existing, resumed=True)
    abandoned = _abandon_orphans(client, model_name, candidate.model_id, run_is_over)
    if existing is None:
        import mlflow

        info = mlflow.models.get_model_info(candidate.model_uri)
        version = register_model_version(
            client,
            info,
            model_name=model_name,
            tags={
                REGISTRATION_TAG: "started",
                "data_sha256": candidate.data_sha256,
                "contributions": json.dumps(candidate.contributions),
                "baseline_version": candidate.baseline_version,
                "deltas": json.dumps(candidate.deltas),
                "dagster_run_id": dagster_run_id,
                "mlflow_run_id": candidate.mlflow_run_id,
                **benchmark_tags(candidate.metrics),
            },
        ).version
        run_id = info.run_id
    else:
        version, run_id = str(existing.version), existing.run_id

    champion = get_version_by_alias(client, model_name, CHAMPION)
    champion_version = str(champion.version) if champion else None
    decision = gate_decision(
        gate,
        candidate_value=candidate.metrics[gate.metric],
        baseline_value=candidate.baseline_metrics[gate.metric],
        paired=PairedOutcome(**candidate.paired_outcome),
        champion_version=champion_version,
        candidate_version=version,
    )
    promote, reason = decision.promote, decision.reason
    if moved := _baseline_moved(client, model_name, candidate):
        # The alias the baseline was found by moved after this candidate was scored.
        promote = False
        reason = f"not promoted: {moved} since this candidate was evaluated; retrain to compare"
    tags = {"promoted": str(promote).lower(), "promotion_reason": reason}
    if decision.p_value is not None:
        tags["promotion_p_value"] = f"{decision.p_value:.6f}"
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    document = attest(version, decision, promote, reason)
    uri = record_attestation(client, model_name, version, run_id, document)
    client.set_model_version_tag(model_name, version, REGISTRATION_TAG, "complete")
    # The aliases last: whatever they point at is decided and attested.
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    if promote:
        promote_to_champion(client, model_name, version)
    aliases = sorted(client.get_model_version(model_name, version).aliases)
    return Registration(
        version=version,
        model_uuid=candidate.model_uuid,
        model_id=candidate.model_id,
        run_id=run_id,
        promoted=promote,
        reason=reason,
        decision=decision,
        champion_version=version if promote else champion_version,
        aliases=aliases,
        attestation_sha256=document["document_sha256"],
        attestation_uri=uri,
        resumed=existing is not None,
        abandoned=abandoned,
    )


def _version_of_model(client: MlflowClient, model_name: str, model_id: str) -> ModelVersion | None:
    versions = client.search_model_versions(
        f"name = '{model_name}' AND tags.model_id = '{model_id}'"
    )
    return versions[0] if versions else None


def _abandon_orphans(
    client: MlflowClient,
    model_name: str,
    model_id: str,
    run_is_over: Callable[[str], bool],
) -> list[str]:
    """Tag ``abandoned`` every version a finished or dead run left half-registered."""
    abandoned = []
    for version in client.search_model_versions(
        f"name = '{model_name}' AND tags.{REGISTRATION_TAG} = 'started'"
    ):
        run_id = version.tags.get("dagster_run_id", "")
        if version.tags.get("model_id") == model_id or not run_is_over(run_id):
            continue
        number = str(version.version)
        client.set_model_version_tag(model_name, number, REGISTRATION_TAG, "abandoned")
        client.set_model_version_tag(
            model_name,
            number,
            "promotion_reason",
            f"registration did not complete: run {run_id} ended before v{number} was decided; "
            "never promoted",
        )
        abandoned.append(number)
    return abandoned


def _finished(
    client: MlflowClient, model_name: str, version: ModelVersion, *, resumed: bool
) -> Registration:
    from mlops_assets.core.registry.client.attestation import PATH_TAG, SHA256_TAG

    tags = version.tags
    promoted = tags.get("promoted") == "true"
    decision = PromotionDecision(
        promoted,
        tags.get("promotion_reason", ""),
        "",
        0.0,
        0.0,
        0.0,
        float(tags["promotion_p_value"]) if "promotion_p_value" in tags else None,
    )
    return Registration(
        version=str(version.version),
        model_uuid=tags.get("model_uuid", ""),
        model_id=tags.get("model_id", ""),
        run_id=version.run_id,
        promoted=promoted,
        reason=decision.reason,
        decision=decision,
        champion_version=str(version.version) if promoted else None,
        aliases=sorted(version.aliases),
        attestation_sha256=tags.get(SHA256_TAG, ""),
        attestation_uri=f"runs:/{version.run_id}/{tags.get(PATH_TAG, '')}",
        resumed=resumed,
    )


def _baseline_moved(client: MlflowClient, model_name: str, candidate: Candidate) -> str:
    """How the alias the baseline was found by moved since, or "" when it did not (or the
    baseline was pinned to a version or file)."""
    from mlops_assets.core.registry.client import get_version_by_alias

    alias = candidate.baseline_alias
    if not alias:
        return ""
    now = get_version_by_alias(client, candidate.baseline_model_name or model_name, alias)
    now_version = str(now.version) if now is not None else "none"
    if now_version == str(candidate.baseline_version):
        return ""
    return f"{alias} moved from v{candidate.baseline_version} to v{now_version}"


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
    dagster_run_id: str,
    benchmark_sha256: str,
    contributions: list[dict[str, Any]],
) -> dict[str, Any]:
    """The sealed attestation of a candidate's version: what it was trained on, the files of
    both models, the metrics, the paired test and the decision."""
    from mlops_assets.core.registry.client import model_file_digests
    from mlops_assets.core.registry.client.attestation import attestation_document

    registered = client.get_model_version(model_name, version)
    baseline_name = candidate.baseline_model_name or model_name
    baseline = client.get_model_version(baseline_name, candidate.baseline_version)
    return attestation_document(
        model_name=model_name,
        version=version,
        dagster_run_id=dagster_run_id,
        benchmark_sha256=benchmark_sha256,
        dataset_sha256=candidate.data_sha256,
        contributions=contributions,
        candidate={
            "version": version,
            "model_uuid": candidate.model_uuid,
            "model_uri": candidate.model_uri,
            "mlflow_run_id": registered.run_id,
            "artifact_sha256": model_file_digests(tracking_uri, model_name, version),
        },
        baseline={
            "model_name": baseline_name,
            "version": str(candidate.baseline_version),
            "model_uuid": baseline.tags.get("model_uuid"),
            "artifact_sha256": model_file_digests(
                tracking_uri, baseline_name, candidate.baseline_version
            ),
        },
        metrics=candidate.metrics,
        baseline_metrics=candidate.baseline_metrics,
        deltas=candidate.deltas,
        test={"name": "exact McNemar", "p_value": decision.p_value, **candidate.paired_outcome},
        decision={"metric": decision.metric, "promoted": promoted, "reason": reason},
    )
