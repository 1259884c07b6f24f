"""Row-level validation against the task schema, shared by reference data and contributions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_assets.task import TaskSchema

REASON_COLUMN = "rejection_reasons"


@dataclass(frozen=True)
class RowValidation:
    """The outcome of validating a frame: typed valid rows and the rejected rows with reasons.

    ``valid`` has exactly the task's columns (float features, canonical label) and keeps the
    input index; ``rejected`` keeps every original column as read plus ``rejection_reasons``
    (``;``-separated codes such as ``not_numeric:sepal_width``).
    """

    valid: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def reason_counts(self) -> dict[str, int]:
        return count_reasons(self.rejected)


def validate_rows(frame: pd.DataFrame, task: TaskSchema) -> RowValidation:
    """Coerce and check every row of ``frame``, which must already have the task's columns.

    A row is rejected, with every reason that applies, when a feature is missing, not numeric,
    not finite, or outside the feature's physical range, or when its label is unknown.
    """
    reasons = pd.DataFrame(index=frame.index)
    typed = pd.DataFrame(index=frame.index)
    for feature in task.features:
        raw = frame[feature.name]
        text = raw.astype("string").str.strip()
        missing = raw.isna() | (text == "")
        values = pd.to_numeric(text.where(~missing), errors="coerce").astype("float64")
        nan_text = text.str.lower().isin(["nan", "+nan", "-nan"]).fillna(False)
        not_numeric = values.isna() & ~missing & ~nan_text
        non_finite = (~np.isfinite(values) & values.notna()) | nan_text
        finite = values.where(~non_finite)
        out_of_range = (finite < feature.minimum) | (finite > feature.maximum)
        reasons[f"missing_value:{feature.name}"] = missing
        reasons[f"not_numeric:{feature.name}"] = not_numeric
        reasons[f"non_finite:{feature.name}"] = non_finite
        reasons[f"out_of_range:{feature.name}"] = out_of_range.fillna(False)
        typed[feature.name] = values

    labels = frame[task.label].map(task.normalise_label)
    reasons["unknown_label"] = labels.isna()
    typed[task.label] = labels

    flags = reasons.to_numpy(dtype=bool)
    bad = flags.any(axis=1)
    codes = np.array(reasons.columns)
    joined = [";".join(codes[row]) for row in flags[bad]]

    rejected = frame.loc[bad].copy()
    rejected[REASON_COLUMN] = pd.Series(joined, index=rejected.index, dtype="string")
    valid = typed.loc[~bad].astype({f: "float64" for f in task.feature_names})
    valid[task.label] = valid[task.label].astype("string")
    return RowValidation(valid=valid, rejected=rejected)


def count_reasons(rejected: pd.DataFrame) -> dict[str, int]:
    """How many rejected rows carry each reason code."""
    if rejected.empty:
        return {}
    codes = rejected[REASON_COLUMN].str.split(";").explode()
    return {str(k): int(v) for k, v in codes.value_counts().sort_index().items()}


def describe_rejections(rejected: pd.DataFrame, *, limit: int = 5, row_offset: int = 0) -> str:
    """One line naming the first few bad rows and why, e.g. ``row 3: not_numeric:sepal_width``."""
    lines = [
        f"row {index + row_offset}: {reasons}"
        for index, reasons in rejected[REASON_COLUMN].head(limit).items()
    ]
    more = len(rejected) - limit
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")
