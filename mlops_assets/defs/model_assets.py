"""Model assets: the baseline to beat, the trained candidate, and its registry version.

Models live in MLflow; these assets materialize references to them (URIs, versions, metrics)
as metadata, never a pickled object.
"""

import json
from enum import Enum
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.defs.data_assets import integrated_dataset, iris_dataset
from mlops_assets.defs.resources import (
    BaselineLoader,
    DatasetStore,
    ModelRegistry,
    PromotionPolicy,
    Webhooks,
    mlflow_step,
)
from mlops_assets.errors import UpstreamMissingError
from mlops_assets.settings import current_settings
from mlops_assets.task import TASK

if TYPE_CHECKING:
    import pandas as pd

_settings = current_settings()


class Estimator(Enum):
    random_forest = "random_forest"
    logistic_regression = "logistic_regression"
    gradient_boosting = "gradient_boosting"


class TrainingConfig(dg.Config):
    """Estimator and hyperparameters; only those of the chosen estimator are used."""

    estimator: Estimator = Estimator.logistic_regression
    n_estimators: int = 100
    max_depth: int | None = None
    learning_rate: float = 0.1
    C: float = 1.0
    max_iter: int = 1000
    seed: int = _settings.seed

    def hyperparameters(self) -> dict[str, Any]:
        if self.estimator is Estimator.random_forest:
            return {"n_estimators": self.n_estimators, "max_depth": self.max_depth}
        if self.estimator is Estimator.gradient_boosting:
            return {
                "n_estimators": self.n_estimators,
                "learning_rate": self.learning_rate,
                "max_depth": self.max_depth or 3,
            }
        return {"C": self.C, "max_iter": self.max_iter}


def upstream_metadata(
    context: dg.AssetExecutionContext, asset: dg.AssetsDefinition
) -> dict[str, Any]:
    """Metadata values of ``asset``'s latest materialization (this run's, if it ran here)."""
    name = asset.key.to_user_string()
    event = context.instance.get_latest_materialization_event(asset.key)
    if event is None or event.asset_materialization is None:
        raise UpstreamMissingError(
            f"{name} has never been materialized",
            hint=f"materialize it first: dagster asset materialize --select {name}",
        )
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@dg.asset(
    group_name="model",
    kinds={"mlflow", "scikit-learn"},
    deps=[iris_dataset],
    automation_condition=dg.AutomationCondition.eager(),
)
def baseline_model(
    context: dg.AssetExecutionContext,
    store: DatasetStore,
    registry: ModelRegistry,
    baseline_loader: BaselineLoader,
    webhooks: Webhooks,
    mlflow_tracking: dg.ResourceParam[Any],
) -> dg.MaterializeResult:
    """The model to beat: by default the registry's ``champion``; or another registry
    version or alias, or a trusted local file (``MLOPS_BASELINE_SOURCE``), validated against
    the task before use.

    On a cold start (no champion yet) a baseline is trained on the iris train part with the
    default training config, registered as the first version and aliased ``champion``.
    """
    import mlflow

    from mlops_assets.core.modeling.baseline import ColdStart, resolve_baseline
    from mlops_assets.core.registry.client import registry_errors

    training = TrainingConfig()

    def log_retry(attempt: int, wait: float, exc: BaseException) -> None:
        context.log.warning(
            f"registry read failed (attempt {attempt}), retrying in {wait:.0f} s: {exc}"
        )

    with registry_errors(registry.tracking_uri), mlflow_step(mlflow_tracking) as run_id:
        baseline = resolve_baseline(
            registry.client(),
            tracking_uri=registry.tracking_uri,
            policy=baseline_loader.policy(),
            model_name=registry.model_name,
            benchmark=store.read_frame(store.BENCHMARK),
            task=TASK,
            cold_start=ColdStart(
                reference_train=store.read_frame(store.REFERENCE_TRAIN),
                estimator=training.estimator.value,
                hyperparameters=training.hyperparameters(),
                seed=training.seed,
                save_dataset=lambda data: store.write_frame(
                    data.frame, store.integrated(data.sha256)
                ),
            ),
            tags={"dagster_run_id": context.run_id},
            on_retry=log_retry,
        )
        mlflow.set_tags(
            {
                "baseline_version": baseline.version,
                "baseline_source": baseline.source,
                "baseline_cold_start": str(baseline.cold_start).lower(),
            }
        )
        if baseline.load is not None:
            mlflow.log_metrics(
                {
                    "baseline_load_seconds": baseline.load.seconds,
                    "baseline_peak_rss_mb": baseline.load.peak_rss_mb,
                }
            )
    if baseline.cold_start:
        context.log.info(f"Cold start: registered baseline v{baseline.version} as champion")
        from mlops_assets.core.modeling.baseline import COLD_START_REASON
        from mlops_assets.core.registry.client import CHAMPION
        from mlops_assets.core.registry.webhooks import PROMOTED, REGISTERED

        event = {
            "model_name": baseline.model_name,
            "version": baseline.version,
            "aliases": [CHAMPION],
            "model_uuid": baseline.model_uuid,
            "promoted": True,
            "reason": COLD_START_REASON,
            "metrics": {"accuracy": baseline.evaluation.metrics["accuracy"]},
            "contributions": [],
            "attestation_sha256": baseline.attestation_sha256,
        }
        for event_type in (REGISTERED, PROMOTED):
            if line := webhooks.send(event_type, event):
                context.log.info(line)

    version = baseline.version
    load = baseline.load
    return dg.MaterializeResult(
        metadata={
            "cold_start": baseline.cold_start,
            "source": baseline.source,
            "model_name": baseline.model_name,
            "version": version,
            "alias": baseline.alias or "",
            "model_uri": f"models:/{baseline.model_name}/{version}",
            "model_uuid": baseline.model_uuid,
            "mlflow_run_id": run_id,
            "benchmark_accuracy": baseline.evaluation.metrics["accuracy"],
            "load_seconds": load.seconds if load else "trained here",
            "load_peak_rss_mb": load.peak_rss_mb if load else "trained here",
            "model_size_mb": load.size_mb if load else "trained here",
            "validation": dg.MetadataValue.json(baseline.checks),
            "registry_url": _url(registry.version_url(version))
            if baseline.model_name == registry.model_name
            else "",
        }
    )


