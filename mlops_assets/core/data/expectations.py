"""Great Expectations (1.x) suites for the task's data, and a compact summary of a validation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops_assets.task import TaskSchema


@dataclass(frozen=True)
class ExpectationOutcome:
    success: bool
    evaluated: int
    failures: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        if self.success:
            return f"all {self.evaluated} expectations met"
        return "; ".join(
            f"{f['expectation']}({f.get('column') or 'table'}): {f['detail']}"
            for f in self.failures
        )


def task_expectations(task: TaskSchema, *, min_rows: int) -> list[Any]:
    """Schema, types, ranges, allowed categories and labels, no nulls where the task rejects
    missing values, and a row-count floor for ``task``'s columns."""
    import great_expectations.expectations as gxe

    expectations: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=task.columns, exact_match=False),
        gxe.ExpectTableRowCountToBeBetween(min_value=min_rows),
        gxe.ExpectColumnValuesToNotBeNull(column=task.label),
        gxe.ExpectColumnValuesToBeInSet(column=task.label, value_set=list(task.classes)),
    ]
    for feature in task.features:
        if not feature.imputed:
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=feature.name))
        if feature.categorical:
            expectations.append(
                gxe.ExpectColumnValuesToBeInSet(column=feature.name, value_set=list(feature.values))
            )
            continue
        expectations += [
            gxe.ExpectColumnValuesToBeInTypeList(
                column=feature.name, type_list=["float64", "float32"]
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column=feature.name, min_value=feature.minimum, max_value=feature.maximum
            ),
        ]
    return expectations


def validate_expectations(
    frame: pd.DataFrame, expectations: list[Any], *, name: str
) -> ExpectationOutcome:
    """Run ``expectations`` on ``frame`` in an ephemeral GX context (nothing written to disk)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe(name)
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    result = batch.validate(suite)
    failures = [
        {
            "expectation": r.expectation_config.type,
            "column": r.expectation_config.kwargs.get("column"),
            "detail": _detail(r.result),
        }
        for r in result.results
        if not r.success
    ]
    return ExpectationOutcome(
        success=bool(result.success), evaluated=len(result.results), failures=failures
    )


def _detail(result: dict[str, Any]) -> str:
    if "unexpected_count" in result:
        sample = result.get("partial_unexpected_list", [])[:5]
        return f"{result['unexpected_count']} unexpected, e.g. {sample}"
    return f"observed {result.get('observed_value')!r}"
