"""Model assets: the baseline to beat and the trained candidate.

Models live in MLflow; these assets materialize references to them (URIs, versions, metrics)
as metadata, never a pickled object.
"""

from collections.abc import Iterator
from enum import Enum
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.defs.automation import follows_upstream
from mlops_assets.defs.data.assets import INTEGRATED_DATASET
from mlops_assets.defs.metadata import pictures, table, upstream_metadata, url
from mlops_assets.resources import (
    BaselineLoader,
    DatasetStore,
    MlflowTracking,
    ModelRegistry,
    PredictionApis,
    PromotionPolicy,
    TaskDefinition,
    TrainingDataPolicy,
    ValuationSettings,
    Webhooks,
)

if TYPE_CHECKING:
    from mlops_assets.core.modeling.baseline import Baseline
    from mlops_assets.core.modeling.candidate import AlreadyTrained, TrainedCandidate
    from mlops_assets.core.modeling.training import TrainingSpec
    from mlops_assets.core.reporting.plots import Plot
    from mlops_assets.task import TaskSchema


class Estimator(Enum):
    random_forest = "random_forest"
    logistic_regression = "logistic_regression"
    gradient_boosting = "gradient_boosting"


BASELINE_MODEL = dg.AssetKey("baseline_model")
TRAINED_MODEL = dg.AssetKey("trained_model")
REGISTERED_MODEL_VERSION = dg.AssetKey("registered_model_version")
CONTRIBUTOR_SCOREBOARD = dg.AssetKey("contributor_scoreboard")


class TrainingConfig(dg.Config):
    """Estimator and hyperparameters; only those of the chosen estimator are used."""

    # None: the task file's `estimator`, else logistic_regression.
    estimator: Estimator | None = None
    n_estimators: int = 100
    max_depth: int | None = None
    learning_rate: float = 0.1
    C: float = 1.0
    max_iter: int = 1000
    seed: int | None = None  # the training_data_policy resource's (MLOPS_SEED) unless given
    # Training seeds a random forest or gradient boosting model averages (its probabilities,
    # one model per seed): a model of one seed is a draw, and so would be its values.
    seeds: int = 3

    def spec(self, task: "TaskSchema", seed: int) -> "TrainingSpec":
        """What to train for `task`; `seed` unless the config sets one."""
        from mlops_assets.core.modeling.training import TrainingSpec

        estimator = self.estimator or Estimator(task.estimator or "logistic_regression")
        return TrainingSpec(
            estimator=estimator.value,
            hyperparameters=self._hyperparameters(estimator),
            seed=seed if self.seed is None else self.seed,
            seeds=self.seeds,
        )

    def _hyperparameters(self, estimator: Estimator) -> dict[str, Any]:
        if estimator is Estimator.random_forest:
            return {"n_estimators": self.n_estimators, "max_depth": self.max_depth}
        if estimator is Estimator.gradient_boosting:
            return {
                "n_estimators": self.n_estimators,
                "learning_rate": self.learning_rate,
                "max_depth": self.max_depth or 3,
            }
        return {"C": self.C, "max_iter": self.max_iter}


def build_baseline_model(reference_asset: str) -> dg.AssetsDefinition:
    """`baseline_model`, which depends on the task's reference data asset `reference`
    (`TaskSchema.dataset_asset`)."""
    return dg.asset(
        group_name="model",
        kinds={"mlflow", "scikit-learn"},
        deps=[reference_asset],
        automation_condition=follows_upstream(),
    )(baseline_model)