@dg.asset(
    group_name="model",
    kinds={"mlflow", "scikit-learn"},
    deps=[integrated_dataset, baseline_model],
    automation_condition=dg.AutomationCondition.eager(),
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    store: DatasetStore,
    registry: ModelRegistry,
    mlflow_tracking: dg.ResourceParam[Any],
) -> dg.MaterializeResult:
    """A candidate trained on the integrated dataset, scored with the baseline on the same
    benchmark; params, metrics, artifacts, data and the model are logged to MLflow."""
    import mlflow

    from mlops_assets.core.modeling.evaluation import (
        confusion_matrix_markdown,
        evaluate,
        metric_deltas,
        metrics_markdown,
        paired_outcome,
    )
    from mlops_assets.core.modeling.training import train_model
    from mlops_assets.core.registry.client import (
        CHAMPION,
        load_sklearn_model,
        log_sklearn_model,
        registry_errors,
    )

    data = upstream_metadata(context, integrated_dataset)
    baseline = upstream_metadata(context, baseline_model)
    frame = store.read_frame(store.integrated(data["sha256"]))
    benchmark = store.read_frame(store.BENCHMARK)

    with registry_errors(registry.tracking_uri), mlflow_step(mlflow_tracking) as run_id:
        model = train_model(
            frame,
            TASK,
            estimator=config.estimator.value,
            hyperparameters=config.hyperparameters(),
            seed=config.seed,
        )
        candidate_eval = evaluate(model, benchmark, TASK)
        baseline_eval = evaluate(
            load_sklearn_model(baseline["model_uri"], registry.tracking_uri), benchmark, TASK
        )
        deltas = metric_deltas(candidate_eval.metrics, baseline_eval.metrics)
        contributions = data.get("contributions", [])

        mlflow.log_params(
            {"estimator": config.estimator.value, "seed": config.seed, **config.hyperparameters()}
            | {"training_rows": len(frame), "benchmark_rows": len(benchmark)}
        )
        mlflow.log_metrics(candidate_eval.metrics)
        mlflow.log_metrics({f"baseline_{k}": v for k, v in baseline_eval.metrics.items()})
        mlflow.log_metrics({f"delta_{k}": v for k, v in deltas.items()})
        mlflow.set_tags(
            {
                "data_sha256": data["sha256"],
                "contributions": json.dumps(contributions),
                "contributors": json.dumps(data.get("contributors", [])),
                "baseline_version": baseline["version"],
            }
        )
        _log_datasets(frame, data, benchmark, store)
        _log_evaluation_artifacts(candidate_eval, baseline_eval, deltas)
        info = log_sklearn_model(
            model, name="model", input_example=frame[TASK.feature_names].head(5)
        )
        mlflow.log_metrics(candidate_eval.metrics, model_id=info.model_id)
        experiment_id = mlflow.get_run(run_id).info.experiment_id

    return dg.MaterializeResult(
        metadata={
            # Ordered as the UI shows them: the answer first, identifiers next, raw data last.
            "accuracy": candidate_eval.metrics["accuracy"],
            "baseline_accuracy": baseline_eval.metrics["accuracy"],
            "baseline_version": baseline["version"],
            "baseline_model_name": baseline["model_name"],
            "baseline_alias": baseline.get("alias", CHAMPION),
            "metrics_table": dg.MetadataValue.md(
                metrics_markdown(candidate_eval.metrics, baseline_eval.metrics)
            ),
            "confusion_matrix": dg.MetadataValue.md(confusion_matrix_markdown(candidate_eval)),
            "mlflow_run_url": _url(registry.run_url(experiment_id, run_id)),
            "estimator": config.estimator.value,
            "data_sha256": data["sha256"],
            "contributions": dg.MetadataValue.json(contributions),
            "model_uri": info.model_uri,
            "model_id": info.model_id,
            "model_uuid": info.model_uuid,
            "mlflow_run_id": run_id,
            "signature": str(info.signature) if info.signature else "",
            "metrics": dg.MetadataValue.json(candidate_eval.metrics),
            "baseline_metrics": dg.MetadataValue.json(baseline_eval.metrics),
            "paired_outcome": dg.MetadataValue.json(paired_outcome(candidate_eval, baseline_eval)),
            "deltas": dg.MetadataValue.json(deltas),
        }
    )


