"""Checks on each contribution: blocking, so a rejected file stops before training."""

import dagster as dg

from mlops_assets.defs.contributions.assets import contributed_data
from mlops_assets.defs.contributions.partitions import contributions_partitions
from mlops_assets.defs.data.checks import expectations_result
from mlops_assets.defs.resources import DatasetStore, TaskDefinition


@dg.asset_check(asset=contributed_data, blocking=True, partitions_def=contributions_partitions)
def contributed_data_accepted(
    context: dg.AssetCheckExecutionContext, store: DatasetStore
) -> dg.AssetCheckResult:
    """The contribution passed intake: enough clean rows and a quality score above the bar."""
    from mlops_assets.core.common.storage import read_json

    report = read_json(store.fetch(store.contribution(context.partition_key, "report.json")))
    return dg.AssetCheckResult(
        passed=bool(report["accepted"]),
        description=report["decision"],
        metadata={
            "quality_score": report["quality_score"],
            "rows_clean": report["rows_clean"],
            "rows_rejected": report["rows_rejected"],
            "rejection_reasons": report["rejection_reasons"],
        },
    )


@dg.asset_check(asset=contributed_data, blocking=True, partitions_def=contributions_partitions)
def contributed_data_expectations(
    context: dg.AssetCheckExecutionContext, store: DatasetStore, task: TaskDefinition
) -> dg.AssetCheckResult:
    """Great Expectations suite on the clean rows: columns, types, ranges, labels, no nulls."""
    try:
        clean = store.read_frame(store.contribution(context.partition_key, "clean.parquet"))
    except FileNotFoundError:
        return dg.AssetCheckResult(passed=False, description="no clean rows were written")
    return expectations_result(clean, task, name="contributed_data", min_rows=1)
