"""Policies: the settings of a deployment that decide what the pipeline accepts, trains on
and promotes, as resources (so a run's config only overrides them, and the UI shows them).

Each field is named after the field of `mlops_assets.settings.Settings` it holds: its meaning
(shown in the UI) comes from that one declaration, and `SettingsResource.from_settings`
fills it.
"""

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import dagster as dg

from mlops_assets.settings import Settings, settings_of

if TYPE_CHECKING:
    from mlops_assets.core.intake.report import IntakePolicy
    from mlops_assets.core.intake.text_files import IntakeLimits
    from mlops_assets.core.modeling.baseline import BaselinePolicy
    from mlops_assets.core.modeling.valuation import ValuationPolicy
    from mlops_assets.core.promotion.gate import PromotionGate
    from mlops_assets.task import TaskSchema


class SettingsResource(dg.ConfigurableResource):
    """A resource whose fields are settings, each named after its `Settings` field."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        declared = settings_of()
        for name, info in cls.model_fields.items():
            if info.description is None:
                spec = declared[name]  # a KeyError here: a field that is no setting
                info.description = f"{spec.name}: {spec.doc}"
        cls.model_rebuild(force=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """This resource configured from `settings` (paths as text, lists for tuples)."""
        values = {name: getattr(settings, name) for name in cls.model_fields}
        return cls(**{name: _config_value(value) for name, value in values.items()})


def _config_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class TaskDefinition(SettingsResource):
    """The task (`MLOPS_TASK`): what a row looks like, read from its task file."""

    task_file: str

    def schema(self) -> "TaskSchema":
        return _task_schema(self.task_file)

    def dataset_key(self) -> dg.AssetKey:
        """The key of the task's reference data asset (`iris_dataset` for iris)."""
        return dg.AssetKey(self.schema().dataset_asset)


@functools.cache
def _task_schema(path: str) -> "TaskSchema":
    from mlops_assets.task import load_task

    return load_task(Path(path))


class ReferenceDataSource(SettingsResource):
    """The reference data (`MLOPS_REFERENCE`) and how its fixed benchmark is split off."""

    reference: str
    benchmark_fraction: float
    seed: int


class IntakeSettings(SettingsResource):
    """When a contribution is accepted (`MLOPS_MIN_*`, `MLOPS_KEEP_OUTLIERS`) and what one
    may cost (`MLOPS_MAX_DECOMPRESSED_BYTES`, `MLOPS_MAX_COMPRESSION_RATIO`,
    `MLOPS_INTAKE_TIMEOUT`)."""

    min_valid_share: float
    min_quality: float
    min_rows: int
    keep_outliers: bool
    max_decompressed_bytes: int
    max_compression_ratio: float
    intake_timeout: float

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
            timeout_seconds=self.intake_timeout,
        )


class TrainingDataPolicy(SettingsResource):
    """What the training set must look like before a model is trained on it."""

    min_class_share: float
    min_training_rows: int
    seed: int  # merging, shuffling and training (MLOPS_SEED)


class PromotionPolicy(SettingsResource):
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


class ValuationSettings(SettingsResource):
    """How new contributions are valued in a retrain (`MLOPS_VALUATION_*`) and whether a
    harmful one is left out (`MLOPS_EXCLUDE_HARMFUL`): see `value_contributions`."""

    valuation_exact_max: int
    valuation_budget_seconds: float
    valuation_max_permutations: int
    valuation_max_rows: int
    valuation_max_players: int
    valuation_min_orders: int
    exclude_harmful: bool

    def policy(self, metric: str, seed: int) -> "ValuationPolicy":
        from mlops_assets.core.modeling.valuation import ValuationPolicy

        return ValuationPolicy(
            metric=metric,
            seed=seed,
            exact_max_players=self.valuation_exact_max,
            budget_seconds=self.valuation_budget_seconds,
            max_permutations=self.valuation_max_permutations,
            max_training_rows=self.valuation_max_rows,
            exclude_harmful=self.exclude_harmful,
            max_players=self.valuation_max_players,
            min_orders=self.valuation_min_orders,
        )


class BaselineLoader(SettingsResource):
    """Where the baseline comes from and what it must pass: see `resolve_baseline`.

    Pickle and joblib files load only from `trusted_model_dir` (unpickling runs code), and
    with `baseline_sha256` set only the file with that hash loads.
    """

    baseline_source: str
    trusted_model_dir: str | None
    baseline_sha256: str | None
    baseline_validators: list[str]
    registry_retries: int
    registry_retry_seconds: float

    def policy(self) -> "BaselinePolicy":  # quoted: resources cannot use __future__ annotations
        from mlops_assets.core.modeling.baseline import BaselinePolicy
        from mlops_assets.core.registry.client import RetryPolicy
        from mlops_assets.core.registry.model_files import FileTrust, ModelSource

        trusted = Path(self.trusted_model_dir).expanduser() if self.trusted_model_dir else None
        return BaselinePolicy(
            source=ModelSource.parse(self.baseline_source),
            trust=FileTrust(trusted, self.baseline_sha256),
            validators=tuple(self.baseline_validators),
            retry=RetryPolicy(
                attempts=self.registry_retries, max_seconds=self.registry_retry_seconds
            ),
        )
