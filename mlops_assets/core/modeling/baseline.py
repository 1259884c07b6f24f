"""Finding the baseline to beat: a registry version (by default the ``champion``) or a trusted
local file, loaded safely, checked against the task and scored on the benchmark; and, on a
cold start, training the first model on the reference data.

Nothing here registers a model: registering the first model, or an imported file, is
promotion's (``core.promotion.baseline``).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_assets.core.data.integration import IntegratedDataset, integrate
from mlops_assets.core.modeling.evaluation import Evaluation, evaluate
from mlops_assets.core.modeling.model_checks import validate_model
from mlops_assets.core.modeling.training import TrainingSpec, train_model
from mlops_assets.core.registry import tags as tag
from mlops_assets.core.registry.client import RetryPolicy, get_version_by_alias, with_retries
from mlops_assets.core.registry.model_files import (
    FileTrust,
    LoadedFile,
    LoadStats,
    ModelSource,
    load_model_file,
    timed_load,
)
from mlops_assets.core.registry.models import load_with_size
from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

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


@dataclass(frozen=True)
class FirstModel:
    """A cold start's first model, trained here on the reference data alone."""

    model: Any
    evaluation: Evaluation
    data: IntegratedDataset
    fingerprint: str  # TrainingSpec.fingerprint


def find_registered_baseline(
    client: "MlflowClient",
    *,
    tracking_uri: str,
    policy: BaselinePolicy,
    benchmark: pd.DataFrame,
    task: TaskSchema,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> Baseline | None:
    """The registry version ``policy`` names, loaded, validated and scored on ``benchmark``;
    None when the registry has no such version. Lookups and downloads are retried on
    transient failures (``policy.retry``)."""
    source = policy.source

    def retried(call: Callable[[], Any]) -> Any:
        return with_retries(call, policy.retry, on_retry=on_retry)

    version = retried(lambda: _find_version(client, source))
    if version is None:
        return None
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


@dataclass(frozen=True)
class BaselineFile:
    """A local model file, loaded safely, checked against the task and scored."""

    loaded: LoadedFile
    checks: list[str]
    evaluation: Evaluation


def load_baseline_file(
    policy: BaselinePolicy, benchmark: pd.DataFrame, task: TaskSchema
) -> BaselineFile:
    """Load, validate and score the local model file ``policy`` names."""
    path = policy.source.path
    assert path is not None
    loaded = load_model_file(path, policy.trust)
    checks = validate_model(loaded.model, benchmark.head(PROBE_ROWS), task, policy.validators)
    return BaselineFile(loaded, checks, evaluate(loaded.model, benchmark, task))


def train_first_model(
    cold_start: ColdStart, benchmark: pd.DataFrame, task: TaskSchema
) -> FirstModel:
    """Train a first model on the reference train part alone (stored first, with
    ``cold_start.save_dataset``, so its attestation can be verified like any other) and
    score it on ``benchmark``."""
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
    return FirstModel(
        model=model,
        evaluation=evaluate(model, benchmark, task),
        data=reference,
        fingerprint=spec.fingerprint(reference.sha256, task),
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
