"""Checks on the data assets: what must hold before a model may be trained on them.

Blocking checks stop downstream assets in the same run; each result's metadata says why it
failed, so the UI answers the question without opening logs.
"""

from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.defs.data.assets import INTEGRATED_DATASET
from mlops_assets.defs.metadata import upstream_metadata
from mlops_assets.resources import DatasetStore, TaskDefinition, TrainingDataPolicy

if TYPE_CHECKING:
    import pandas as pd


def expectations_result(
    frame: "pd.DataFrame", task: TaskDefinition, *, name: str, min_rows: int
) -> dg.AssetCheckResult:
    """The task's Great Expectations suite on `frame`, as a check result saying which task's
    suite it ran and what failed."""
    from mlops_assets.core.data.expectations import task_expectations, validate_expectations

    schema = task.schema()
    outcome = validate_expectations(frame, task_expectations(schema, min_rows=min_rows), name=name)
    return dg.AssetCheckResult(
        passed=outcome.success,
        description=f"the {schema.name} task's suite: {outcome.summary()}",
        metadata={
            "task": schema.name,
            "expectations_evaluated": outcome.evaluated,
            "failures": outcome.failures,
        },
    )


# The Great Expectations suites are not blocking and run last in their run: every row they
# look at was validated on its way in (the reference asset fails on a bad row, the intake
# rejects one with its reason), so a suite is a second, independent opinion that need not
# hold up a model (importing Great Expectations alone takes seconds).
LAST = {"dagster/priority": "-1"}


def build_reference_checks(reference_asset: str) -> list[dg.AssetChecksDefinition]:
    """The checks of the reference data asset `reference_asset` (`TaskSchema.dataset_asset`),
    named for it."""
    return [
        dg.asset_check(asset=reference_asset, name=f"{reference_asset}_expectations", op_tags=LAST)(
            reference_dataset_expectations
        )
    ]


def reference_dataset_expectations(
    store: DatasetStore, task: TaskDefinition
) -> dg.AssetCheckResult:
    """Great Expectations suite on the train and benchmark parts of the task's reference data:
    columns, types, ranges, allowed categories and labels, no nulls where the task rejects
    them, a row-count floor."""
    import pandas as pd

    frame = pd.concat([store.read_frame(store.REFERENCE_TRAIN), store.read_frame(store.BENCHMARK)])
    return expectations_result(frame, task, name=task.schema().dataset_asset, min_rows=30)


@dg.asset_check(asset=INTEGRATED_DATASET, op_tags=LAST)
def integrated_dataset_expectations(
    context: dg.AssetCheckExecutionContext, store: DatasetStore, task: TaskDefinition
) -> dg.AssetCheckResult:
    """Great Expectations suite on the training set (the reference train part and every
    accepted contribution): columns, types, ranges, allowed categories and labels, no nulls
    where the task rejects them, a row-count floor."""
    return expectations_result(
        _training_set(context, store), task, name="integrated_dataset", min_rows=1
    )


def _training_set(context: dg.AssetCheckExecutionContext, store: DatasetStore) -> "pd.DataFrame":
    sha256 = upstream_metadata(context, INTEGRATED_DATASET)["sha256"]
    return store.read_frame(store.integrated(sha256))


@dg.asset_check(asset=INTEGRATED_DATASET, blocking=True)
def integrated_dataset_has_no_benchmark_rows(
    context: dg.AssetCheckExecutionContext, store: DatasetStore, task: TaskDefinition
) -> dg.AssetCheckResult:
    """No training row may equal a benchmark row at the task's resolution: that would inflate
    every score."""
    import pandas as pd

    from mlops_assets.core.common.row_matching import RowMatching
    from mlops_assets.core.data.integration import benchmark_overlap

    schema = task.schema()
    benchmark = store.read_frame(store.BENCHMARK)
    matching = RowMatching.for_task(
        schema, pd.concat([store.read_frame(store.REFERENCE_TRAIN), benchmark])
    )
    overlap = benchmark_overlap(_training_set(context, store), benchmark, schema, matching)
    return dg.AssetCheckResult(
        passed=overlap == 0,
        description=f"{overlap} training row(s) equal benchmark rows at the task's resolution",
        metadata={"benchmark_rows_in_training": overlap},
    )


@dg.asset_check(asset=INTEGRATED_DATASET, blocking=True)
def integrated_dataset_class_balance(
    context: dg.AssetCheckExecutionContext,
    training_data_policy: TrainingDataPolicy,
    store: DatasetStore,
    task: TaskDefinition,
) -> dg.AssetCheckResult:
    """Enough rows, and no class below `MLOPS_MIN_CLASS_SHARE` of the training set: a
    flood of one class from contributions must not starve the others."""
    from mlops_assets.core.data.integration import class_balance

    balance = class_balance(
        _training_set(context, store)[task.schema().label],
        task.schema().classes,
        min_share=training_data_policy.min_class_share,
        min_rows=training_data_policy.min_training_rows,
    )
    return dg.AssetCheckResult(
        passed=balance.passed,
        description=balance.description,
        metadata={
            "rows": balance.rows,
            "class_shares": balance.shares,
            "min_class_share": training_data_policy.min_class_share,
        },
    )
