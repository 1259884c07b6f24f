"""Merging the reference train part and accepted contributions into one training set."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from mlops_assets.core.contributions import ROW_INDEX
from mlops_assets.core.hashing import frame_sha256
from mlops_assets.task import TaskSchema

SOURCE = "source"
CONTRIBUTION_ID = "contribution_id"
CONTRIBUTOR = "contributor"
ROW_ID = "row_id"
PROVENANCE_COLUMNS = (ROW_ID, SOURCE, CONTRIBUTION_ID, CONTRIBUTOR, ROW_INDEX)

REFERENCE_SOURCE = "reference"
CONTRIBUTION_SOURCE = "contribution"

# Measurements are compared at this many decimals so 5.1 and 5.1000000001 are one flower.
_MATCH_DECIMALS = 6


@dataclass(frozen=True)
class Contribution:
    """An accepted contribution's clean rows (task columns plus ``row_index``)."""

    contribution_id: str
    contributor: str
    rows: pd.DataFrame


@dataclass(frozen=True)
class IntegratedDataset:
    frame: pd.DataFrame
    sha256: str
    stats: dict[str, int] = field(default_factory=dict)
    rows_by_source: dict[str, int] = field(default_factory=dict)


def integrate(
    reference_train: pd.DataFrame,
    contributions: list[Contribution],
    benchmark: pd.DataFrame,
    task: TaskSchema,
    *,
    seed: int,
) -> IntegratedDataset:
    """Append contributions to the reference train part, then clean and shuffle the result.

    Rows whose measurements appear in the benchmark are removed (a contribution that copies
    benchmark rows must not inflate the score), duplicates across sources are dropped keeping
    the first occurrence (reference rows first), and the result is shuffled with ``seed``.
    Every row carries a stable ``row_id`` of ``source:contribution_id:row_index``.
    """
    parts = [_with_provenance(reference_train, REFERENCE_SOURCE, "iris", "", task)]
    parts += [
        _with_provenance(c.rows, CONTRIBUTION_SOURCE, c.contribution_id, c.contributor, task)
        for c in contributions
    ]
    merged = pd.concat(parts, ignore_index=True)
    rows_in = len(merged)

    leaked = _matches(merged, benchmark, task.feature_names)
    merged = merged.loc[~leaked]
    duplicated = _match_keys(merged, task.columns).duplicated(keep="first")
    merged = merged.loc[~duplicated]

    shuffled = merged.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    frame = shuffled[[*task.columns, *PROVENANCE_COLUMNS]]
    return IntegratedDataset(
        frame=frame,
        sha256=frame_sha256(frame),
        stats={
            "rows_in": rows_in,
            "benchmark_rows_removed": int(leaked.sum()),
            "duplicates_removed": int(duplicated.sum()),
            "rows_out": len(frame),
        },
        rows_by_source={str(k): int(v) for k, v in frame[CONTRIBUTION_ID].value_counts().items()},
    )


def benchmark_overlap(frame: pd.DataFrame, benchmark: pd.DataFrame, task: TaskSchema) -> int:
    """Number of rows of ``frame`` whose measurements equal a benchmark row's."""
    return int(_matches(frame, benchmark, task.feature_names).sum())


def _with_provenance(
    rows: pd.DataFrame, source: str, contribution_id: str, contributor: str, task: TaskSchema
) -> pd.DataFrame:
    frame = rows[task.columns].copy()
    index = rows[ROW_INDEX] if ROW_INDEX in rows else pd.Series(range(len(rows)), index=rows.index)
    frame[ROW_INDEX] = index.astype("int64").to_numpy()
    frame[SOURCE] = source
    frame[CONTRIBUTION_ID] = contribution_id
    frame[CONTRIBUTOR] = contributor
    frame[ROW_ID] = f"{source}:{contribution_id}:" + frame[ROW_INDEX].astype(str)
    return frame


def _match_keys(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    keys = frame[columns].copy()
    numeric = keys.select_dtypes("number").columns
    keys[numeric] = keys[numeric].round(_MATCH_DECIMALS)
    return keys


def _matches(frame: pd.DataFrame, other: pd.DataFrame, columns: list[str]) -> pd.Series:
    if other.empty or frame.empty:
        return pd.Series(False, index=frame.index)
    left = pd.MultiIndex.from_frame(_match_keys(frame, columns))
    right = pd.MultiIndex.from_frame(_match_keys(other, columns))
    return pd.Series(left.isin(right), index=frame.index)
