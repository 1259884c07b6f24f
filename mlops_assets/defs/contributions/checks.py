"""The check on each contribution: was it accepted?

A rejected contribution is an outcome, not a failure: its intake run succeeds, and this check
says "rejected", why and what to do, as a warning on the partition (nothing downstream needs
gating: integration reads accepted contributions only, and `retrain_sensor` starts a
retrain for accepted ones only). The contribution's rows were validated by the intake itself,
row by row with a reason each; the Great Expectations suite runs on the training set they go
into (`integrated_dataset`), once per retrain rather than once per file."""

import dagster as dg

from mlops_assets.defs.contributions.assets import CONTRIBUTED_DATA
from mlops_assets.defs.contributions.partitions import contributions_partitions
from mlops_assets.resources import DatasetStore


@dg.asset_check(asset=CONTRIBUTED_DATA, partitions_def=contributions_partitions)
def contributed_data_accepted(
    context: dg.AssetCheckExecutionContext, store: DatasetStore
) -> dg.AssetCheckResult:
    """The contribution passed intake: enough clean rows and a quality score above the bar;
    a rejection is a warning naming the reason and what to do."""
    from mlops_assets.core.intake.report import read_report

    report = read_report(store.fetch(store.contribution(context.partition_key, "report.json")))
    hint = report.hint or ""
    return dg.AssetCheckResult(
        passed=report.accepted,
        severity=dg.AssetCheckSeverity.WARN,
        description=report.decision + (f". What to do: {hint}" if hint else ""),
        metadata={
            "hint": hint,
            "quality_score": report.quality_score,
            "rows_clean": report.rows_clean,
            "rows_rejected": report.rows_rejected,
            "rejection_reasons": report.rejection_reasons,
        },
    )
