"""Policies: the settings of a deployment that decide what the pipeline accepts, trains on
and promotes, as resources (so a run's config only overrides them, and the UI shows them)."""

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    from mlops_assets.core.intake.report import IntakePolicy
    from mlops_assets.core.intake.text_files import IntakeLimits
    from mlops_assets.core.modeling.baseline import BaselinePolicy
    from mlops_assets.core.modeling.valuation import ValuationPolicy
    from mlops_assets.core.promotion.gate import PromotionGate
    from mlops_assets.task import TaskSchema


class TaskDefinition(dg.ConfigurableResource):
    """The task (``MLOPS_TASK``): what a row looks like, read from its task file."""

    path: str

    def schema(self) -> "TaskSchema":
        return _task_schema(self.path)

    def dataset_key(self) -> dg.AssetKey:
        """The key of the task's reference data asset (``iris_dataset`` for iris)."""
        return dg.AssetKey(self.schema().dataset_asset)


@functools.cache
def _task_schema(path: str) -> "TaskSchema":
    from mlops_assets.task import load_task

    return load_task(Path(path))


class ReferenceDataSource(dg.ConfigurableResource):
    """The canonical data (``MLOPS_IRIS_CSV``) and how its fixed benchmark is split off."""

    csv_path: str
    benchmark_fraction: float
    seed: int


class IntakeSettings(dg.ConfigurableResource):
    """When a contribution is accepted (``MLOPS_MIN_*``, ``MLOPS_KEEP_OUTLIERS``) and what one
    may cost (``MLOPS_MAX_DECOMPRESSED_BYTES``, ``MLOPS_MAX_COMPRESSION_RATIO``,
    ``MLOPS_INTAKE_TIMEOUT``)."""

    min_valid_share: float
    min_quality: float
    min_rows: int
    keep_outliers: bool
    max_decompressed_bytes: int
    max_compression_ratio: float
    timeout_seconds: float

    def policy(self) -> "IntakePolicy":
        from mlops_assets.core.intake.report import IntakePolicy

        return IntakePolicy(
            min_valid_share=self.min_valid_share,
            min_quality=self.min_quality,
            min_rows=self.min_rows,
            keep_outliers=self.keep_outliers,
        )

    def limits(self) -> "IntakeLimits":
        from mlops_assets.core.intake.text_files import IntakeLimits

        return IntakeLimits(
            max_bytes=self.max_decompressed_bytes,
            max_ratio=self.max_compression_ratio,
            timeout_seconds=self.timeout_seconds,
        )


class TrainingDataPolicy(dg.ConfigurableResource):
    """What the training set must look like before a model is trained on it."""

    min_class_share: float
    min_training_rows: int
    seed: int  # merging, shuffling and training (MLOPS_SEED)


class PromotionPolicy(dg.ConfigurableResource):
    """When a candidate may be registered and when it replaces the champion."""

    primary_metric: str
    min_improvement: float
    significance: float  # 0: no test, strictly better is enough
    min_benchmark_rows: int
    accuracy_floor: float

    @property
    def confidence(self) -> float:
        """The level of the intervals the gate shows: its test and its interval are one
        statement (95 % when there is no test)."""
        return 1.0 - self.significance if self.significance > 0 else 0.95

    def gate(self) -> "PromotionGate":
        from mlops_assets.core.promotion.gate import PromotionGate

        return PromotionGate(
            metric=self.primary_metric,
            min_improvement=self.min_improvement,
            significance=self.significance,
            min_benchmark_rows=self.min_benchmark_rows,
        )


class ValuationSettings(dg.ConfigurableResource):
    """How new contributions are valued in a retrain (``MLOPS_VALUATION_*``) and whether a
    harmful one is left out (``MLOPS_EXCLUDE_HARMFUL``): see ``value_contributions``."""

    exact_max_players: int
    budget_seconds: float
    max_permutations: int
    max_training_rows: int
    exclude_harmful: bool

    def policy(self, metric: str, seed: int) -> "ValuationPolicy":
        from mlops_assets.core.modeling.valuation import ValuationPolicy

        return ValuationPolicy(metric=metric, seed=seed, **self.model_dump())


class BaselineLoader(dg.ConfigurableResource):
    """Where the baseline comes from and what it must pass: see ``resolve_baseline``.

    Pickle and joblib files load only from ``trusted_model_dir`` (unpickling runs code), and
    with ``sha256`` set only the file with that hash loads.
    """

    source: str
    trusted_model_dir: str | None = None
    sha256: str | None = None
    validators: list[str] = Field(default_factory=list)
    registry_retries: int
    registry_retry_seconds: float

    def policy(self) -> "BaselinePolicy":  # quoted: resources cannot use __future__ annotations
        from mlops_assets.core.modeling.baseline import BaselinePolicy
        from mlops_assets.core.registry.client import RetryPolicy
        from mlops_assets.core.registry.model_files import FileTrust, ModelSource

        trusted = Path(self.trusted_model_dir).expanduser() if self.trusted_model_dir else None
        return BaselinePolicy(
            source=ModelSource.parse(self.source),
            trust=FileTrust(trusted, self.sha256),
            validators=tuple(self.validators),
            retry=RetryPolicy(
                attempts=self.registry_retries, max_seconds=self.registry_retry_seconds
            ),
        )
