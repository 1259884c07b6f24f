"""The baseline to beat, and the versions registered on its way: on a cold start (no
``champion`` yet) the first model, trained on the reference data, and a trusted local file
imported once. Both enter the registry by the one registration path (``registration``),
are attested before ``champion`` moves, and are announced like any promotion.

Finding, loading and scoring the baseline is modeling's (``core.modeling.baseline``).
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_assets.core.common.hashing import frame_sha256
from mlops_assets.core.modeling.baseline import (
    Baseline,
    BaselinePolicy,
    ColdStart,
    find_registered_baseline,
    load_baseline_file,
    train_first_model,
)
from mlops_assets.core.promotion.attestation import attestation_document, attested_model
from mlops_assets.core.promotion.champion import promote_to_champion
from mlops_assets.core.promotion.registration import register_version
from mlops_assets.core.registry import tags as tag
from mlops_assets.core.registry.attestations import record_attestation
from mlops_assets.core.registry.client import get_version_by_alias
from mlops_assets.core.registry.model_files import skops_untrusted_types
from mlops_assets.core.registry.models import log_sklearn_model
from mlops_assets.core.registry.tags import CHAMPION
from mlops_assets.core.registry.webhooks import VersionEvent
from mlops_assets.errors import ModelNotFoundError, UntrustedModelError
from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    from mlflow import MlflowClient

COLD_START_REASON = "cold start: first model, trained on the reference data alone"


def resolve_baseline(
    client: "MlflowClient",
    *,
    tracking_uri: str,
    policy: BaselinePolicy,
    model_name: str,
    benchmark: pd.DataFrame,
    task: TaskSchema,
    cold_start: ColdStart,
    tags: dict[str, str],
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> Baseline:
    """The baseline ``policy`` names, validated and scored on ``benchmark``.

    - A registry source is looked up and downloaded with retries on transient failures. When
      it is the ``champion`` of ``model_name`` and there is none yet (a cold start), a model
      is trained on the reference train part, registered with ``tags`` and aliased champion.
    - A local file is imported once: registered as a version of ``model_name`` tagged with
      its sha256 (found again by it next time), and aliased champion on a cold start.
    Registering needs an active MLflow run.
    """
    source = policy.source
    if source.path is not None:
        return _import_file(client, policy, model_name, benchmark, task, tags)
    found = find_registered_baseline(
        client,
        tracking_uri=tracking_uri,
        policy=policy,
        benchmark=benchmark,
        task=task,
        on_retry=on_retry,
    )
    if found is not None:
        return found
    if source.model_name == model_name and source.alias == CHAMPION:
        return _cold_start(client, tracking_uri, model_name, benchmark, task, cold_start, tags)
    raise ModelNotFoundError(
        f"the baseline source {source} does not exist in the registry",
        hint="check MLOPS_BASELINE_SOURCE: `mlops model show --json` lists the versions",
    )


def cold_start_registration(baseline: Baseline) -> dict[str, Any]:
    """What ``registered_model_version`` shows of a cold start's first version: one that
    ``baseline_model`` registered and made champion itself (a candidate trained on the
    same data would be the same model, so none is registered after it)."""
    origin = (
        "trained on the reference data alone"
        if baseline.load is None
        else f"imported from {baseline.source}"
    )
    return {
        "model_name": baseline.model_name,
        "version": baseline.version,
        "aliases": [CHAMPION],
        "promoted": True,
        "reason": COLD_START_REASON if baseline.load is None else f"cold start: {origin}",
        "registered_by": f"baseline_model: no champion existed, so v{baseline.version} was "
        f"{origin} and became champion",
        "champion_version": baseline.version,
        "model_uuid": baseline.model_uuid,
        "contributions": [],
        "contributors": [],
        "benchmark_accuracy": baseline.evaluation.metrics["accuracy"],
        "attestation_sha256": baseline.attestation_sha256 or "",
    }


def cold_start_event(baseline: Baseline) -> VersionEvent:
    """The event of a cold start: the first version, registered as champion."""
    return VersionEvent(
        model_name=baseline.model_name,
        version=baseline.version,
        aliases=[CHAMPION],
        promoted=True,
        reason=COLD_START_REASON,
        model_uuid=baseline.model_uuid,
        metrics={"accuracy": baseline.evaluation.metrics["accuracy"]},
        attestation_sha256=baseline.attestation_sha256,
    )


def _cold_start(
    client: "MlflowClient",
    tracking_uri: str,
    model_name: str,
    benchmark: pd.DataFrame,
    task: TaskSchema,
    cold_start: ColdStart,
    tags: dict[str, str],
) -> Baseline:
    """Train, register and attest a first model on the reference data, then make it the
    champion: the attestation is written before the alias moves, so a champion always has
    one."""
    first = train_first_model(cold_start, benchmark, task)
    info = log_sklearn_model(
        first.model,
        name="baseline",
        input_example=first.data.frame[task.feature_names].head(5),
        task=task,
    )
    registered = register_version(
        client,
        info,
        model_name=model_name,
        metrics=first.evaluation.metrics,
        tags={
            tag.COLD_START: "true",
            tag.DATA_SHA256: first.data.sha256,
            tag.ESTIMATOR: cold_start.spec.estimator,
            tag.TRAINING_FINGERPRINT: first.fingerprint,
            tag.PROMOTION_REASON: COLD_START_REASON,
            **tags,
        },
    )
    document = attestation_document(
        model_name=model_name,
        version=registered.version,
        dagster_run_id=tags.get(tag.DAGSTER_RUN_ID, ""),
        benchmark_sha256=frame_sha256(benchmark),
        dataset_sha256=first.data.sha256,
        candidate=attested_model(
            tracking_uri,
            model_name,
            registered.version,
            model_uuid=registered.model_uuid,
            model_uri=registered.model_uri,
            run_id=registered.run_id,
        ),
        metrics=first.evaluation.metrics,
        decision={"metric": None, "promoted": True, "reason": COLD_START_REASON},
        task=task.attested(),
    )
    record_attestation(client, model_name, registered.version, registered.run_id, document)
    promote_to_champion(client, model_name, registered.version)
    return Baseline(
        model_name=model_name,
        version=registered.version,
        model_uuid=registered.model_uuid,
        cold_start=True,
        evaluation=first.evaluation,
        source=f"models:/{model_name}@{CHAMPION}",
        alias=CHAMPION,
        attestation_sha256=document["document_sha256"],
        contributions=[],
        training_fingerprint=first.fingerprint,
    )


def _import_file(
    client: "MlflowClient",
    policy: BaselinePolicy,
    model_name: str,
    benchmark: pd.DataFrame,
    task: TaskSchema,
    tags: dict[str, str],
) -> Baseline:
    """Load, validate and (once per file content) register a local model file."""
    path = policy.source.path
    assert path is not None
    found = load_baseline_file(policy, benchmark, task)
    loaded = found.loaded
    known = client.search_model_versions(
        f"name = '{model_name}' AND tags.{tag.SOURCE_SHA256} = '{loaded.sha256}'"
    )
    if known:
        version, model_uuid = str(known[0].version), known[0].tags.get(tag.MODEL_UUID, "")
    else:
        # Stored in the registry as skops, so only types we would load back may go in.
        if untrusted := skops_untrusted_types(loaded.model):
            raise UntrustedModelError(
                f"{path.name} holds types the registry would not load back: {untrusted}",
                hint="use a scikit-learn estimator of the kinds this pipeline trains",
            )
        info = log_sklearn_model(
            loaded.model,
            name="baseline",
            input_example=benchmark[task.feature_names].head(5),
            task=task,
        )
        registered = register_version(
            client,
            info,
            model_name=model_name,
            metrics=found.evaluation.metrics,
            tags={
                tag.IMPORTED_FROM: str(path),
                tag.SOURCE_FORMAT: loaded.format,
                tag.SOURCE_SHA256: loaded.sha256,
                **tags,
            },
        )
        version, model_uuid = registered.version, registered.model_uuid

    cold_start = get_version_by_alias(client, model_name, CHAMPION) is None
    if cold_start:
        promote_to_champion(client, model_name, version)
        client.set_model_version_tag(
            model_name, version, tag.PROMOTION_REASON, f"cold start: imported from {path.name}"
        )
    return Baseline(
        model_name=model_name,
        version=version,
        model_uuid=model_uuid,
        cold_start=cold_start,
        evaluation=found.evaluation,
        source=str(path),
        load=loaded.stats,
        checks=found.checks,
    )