def baseline_model(
    context: dg.AssetExecutionContext,
    store: DatasetStore,
    registry: ModelRegistry,
    baseline_loader: BaselineLoader,
    training_data_policy: TrainingDataPolicy,
    webhooks: Webhooks,
    serving: PredictionApis,
    mlflow_tracking: MlflowTracking,
    task: TaskDefinition,
) -> dg.MaterializeResult:
    """The model to beat: by default the registry's `champion`; or another registry
    version or alias, or a trusted local file (`MLOPS_BASELINE_SOURCE`), validated against
    the task before use.

    On a cold start (no champion yet) a baseline is trained on the reference train part with
    the default training config, registered as the first version and aliased `champion`.
    """
    from mlops_assets.core.modeling.baseline import ColdStart
    from mlops_assets.core.promotion.baseline import resolve_baseline
    from mlops_assets.core.registry.client import claim_model_for_task, registry_errors

    cold_start = ColdStart(
        reference_train=store.read_frame(store.REFERENCE_TRAIN),
        spec=TrainingConfig().spec(task.schema(), training_data_policy.seed),  # the default config
        save_dataset=lambda data: store.write_dataset(data.frame, data.sha256),
    )
    with registry_errors(registry.tracking_uri), mlflow_tracking.step() as run_id:
        claim_model_for_task(registry.client(), registry.model_name, task.schema().name)
        baseline = resolve_baseline(
            registry.client(),
            tracking_uri=registry.tracking_uri,
            policy=baseline_loader.policy(),
            model_name=registry.model_name,
            benchmark=store.read_frame(store.BENCHMARK),
            task=task.schema(),
            cold_start=cold_start,
            tags={"dagster_run_id": context.run_id},
            on_retry=lambda attempt, wait, exc: context.log.warning(
                f"registry read failed (attempt {attempt}), retrying in {wait:.0f} s: {exc}"
            ),
        )
        baseline.log_to_active_run()
    if baseline.cold_start:
        _announce_cold_start(context, baseline, serving, webhooks, registry)
    own = baseline.model_name == registry.model_name
    return dg.MaterializeResult(
        metadata={
            **baseline.to_metadata(),
            "mlflow_run_id": run_id,
            "registry_url": url(registry.version_url(baseline.version)) if own else "",
        }
    )


def _announce_cold_start(
    context: dg.AssetExecutionContext,
    baseline: "Baseline",
    serving: PredictionApis,
    webhooks: Webhooks,
    registry: ModelRegistry,
) -> None:
    """Tell the APIs and the webhook receivers about the first champion, and record its
    registration on `registered_model_version`, where people look for it (no candidate is
    registered after it: one trained on the same data would be the same model); the
    scoreboard, built by retrains only, says it waits for one."""
    from mlops_assets.core.promotion.baseline import cold_start_event, cold_start_registration

    context.log.info(f"Cold start: registered baseline v{baseline.version} as champion")
    for line in [*serving.champion_moved(), *webhooks.announce(cold_start_event(baseline))]:
        context.log.info(line)
    context.log_event(
        dg.AssetObservation(
            asset_key=CONTRIBUTOR_SCOREBOARD,
            metadata={"waiting": "no retrain yet: the first one builds the scoreboard"},
        )
    )
    context.log_event(
        dg.AssetMaterialization(
            asset_key=REGISTERED_MODEL_VERSION,
            description=f"v{baseline.version}: the first champion, registered by baseline_model",
            metadata={
                **cold_start_registration(baseline),
                "registry_url": url(registry.version_url(baseline.version)),
            },
        )
    )


