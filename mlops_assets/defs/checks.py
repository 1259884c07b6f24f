"""Asset checks: what must hold before the next asset may use this one.

Blocking checks stop downstream assets in the same run; each result's metadata says why it
failed, so the UI answers the question without opening logs.
"""

from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.defs.data_assets import contributed_data, integrated_dataset, iris_dataset
from mlops_assets.defs.model_assets import trained_model, upstream_metadata
from mlops_assets.defs.partitions import contributions_partitions
from mlops_assets.defs.resources import (
    DatasetStore,
    ModelRegistry,
    PromotionPolicy,
    TrainingDataPolicy,
)
from mlops_assets.task import TASK

if TYPE_CHECKING:
    import pandas as pd


@dg.asset_check(asset=iris_dataset, blocking=True)
def iris_dataset_expectations(store: DatasetStore) -> dg.AssetCheckResult:
    """Great Expectations suite on the train and benchmark parts: columns, types, ranges,
    labels, no nulls, a row-count floor."""
    import pandas as pd

    frame = pd.concat([store.read_frame(store.REFERENCE_TRAIN), store.read_frame(store.BENCHMARK)])
    return _expectations_result(frame, name="iris_dataset", min_rows=30)


def _expectations_result(frame: "pd.DataFrame", *, name: str, min_rows: int) -> dg.AssetCheckResult:
    """The task's Great Expectations suite on ``frame``, as a check result saying what failed."""
    from mlops_assets.core.data.expectations import task_expectations, validate_expectations

    outcome = validate_expectations(frame, task_expectations(TASK, min_rows=min_rows), name=name)
    return dg.AssetCheckResult(
        passed=outcome.success,
        description=outcome.summary(),
        metadata={
            "expectations_evaluated": outcome.evaluated,
            "failures": dg.MetadataValue.json(outcome.failures),
        },
    )


@dg.asset_check(asset=integrated_dataset, blocking=True)
def integrated_dataset_has_no_benchmark_rows(
    context: dg.AssetCheckExecutionContext, store: DatasetStore
) -> dg.AssetCheckResult:
    """No training row may equal a benchmark row: that would inflate every score."""

    from mlops_assets.core.data.integration import benchmark_overlap

    training = store.integrated(upstream_metadata(context, integrated_dataset)["sha256"])
    overlap = benchmark_overlap(store.read_frame(training), store.read_frame(store.BENCHMARK), TASK)
    return dg.AssetCheckResult(
        passed=overlap == 0,
        description=f"{overlap} training row(s) equal benchmark rows",
        metadata={"benchmark_rows_in_training": overlap},
    )


@dg.asset_check(asset=integrated_dataset, blocking=True)
def integrated_dataset_class_balance(
    context: dg.AssetCheckExecutionContext, data_policy: TrainingDataPolicy, store: DatasetStore
) -> dg.AssetCheckResult:
    """Enough rows, and no class below ``MLOPS_MIN_CLASS_SHARE`` of the training set: a
    flood of one class from contributions must not starve the others."""
    training = store.integrated(upstream_metadata(context, integrated_dataset)["sha256"])
    labels = store.read_frame(training)[TASK.label]
    shares = {c: float((labels == c).mean()) if len(labels) else 0.0 for c in TASK.classes}
    too_small = {c: round(s, 4) for c, s in shares.items() if s < data_policy.min_class_share}
    enough_rows = len(labels) >= data_policy.min_training_rows
    problems = [f"{c} is {s:.1%} of the rows" for c, s in too_small.items()]
    if not enough_rows:
        problems.append(f"{len(labels)} rows < {data_policy.min_training_rows} required")
    return dg.AssetCheckResult(
        passed=enough_rows and not too_small,
        description="; ".join(problems)
        or f"{len(labels)} rows, every class at least {data_policy.min_class_share:.0%}",
        metadata={
            "rows": len(labels),
            "class_shares": dg.MetadataValue.json({c: round(s, 4) for c, s in shares.items()}),
            "min_class_share": data_policy.min_class_share,
        },
    )


@dg.asset_check(asset=trained_model, blocking=True)
def trained_model_accuracy_floor(
    context: dg.AssetCheckExecutionContext, policy: PromotionPolicy
) -> dg.AssetCheckResult:
    """A candidate below the accuracy floor on the benchmark is not registered."""
    accuracy = upstream_metadata(context, trained_model)["accuracy"]
    passed = accuracy >= policy.accuracy_floor
    comparison = ">=" if passed else "<"
    return dg.AssetCheckResult(
        passed=passed,
        description=(
            f"benchmark accuracy {accuracy:.4f} {comparison} floor {policy.accuracy_floor:.4f}"
        ),
        metadata={"accuracy": accuracy, "accuracy_floor": policy.accuracy_floor},
    )


@dg.asset_check(asset=trained_model)
def trained_model_has_signature(
    context: dg.AssetCheckExecutionContext, registry: ModelRegistry
) -> dg.AssetCheckResult:
    """The logged model carries an input/output signature (the API validates requests with it)."""
    import mlflow

    from mlops_assets.core.registry.client import registry_errors

    model_uri = upstream_metadata(context, trained_model)["model_uri"]
    registry.client()  # applies bounded-retry defaults before talking to MLflow
    with registry_errors(registry.tracking_uri):
        mlflow.set_tracking_uri(registry.tracking_uri)
        signature = mlflow.models.get_model_info(model_uri).signature
    return dg.AssetCheckResult(
        passed=signature is not None,
        description=f"signature: {signature}" if signature else f"{model_uri} has no signature",
        metadata={"model_uri": model_uri, "signature": str(signature or "")},
    )


@dg.asset_check(asset=contributed_data, blocking=True, partitions_def=contributions_partitions)
def contributed_data_accepted(
    context: dg.AssetCheckExecutionContext, store: DatasetStore
) -> dg.AssetCheckResult:
    """The contribution passed intake: enough clean rows and a quality score above the bar.

    Blocking, so a rejected contribution stops here instead of reaching training.
    """
    from mlops_assets.core.common.storage import read_json

    report = read_json(store.fetch(store.contribution(context.partition_key, "report.json")))
    return dg.AssetCheckResult(
        passed=bool(report["accepted"]),
        description=report["decision"],
        metadata={
            "quality_score": report["quality_score"],
            "rows_clean": report["rows_clean"],
            "rows_rejected": report["rows_rejected"],
            "rejection_reasons": dg.MetadataValue.json(report["rejection_reasons"]),
        },
    )


@dg.asset_check(asset=contributed_data, blocking=True, partitions_def=contributions_partitions)
def contributed_data_expectations(
    context: dg.AssetCheckExecutionContext, store: DatasetStore
) -> dg.AssetCheckResult:
    """Great Expectations suite on the clean rows: columns, types, ranges, labels, no nulls."""
    try:
        clean = store.read_frame(store.contribution(context.partition_key, "clean.parquet"))
    except FileNotFoundError:
        return dg.AssetCheckResult(passed=False, description="no clean rows were written")
    return _expectations_result(clean, name="contributed_data", min_rows=1)
