"""The baseline to beat: a registry version (by default the ``champion``), or a trusted local
file; on a cold start, a first model trained on iris."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_assets.core.common.hashing import frame_sha256
from mlops_assets.core.data.integration import IntegratedDataset, integrate
from mlops_assets.core.modeling.evaluation import Evaluation, benchmark_tags, evaluate
from mlops_assets.core.modeling.model_checks import validate_model
from mlops_assets.core.modeling.training import TrainingSpec, train_model
from mlops_assets.core.promotion.attestation import attestation_document
from mlops_assets.core.promotion.champion import promote_to_champion
from mlops_assets.core.registry import tags as tag
from mlops_assets.core.registry.attestations import record_attestation
from mlops_assets.core.registry.client import (
    RetryPolicy,
    get_version_by_alias,
    register_model_version,
    with_retries,
)
from mlops_assets.core.registry.model_files import (
    FileTrust,
    LoadStats,
    ModelSource,
    load_model_file,
    skops_untrusted_types,
    timed_load,
)
from mlops_assets.core.registry.models import load_with_size, log_sklearn_model, model_file_digests
from mlops_assets.core.registry.tags import CHAMPION
from mlops_assets.core.registry.webhooks import VersionEvent
from mlops_assets.errors import ModelNotFoundError, UntrustedModelError
from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

COLD_START_REASON = "cold start: first model, trained on the reference data alone"
PROBE_ROWS = 20


@dataclass(frozen=True)
class BaselinePolicy:
    """Where the baseline comes from and what it must pass before it is used."""

    source: ModelSource
    trust: FileTrust = field(default_factory=FileTrust)
    validators: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=1, max_seconds=0))


@dataclass(frozen=True)
class Baseline:
    model_name: str
    version: str
    model_uuid: str
    cold_start: bool
    evaluation: Evaluation
    source: str
    # The alias the version was found by: promotion re-reads it to spot a stale comparison.
    alias: str | None = None
    load: LoadStats | None = None  # None when the baseline was trained here
    checks: list[str] = field(default_factory=list)
    attestation_sha256: str | None = None  # a cold start's own attestation
    # The contributions it was trained on; None when unknown (a file, another registry's
    # model): then every contribution counts as new when contributions are valued.
    contributions: list[str] | None = None
    training_fingerprint: str | None = None  # TrainingSpec.fingerprint; None when unknown

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"

    def to_metadata(self) -> dict[str, Any]:
        """What ``baseline_model`` records, and ``trained_model`` reads back."""
        load = self.load
        return {
            "cold_start": self.cold_start,
            "source": self.source,
            "model_name": self.model_name,
            "version": self.version,
            "alias": self.alias or "",
            "model_uri": self.model_uri,
            "model_uuid": self.model_uuid,
            "benchmark_accuracy": self.evaluation.metrics["accuracy"],
            "load_seconds": load.seconds if load else "trained here",
            "load_peak_rss_mb": load.peak_rss_mb if load else "trained here",
            "model_size_mb": load.size_mb if load else "trained here",
            "validation": self.checks,
            "training_contributions": self.contributions or [],
            "training_contributions_known": self.contributions is not None,
            "training_fingerprint": self.training_fingerprint or "",
        }

    def cold_start_registration(self) -> dict[str, Any]:
        """What ``registered_model_version`` shows of a cold start's first version: one that
        ``baseline_model`` registered and made champion itself (a candidate trained on the
        same data would be the same model, so none is registered after it)."""
        origin = (
            "trained on the reference data alone"
            if self.load is None
            else f"imported from {self.source}"
        )
        return {
            "model_name": self.model_name,
            "version": self.version,
            "aliases": [CHAMPION],
            "promoted": True,
            "reason": COLD_START_REASON if self.load is None else f"cold start: {origin}",
            "registered_by": f"baseline_model: no champion existed, so v{self.version} was "
            f"{origin} and became champion",
            "champion_version": self.version,
            "model_uuid": self.model_uuid,
            "contributions": [],
            "contributors": [],
            "benchmark_accuracy": self.evaluation.metrics["accuracy"],
            "attestation_sha256": self.attestation_sha256 or "",
        }

    def version_event(self) -> VersionEvent:
        """The event of a cold start: the first version, registered as champion."""
        return VersionEvent(
            model_name=self.model_name,
            version=self.version,
            aliases=[CHAMPION],
            promoted=True,
            reason=COLD_START_REASON,
            model_uuid=self.model_uuid,
            metrics={"accuracy": self.evaluation.metrics["accuracy"]},
            attestation_sha256=self.attestation_sha256,
        )

    def log_to_active_run(self) -> None:
        """Which baseline a run compared against, and what loading it cost."""
        import mlflow

        mlflow.set_tags(
            {
                "baseline_version": self.version,
                "baseline_source": self.source,
                "baseline_cold_start": str(self.cold_start).lower(),
            }
        )
        if self.load is not None:
            mlflow.log_metrics(
                {
                    "baseline_load_seconds": self.load.seconds,
                    "baseline_peak_rss_mb": self.load.peak_rss_mb,
                }
            )


@dataclass(frozen=True)
class ColdStart:
    """How to train a first model when the registry has no champion yet; ``save_dataset``
    stores the data it is trained on, so its attestation can be verified like any other."""

    reference_train: pd.DataFrame
    spec: TrainingSpec
    save_dataset: Callable[[IntegratedDataset], None] | None = None


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

    def retried(call: Callable[[], Any]) -> Any:
        return with_retries(call, policy.retry, on_retry=on_retry)

    version = retried(lambda: _find_version(client, source))
    if version is None:
        if source.model_name == model_name and source.alias == CHAMPION:
            return _cold_start(client, tracking_uri, model_name, benchmark, task, cold_start, tags)
        raise ModelNotFoundError(
            f"the baseline source {source} does not exist in the registry",
            hint="check MLOPS_BASELINE_SOURCE: `mlops model show --json` lists the versions",
        )
    model, stats = retried(
        lambda: timed_load(
            lambda: load_with_size(f"models:/{source.model_name}/{version.version}", tracking_uri)
        )
    )
    checks = validate_model(model, benchmark.head(PROBE_ROWS), task, policy.validators)
    return Baseline(
        model_name=str(source.model_name),
        version=str(version.version),
        model_uuid=version.tags.get(tag.MODEL_UUID, ""),
        cold_start=False,
        evaluation=evaluate(model, benchmark, task),
        source=str(source),
        alias=source.alias,
        load=stats,
        checks=checks,
        contributions=_training_contributions(version),
        training_fingerprint=version.tags.get(tag.TRAINING_FINGERPRINT),
    )


def _training_contributions(version: "ModelVersion") -> list[str] | None:
    import json

    if version.tags.get(tag.COLD_START) == "true" and tag.IMPORTED_FROM not in version.tags:
        return []  # trained here on the reference data alone
    recorded = version.tags.get(tag.CONTRIBUTIONS)
    return list(json.loads(recorded)) if recorded is not None else None


def _find_version(client: "MlflowClient", source: ModelSource) -> "ModelVersion | None":
    from mlflow.exceptions import MlflowException

    if source.alias is not None:
        return get_version_by_alias(client, str(source.model_name), source.alias)
    try:
        return client.get_model_version(str(source.model_name), str(source.version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


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
    spec = cold_start.spec
    reference = integrate(cold_start.reference_train, [], benchmark, task, seed=spec.seed)
    if cold_start.save_dataset is not None:
        cold_start.save_dataset(reference)
    model = train_model(
        reference.frame,
        task,
        estimator=spec.estimator,
        hyperparameters=spec.hyperparameters,
        seed=spec.seed,
        seeds=spec.seeds,
    )
    evaluation = evaluate(model, benchmark, task)
    fingerprint = spec.fingerprint(reference.sha256, task)
    info = log_sklearn_model(
        model,
        name="baseline",
        input_example=reference.frame[task.feature_names].head(5),
        task=task,
    )
    registered = register_model_version(
        client,
        info,
        model_name=model_name,
        tags={
            tag.COLD_START: "true",
            tag.DATA_SHA256: reference.sha256,
            tag.ESTIMATOR: spec.estimator,
            tag.TRAINING_FINGERPRINT: fingerprint,
            tag.PROMOTION_REASON: COLD_START_REASON,
            **benchmark_tags(evaluation.metrics),
            **tags,
        },
    )
    document = attestation_document(
        model_name=model_name,
        version=registered.version,
        dagster_run_id=tags.get(tag.DAGSTER_RUN_ID, ""),
        benchmark_sha256=frame_sha256(benchmark),
        dataset_sha256=reference.sha256,
        candidate={
            "version": registered.version,
            "model_uuid": registered.model_uuid,
            "model_uri": registered.model_uri,
            "mlflow_run_id": registered.run_id,
            "artifact_sha256": model_file_digests(tracking_uri, model_name, registered.version),
        },
        metrics=evaluation.metrics,
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
        evaluation=evaluation,
        source=f"models:/{model_name}@{CHAMPION}",
        alias=CHAMPION,
        attestation_sha256=document["document_sha256"],
        contributions=[],
        training_fingerprint=fingerprint,
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
    loaded = load_model_file(path, policy.trust)
    checks = validate_model(loaded.model, benchmark.head(PROBE_ROWS), task, policy.validators)
    evaluation = evaluate(loaded.model, benchmark, task)

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
        registered = register_model_version(
            client,
            info,
            model_name=model_name,
            tags={
                tag.IMPORTED_FROM: str(path),
                tag.SOURCE_FORMAT: loaded.format,
                tag.SOURCE_SHA256: loaded.sha256,
                **benchmark_tags(evaluation.metrics),
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
        evaluation=evaluation,
        source=str(path),
        load=loaded.stats,
        checks=checks,
    )