@dg.asset(
    group_name="model",
    kinds={"mlflow", "scikit-learn"},
    deps=[INTEGRATED_DATASET, BASELINE_MODEL],
    automation_condition=follows_upstream(),
    # Not materialized when the candidate would be the baseline itself (see below).
    output_required=False,
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    training_data_policy: TrainingDataPolicy,
    promotion_policy: PromotionPolicy,
    valuation: ValuationSettings,
    store: DatasetStore,
    registry: ModelRegistry,
    mlflow_tracking: MlflowTracking,
    task: TaskDefinition,
) -> Iterator[dg.MaterializeResult]:
    """A candidate trained on the integrated dataset, scored with the baseline on the same
    benchmark; the contributions the baseline was not trained on are valued first, and
    harmful ones left out. Params, metrics, artifacts, data, the valuation and the model are
    logged to MLflow.

    When the baseline was trained on exactly this data with the same config and code (the
    first run after a cold start), no candidate is trained: an observation says why, and
    nothing downstream runs."""
    from mlops_assets.core.modeling.candidate import (
        AlreadyTrained,
        BaselineRef,
        DatasetRef,
        train_candidate,
    )
    from mlops_assets.core.registry.client import registry_errors

    schema = task.schema()
    data = upstream_metadata(context, INTEGRATED_DATASET)
    dataset = DatasetRef.from_metadata(data, uri=store.uri(store.integrated(data["sha256"])))
    spec = config.spec(schema, training_data_policy.seed)
    baseline = BaselineRef.from_metadata(upstream_metadata(context, BASELINE_MODEL))
    with registry_errors(registry.tracking_uri):
        fingerprint = spec.fingerprint(dataset.sha256, schema)
        trained = baseline.trained_alike(fingerprint) or registry.trained_alike(fingerprint)
        if trained is None:
            with mlflow_tracking.step() as run_id:
                trained = train_candidate(
                    store.read_frame(store.integrated(dataset.sha256)),
                    store.read_frame(store.BENCHMARK),
                    schema,
                    spec=spec,
                    data=dataset,
                    benchmark_uri=store.uri(store.BENCHMARK),
                    baseline=baseline,
                    tracking_uri=registry.tracking_uri,
                    valuation_policy=valuation.policy(promotion_policy.primary_metric, spec.seed),
                    save_training_data=store.write_dataset,
                    registered_alike=registry.trained_alike,
                    confidence=promotion_policy.confidence,
                )
                if not isinstance(trained, AlreadyTrained):
                    plots = _pictures(trained, store, promotion_policy.primary_metric)
    if isinstance(trained, AlreadyTrained):
        return _observe_already_trained(context, trained)
    for value in trained.valuation.excluded:
        context.log.warning(f"{value.contribution_id} left out: {value.reason}")
    run_url = registry.run_url(trained.experiment_id, run_id)
    yield dg.MaterializeResult(metadata=_candidate_metadata(trained, run_url, plots))


def _observe_already_trained(context: dg.AssetExecutionContext, trained: "AlreadyTrained") -> None:
    """No candidate: say which registered model this data and recipe already made."""
    context.log.info(trained.reason)
    context.log_event(
        dg.AssetObservation(asset_key=context.asset_key, metadata=trained.to_metadata())
    )


MARKDOWN = ("metrics_table", "valuation_summary", "confusion_matrix")


def _pictures(trained: "TrainedCandidate", store: DatasetStore, metric: str) -> "list[Plot]":
    """The candidate's pictures, logged to its MLflow run (`plots/`) with the pictures of
    each contribution it valued (`contributions/<id>/`, drawn at intake); returned for the
    UI. Needs the active MLflow run."""
    import mlflow

    from mlops_assets.core.registry.models import log_plots
    from mlops_assets.core.reporting.plots import (
        CONTRIBUTION_PLOTS,
        PLOTS_FOLDER,
        candidate_plots,
    )

    plots = candidate_plots(trained, metric)
    log_plots(plots, PLOTS_FOLDER)
    for value in trained.valuation.values:
        folder = store.contribution(value.contribution_id, PLOTS_FOLDER)
        for name in CONTRIBUTION_PLOTS:
            if store.exists(f"{folder}/{name}.png"):
                path = store.fetch(f"{folder}/{name}.png")
                mlflow.log_artifact(str(path), f"contributions/{value.contribution_id}")
    return plots


def _candidate_metadata(
    trained: "TrainedCandidate", run_url: str, plots: "list[Plot]"
) -> dict[str, Any]:
    """What the UI shows of a candidate: the pictures first, then its metadata, tables and
    reports as Markdown, and a link to its MLflow run."""
    from mlops_assets.core.modeling.valuation import VALUE_COLUMNS

    metadata = trained.to_metadata()
    return {
        **pictures(plots),
        **metadata,
        **{k: dg.MetadataValue.md(metadata[k]) for k in MARKDOWN},
        "contribution_values": table(metadata["contribution_values"], VALUE_COLUMNS),
        "mlflow_run_url": url(run_url),
    }
