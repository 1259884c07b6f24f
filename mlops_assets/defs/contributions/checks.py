"""Checks on each contribution: blocking, so a rejected file stops before training.

The contribution's rows are validated by the intake itself, row by row with a reason each;
the Great Expectations suite runs on the training set they go into (``integrated_dataset``),
once per retrain rather than once per file."""

import dagster as dg

from mlops_assets.defs.contributions.assets import contributed_data
from mlops_assets.defs.contributions.partitions import contributions_partitions
from mlops_assets.defs.resources import DatasetStore


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
