"""Registering a version: the one path every version enters the registry by
(:func:`register_version`, also a cold start's and an imported file's, see ``baseline``), and
a candidate's registration and promotion decision, as one sequence that a crash at any point
leaves recoverable.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_assets.core.modeling.candidate import Candidate
from mlops_assets.core.modeling.evaluation import benchmark_tags
from mlops_assets.core.promotion.attestation import Provenance, candidate_attestation
from mlops_assets.core.promotion.gate import PairedOutcome, PromotionDecision, PromotionGate
from mlops_assets.core.promotion.gate import decide_promotion as gate_decision
from mlops_assets.core.registry import tags as tag
from mlops_assets.core.registry.webhooks import VersionEvent

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

    from mlops_assets.core.registry.client import RegisteredVersion


def register_version(
    client: MlflowClient,
    model_info: ModelInfo,
    *,
    model_name: str,
    metrics: dict[str, float],
    tags: dict[str, str],
) -> RegisteredVersion:
    """Register the logged model ``model_info`` as a new version of ``model_name``, tagged
    with its benchmark ``metrics`` (``benchmark_<metric>``) and ``tags`` (the adapter adds
    ``model_uuid`` and ``model_id``). Every version is registered here: a candidate, a cold
    start's first model, an imported file."""
    from mlops_assets.core.registry.client import register_model_version

    return register_model_version(
        client, model_info, model_name=model_name, tags={**tags, **benchmark_tags(metrics)}
    )


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
    previous_champion: str | None = None  # the champion it replaced, when promoted

    def to_metadata(self, model_name: str, metric: str, candidate: Candidate) -> dict[str, Any]:
        """What ``registered_model_version`` records."""
        return {
            "model_name": model_name,
            "version": self.version,
            "aliases": self.aliases,
            "promoted": self.promoted,
            "reason": self.reason,
            "primary_metric": metric,
            "promotion_test": self.decision.test or "not run",
            "promotion_p_value": self.decision.p_value
            if self.decision.p_value is not None
            else "not run",
            "champion_version": self.champion_version or "",
            "model_uuid": self.model_uuid,
            "model_id": self.model_id,
            "data_sha256": candidate.data_sha256,
            "attestation_sha256": self.attestation_sha256,
            "resumed_registration": self.resumed,
        }

    def version_event(self, model_name: str, candidate: Candidate, metric: str) -> VersionEvent:
        """The ``data`` of this registration's webhook events."""
        return VersionEvent(
            model_name=model_name,
            version=self.version,
            aliases=self.aliases,
            promoted=self.promoted,
            reason=self.reason,
            model_uuid=self.model_uuid,
            metrics={k: candidate.metrics[k] for k in dict.fromkeys((metric, "accuracy"))},
            contributions=candidate.contributions,
            contribution_values=_values_tag(candidate),
            delta_intervals=candidate.delta_intervals,
            attestation_sha256=self.attestation_sha256,
            previous_version=self.previous_champion,
        )


def register_candidate(
    client: MlflowClient,
    *,
    tracking_uri: str,
    model_name: str,
    candidate: Candidate,
    gate: PromotionGate,
    provenance: Provenance,
    run_is_over: Callable[[str], bool],
) -> Registration:
    """Register ``candidate`` (or complete the registration a crashed run left of it),
    decide its promotion against the champion as it is now (the gate, then the guard against
    a champion that moved since the candidate was scored), attest it, then move the aliases.

    ``run_is_over(dagster_run_id)`` says whether the run that left a ``started`` version is
    finished or gone (its version is then abandoned, unless it is this candidate's).
    """
    dagster_run_id = provenance.dagster_run_id
    from mlops_assets.core.promotion.champion import promote_to_champion
    from mlops_assets.core.registry.attestations import record_attestation
    from mlops_assets.core.registry.client import get_version_by_alias
    from mlops_assets.core.registry.tags import CHALLENGER, CHAMPION

    existing = _version_of_model(client, model_name, candidate.model_id)
    if existing is not None and existing.tags.get(tag.REGISTRATION) == "complete":
        # Registered and decided already; a run killed before the aliases moved left only
        # them to do.
        _move_aliases(client, model_name, existing)
        existing = client.get_model_version(model_name, str(existing.version))
        return _finished(client, model_name, existing, resumed=True)
    abandoned = _abandon_orphans(client, model_name, candidate.model_id, run_is_over)
    if existing is None:
        import mlflow

        info = mlflow.models.get_model_info(candidate.model_uri)
        version = register_version(
            client,
            info,
            model_name=model_name,
            metrics=candidate.metrics,
            tags={
                tag.REGISTRATION: "started",
                tag.DATA_SHA256: candidate.data_sha256,
                tag.TRAINING_FINGERPRINT: candidate.training_fingerprint,
                tag.CONTRIBUTIONS: json.dumps(candidate.contributions),
                tag.BASELINE_VERSION: candidate.baseline_version,
                tag.DELTAS: json.dumps(candidate.deltas),
                tag.DELTA_INTERVALS: json.dumps(candidate.delta_intervals),
                tag.CONTRIBUTION_VALUES: json.dumps(_values_tag(candidate)),
                tag.EXCLUDED_CONTRIBUTIONS: json.dumps(candidate.excluded_contributions),
                tag.DAGSTER_RUN_ID: dagster_run_id,
                tag.MLFLOW_RUN_ID: candidate.mlflow_run_id,
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
        interval=candidate.delta_intervals[gate.metric],
        champion_version=champion_version,
        candidate_version=version,
    )
    promote, reason = decision.promote, decision.reason
    if moved := _baseline_moved(client, model_name, candidate):
        # The alias the baseline was found by moved after this candidate was scored.
        promote = False
        reason = f"not promoted: {moved} since this candidate was evaluated; retrain to compare"
    tags = {
        tag.PROMOTED: str(promote).lower(),
        tag.PROMOTION_REASON: reason,
        tag.DECIDED_AGAINST: champion_version or "none",
    }
    if decision.p_value is not None:
        tags[tag.PROMOTION_P_VALUE] = f"{decision.p_value:.6f}"
        tags[tag.PROMOTION_TEST] = decision.test
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    document = candidate_attestation(
        client,
        tracking_uri=tracking_uri,
        model_name=model_name,
        version=version,
        candidate=candidate,
        decision=decision,
        promoted=promote,
        reason=reason,
        provenance=provenance,
    )
    uri = record_attestation(client, model_name, version, run_id, document)
    client.set_model_version_tag(model_name, version, tag.REGISTRATION, "complete")
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
        previous_champion=champion_version if promote else None,
    )