def _log_datasets(
    frame: "pd.DataFrame", data: dict[str, Any], benchmark: "pd.DataFrame", store: DatasetStore
) -> None:
    import mlflow

    from mlops_assets.core.common.hashing import frame_sha256

    training = mlflow.data.from_pandas(
        frame,
        source=store.uri(store.integrated(data["sha256"])),
        targets=TASK.label,
        name="integrated_dataset",
        digest=data["sha256"][:16],
    )
    scoring = mlflow.data.from_pandas(
        benchmark,
        source=store.uri(store.BENCHMARK),
        targets=TASK.label,
        name="benchmark",
        digest=frame_sha256(benchmark)[:16],
    )
    mlflow.log_input(training, context="training")
    mlflow.log_input(scoring, context="evaluation")


def _log_evaluation_artifacts(candidate: Any, baseline: Any, deltas: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display in run workers
    import mlflow
    import numpy as np
    from matplotlib import pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axis = plt.subplots(figsize=(5, 4))
    ConfusionMatrixDisplay(
        np.array(candidate.confusion_matrix), display_labels=candidate.classes
    ).plot(ax=axis, colorbar=False)
    axis.set_title("Candidate on the benchmark")
    mlflow.log_figure(figure, "evaluation/confusion_matrix.png")
    plt.close(figure)
    mlflow.log_text(candidate.report, "evaluation/classification_report.txt")
    mlflow.log_dict(
        {"candidate": candidate.to_dict(), "baseline": baseline.to_dict(), "deltas": deltas},
        "evaluation/evaluation.json",
    )


@dg.asset(
    group_name="model",
    kinds={"mlflow"},
    deps=[trained_model],
    automation_condition=dg.AutomationCondition.eager(),
)
def registered_model_version(
    context: dg.AssetExecutionContext,
    registry: ModelRegistry,
    policy: PromotionPolicy,
    store: DatasetStore,
    webhooks: Webhooks,
    mlflow_tracking: dg.ResourceParam[Any],
) -> dg.MaterializeResult:
    """The candidate as a registry version: ``challenger`` always moves to it, ``champion``
    only when it beats the champion on the primary metric by the configured margin (see
    ``register_candidate``: a crash at any point is completed or cleaned up by a rerun)."""
    from mlops_assets.core.registry.client import registry_errors
    from mlops_assets.core.registry.client.registration import (
        Candidate,
        candidate_attestation,
        register_candidate,
    )
    from mlops_assets.core.registry.webhooks import PROMOTED, REGISTERED

    candidate = Candidate.from_metadata(upstream_metadata(context, trained_model))
    client = registry.client()
    contributions = _attested_contributions(store, candidate.contributions)
    benchmark_sha256 = upstream_metadata(context, iris_dataset)["benchmark_sha256"]

    def attest(version: str, decision: Any, promoted: bool, reason: str) -> dict[str, Any]:
        return candidate_attestation(
            client,
            tracking_uri=registry.tracking_uri,
            model_name=registry.model_name,
            version=version,
            candidate=candidate,
            decision=decision,
            promoted=promoted,
            reason=reason,
            dagster_run_id=context.run_id,
            benchmark_sha256=benchmark_sha256,
            contributions=contributions,
        )

    with registry_errors(registry.tracking_uri), mlflow_step(mlflow_tracking):
        done = register_candidate(
            client,
            model_name=registry.model_name,
            candidate=candidate,
            gate=policy.gate(),
            dagster_run_id=context.run_id,
            attest=attest,
            run_is_over=lambda run_id: _run_is_over(context.instance, run_id),
        )
    context.log.info(done.reason)
    for number in done.abandoned:
        context.log.warning(f"v{number} was left half-registered by a dead run: tagged abandoned")
    event = version_event(registry.model_name, done, candidate, policy.primary_metric)
    # After the registry is final: an event never fails or undoes a registration.
    for event_type in [REGISTERED, PROMOTED] if done.promoted else [REGISTERED]:
        if line := webhooks.send(event_type, event):
            context.log.info(line)
    return dg.MaterializeResult(
        metadata={
            "model_name": registry.model_name,
            "version": done.version,
            "aliases": dg.MetadataValue.json(done.aliases),
            "promoted": done.promoted,
            "reason": done.reason,
            "primary_metric": policy.primary_metric,
            "mcnemar_p_value": done.decision.p_value
            if done.decision.p_value is not None
            else "not run",
            "champion_version": done.champion_version or "",
            "model_uuid": done.model_uuid,
            "model_id": done.model_id,
            "data_sha256": candidate.data_sha256,
            "registry_url": _url(registry.version_url(done.version)),
            "attestation_sha256": done.attestation_sha256,
            "attestation": dg.MetadataValue.path(done.attestation_uri),
            "resumed_registration": done.resumed,
        }
    )


def version_event(model_name: str, done: Any, candidate: Any, metric: str) -> dict[str, Any]:
    """The ``data`` of a registration's webhook events."""
    return {
        "model_name": model_name,
        "version": done.version,
        "aliases": done.aliases,
        "model_uuid": done.model_uuid,
        "promoted": done.promoted,
        "reason": done.reason,
        "metrics": {k: candidate.metrics[k] for k in dict.fromkeys((metric, "accuracy"))},
        "contributions": candidate.contributions,
        "attestation_sha256": done.attestation_sha256,
    }


def _attested_contributions(store: DatasetStore, ids: list[str]) -> list[dict[str, Any]]:
    """What the attestation records of each contribution, from its report."""
    from mlops_assets.core.intake.processing import contribution_reports

    reports = {
        r["contribution_id"]: r
        for r, _ in contribution_reports(
            store.fetch_tree(store.CONTRIBUTIONS, ending="report.json")
        )
    }
    return [
        {
            "contribution_id": cid,
            "contributor": reports[cid]["contributor"],
            "landing_path": reports[cid].get("landing_path"),
            "file_sha256": reports[cid]["sha256"],
            "rows_accepted": reports[cid]["rows_clean"],
            "quality_score": reports[cid]["quality_score"],
            "snapshot": reports[cid].get("snapshot"),
        }
        for cid in ids
        if cid in reports
    ]


def _run_is_over(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id) if run_id else None
    return run is None or run.is_finished


def _url(url: str | None) -> Any:
    return dg.MetadataValue.url(url) if url else ""