def _values_tag(candidate: Candidate) -> list[dict[str, Any]]:
    """The per-contribution values, compact enough for a version tag."""
    return [
        {
            k: v[k]
            for k in ("contribution_id", "value", "value_interval", "loo_delta", "status", "reason")
        }
        for v in candidate.valuation.get("values", [])
    ]


def _move_aliases(client: MlflowClient, model_name: str, version: ModelVersion) -> None:
    """The alias moves of a decided version: ``challenger`` unless a newer version has it,
    ``champion`` when promoted and the champion is still the one it was decided against (a
    champion that moved since, by hand or by a newer version, is left alone)."""
    from mlops_assets.core.promotion.champion import promote_to_champion
    from mlops_assets.core.registry.client import get_version_by_alias
    from mlops_assets.core.registry.tags import CHALLENGER, CHAMPION

    number = str(version.version)
    challenger = get_version_by_alias(client, model_name, CHALLENGER)
    if challenger is None or int(challenger.version) < int(number):
        client.set_registered_model_alias(model_name, CHALLENGER, number)
    champion = get_version_by_alias(client, model_name, CHAMPION)
    now = str(champion.version) if champion is not None else "none"
    promoted = version.tags.get(tag.PROMOTED) == "true"
    if promoted and now != number and now == version.tags.get(tag.DECIDED_AGAINST):
        promote_to_champion(client, model_name, number)


def _version_of_model(client: MlflowClient, model_name: str, model_id: str) -> ModelVersion | None:
    versions = client.search_model_versions(
        f"name = '{model_name}' AND tags.{tag.MODEL_ID} = '{model_id}'"
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
        f"name = '{model_name}' AND tags.{tag.REGISTRATION} = 'started'"
    ):
        run_id = version.tags.get(tag.DAGSTER_RUN_ID, "")
        if version.tags.get(tag.MODEL_ID) == model_id or not run_is_over(run_id):
            continue
        number = str(version.version)
        client.set_model_version_tag(model_name, number, tag.REGISTRATION, "abandoned")
        client.set_model_version_tag(
            model_name,
            number,
            tag.PROMOTION_REASON,
            f"registration did not complete: run {run_id} ended before v{number} was decided; "
            "never promoted",
        )
        abandoned.append(number)
    return abandoned


def _finished(
    client: MlflowClient, model_name: str, version: ModelVersion, *, resumed: bool
) -> Registration:
    tags = version.tags
    promoted = tags.get(tag.PROMOTED) == "true"
    decision = PromotionDecision(
        promoted,
        tags.get(tag.PROMOTION_REASON, ""),
        "",
        0.0,
        0.0,
        0.0,
        float(tags[tag.PROMOTION_P_VALUE]) if tag.PROMOTION_P_VALUE in tags else None,
        tags.get(tag.PROMOTION_TEST, ""),
    )
    return Registration(
        version=str(version.version),
        model_uuid=tags.get(tag.MODEL_UUID, ""),
        model_id=tags.get(tag.MODEL_ID, ""),
        run_id=version.run_id,
        promoted=promoted,
        reason=decision.reason,
        decision=decision,
        champion_version=str(version.version) if promoted else None,
        aliases=sorted(version.aliases),
        attestation_sha256=tags.get(tag.ATTESTATION_SHA256, ""),
        attestation_uri=f"runs:/{version.run_id}/{tags.get(tag.ATTESTATION_PATH, '')}",
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
