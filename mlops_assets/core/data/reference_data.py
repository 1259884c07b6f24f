"""The task's reference data: loading, validation and the fixed benchmark split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlops_assets.core.intake.columns import map_columns
from mlops_assets.core.intake.validation import (
    REASON_COLUMN,
    RowValidation,
    describe_rejections,
    validate_rows,
)
from mlops_assets.errors import ReferenceDataError
from mlops_assets.task import SKLEARN_PREFIX, Feature, TaskSchema

SOURCE_FILE = "file"
SOURCE_SKLEARN = "sklearn"
# The reason a reference row may be left out rather than fail the load: a value the task
# says is required is missing (the Palmer penguins have rows without measurements).
_MISSING_VALUE = "missing_value:"


@dataclass(frozen=True)
class ReferenceData:
    """Validated reference rows and where they came from (``file`` or ``sklearn``); the
    columns the task does not use and the rows left out for missing values, reported."""

    frame: pd.DataFrame
    source: str
    location: str
    fallback_reason: str | None = None
    dropped_columns: tuple[str, ...] = ()
    rows_left_out: int = 0
    left_out_reasons: dict[str, int] = field(default_factory=dict)  # reason -> rows


@dataclass(frozen=True)
class BenchmarkSplit:
    train: pd.DataFrame
    benchmark: pd.DataFrame


def load_reference_data(location: str | Path, task: TaskSchema) -> ReferenceData:
    """Read and validate the reference data at ``location``: a CSV or Parquet file, or
    ``sklearn:<loader>`` (one of scikit-learn's bundled toy sets).

    Columns are matched by the task's names and aliases; columns the task does not use are
    dropped and reported, and rows missing a value the task rejects are left out and
    reported. Any other bad value raises :class:`ReferenceDataError` naming the rows,
    because silently training on other data would hide the problem. Only the iris task falls
    back, to scikit-learn's bundled iris, when its file is missing or holds no data rows.
    """
    text = str(location)
    if text.startswith(SKLEARN_PREFIX):
        return _from_sklearn(text.removeprefix(SKLEARN_PREFIX), task)
    path = Path(text)
    fallback_reason = _why_unusable(path)
    if fallback_reason is None:
        raw = _read_reference_file(path)
        if not raw.empty:
            return _validated(raw, task, SOURCE_FILE, str(path))
        fallback_reason = f"{path} has a header but no data rows"
    if task.name != "iris":
        raise ReferenceDataError(
            f"the {task.name} task's reference data is unusable: {fallback_reason}",
            hint="fix the task file's `reference` (or MLOPS_REFERENCE); only iris has a "
            "bundled copy to fall back to",
        )
    return _from_sklearn("load_iris", task, fallback_reason)


def _why_unusable(path: Path) -> str | None:
    if not path.exists():
        return f"{path} does not exist"
    if not path.read_bytes().strip():
        return f"{path} is empty"
    return None


def _read_reference_file(path: Path) -> pd.DataFrame:
    """The file's columns as text, so that validation, not the parser, reports bad values."""
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path).astype("string")
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise ReferenceDataError(
            f"{path} is not a readable UTF-8 CSV or Parquet file: {exc}",
            hint="restore the task's reference file (for iris: git checkout data/iris.csv)",
        ) from None


def _from_sklearn(
    loader: str, task: TaskSchema, fallback_reason: str | None = None
) -> ReferenceData:
    """One of scikit-learn's bundled toy sets (no network), read like a file."""
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)()
    frame = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    frame["target"] = [str(bunch.target_names[t]) for t in bunch.target]
    location = f"sklearn.datasets.{loader}"
    return _validated(frame, task, SOURCE_SKLEARN, location, fallback_reason)


def _validated(
    raw: pd.DataFrame,
    task: TaskSchema,
    source: str,
    location: str,
    fallback_reason: str | None = None,
) -> ReferenceData:
    raw.columns = [str(c).strip() for c in raw.columns]
    mapping = map_columns(list(raw.columns), task)
    if task.label not in mapping.values() and "target" in raw.columns:
        mapping["target"] = task.label  # scikit-learn's name for the label
    missing = [c for c in task.columns if c not in mapping.values()]
    if missing:
        raise ReferenceDataError(
            f"{location} has the wrong columns: missing {missing} (it has {list(raw.columns)})",
            hint=f"name them as the task does ({', '.join(task.columns)}) or by an alias the "
            "task file lists",
        )
    frame = raw[list(mapping)].rename(columns=mapping)[task.columns]
    result = validate_reference(frame, task, origin=location)
    return ReferenceData(
        result.valid,
        source,
        location,
        fallback_reason,
        dropped_columns=tuple(c for c in raw.columns if c not in mapping),
        rows_left_out=len(result.rejected),
        left_out_reasons=result.reason_counts,
    )


def validate_reference(frame: pd.DataFrame, task: TaskSchema, *, origin: str) -> RowValidation:
    """``frame`` validated: typed valid rows (float numbers, canonical categories and labels,
    a fresh index), and the rows left out because a value the task requires is missing; any
    other bad value raises naming the rows. Row numbers in the message are CSV line numbers
    (the header is line 1)."""
    result = validate_rows(frame.reset_index(drop=True), task)
    codes = result.rejected[REASON_COLUMN].str.split(";")
    wrong = result.rejected[~codes.map(lambda c: all(r.startswith(_MISSING_VALUE) for r in c))]
    if not wrong.empty:
        raise ReferenceDataError(
            f"{origin} has {len(wrong)} invalid row(s): "
            + describe_rejections(wrong, row_offset=2),
            hint="fix those rows or restore the task's reference file from the repository",
        )
    missing_classes = sorted(set(task.classes) - set(result.valid[task.label]))
    if missing_classes:
        raise ReferenceDataError(
            f"{origin} has no rows of class(es) {missing_classes}",
            hint="the reference data must contain every class of the task",
        )
    return RowValidation(result.valid.reset_index(drop=True), result.rejected)


def sklearn_iris(task: TaskSchema) -> pd.DataFrame:
    """scikit-learn's bundled copy of iris (no network), in the task's column layout."""
    return _from_sklearn("load_iris", task).frame


PUBLIC_BENCHMARK_WARNING = (
    "the benchmark is a seeded split of the reference data: anyone who has the reference "
    "data can rebuild it, and the values contributions earn on it can be gamed. Name a "
    'private benchmark file in the task file (benchmark = "path") for contributors you '
    "do not trust."
)


def benchmark_split(
    reference: ReferenceData, task: TaskSchema, *, fraction: float, seed: int
) -> BenchmarkSplit:
    """The train part and the benchmark: the task's private benchmark file (read now, never
    copied anywhere public) beside the whole reference data, or else a seeded split of the
    reference data (:func:`split_benchmark`)."""
    if not task.private_benchmark:
        return split_benchmark(reference.frame, task, fraction=fraction, seed=seed)
    path = Path(task.benchmark)
    if reason := _why_unusable(path):
        raise ReferenceDataError(
            f"the {task.name} task's private benchmark is unusable: {reason}",
            hint="fix the task file's `benchmark` path (relative to the task file)",
        )
    raw = _read_reference_file(path)
    raw.columns = [str(c).strip() for c in raw.columns]
    mapping = map_columns(list(raw.columns), task)
    missing = [c for c in task.columns if c not in mapping.values()]
    if missing:
        # Its columns are not named, nor any value shown: the benchmark stays private.
        raise ReferenceDataError(
            f"the {task.name} task's private benchmark lacks the columns {missing}",
            hint=f"name its columns as the task does ({', '.join(task.columns)})",
        )
    frame = raw[list(mapping)].rename(columns=mapping)[task.columns]
    benchmark = validate_reference(frame, task, origin="the private benchmark").valid
    return BenchmarkSplit(train=reference.frame, benchmark=benchmark)


def split_benchmark(
    frame: pd.DataFrame, task: TaskSchema, *, fraction: float, seed: int
) -> BenchmarkSplit:
    """Split once, stratified by class and seeded, into a train part and a fixed benchmark.

    The same input, fraction and seed always give the same split, so the benchmark every model
    is scored on stays fixed across runs and machines.
    """
    from sklearn.model_selection import train_test_split

    train, benchmark = train_test_split(
        frame, test_size=fraction, random_state=seed, stratify=frame[task.label]
    )
    return BenchmarkSplit(
        train=train.sort_index().reset_index(drop=True),
        benchmark=benchmark.sort_index().reset_index(drop=True),
    )


def describe_split(reference: ReferenceData, split: BenchmarkSplit, task: TaskSchema) -> dict:
    """What the reference asset shows: where the data came from, what of it was left out,
    row counts, the content hashes of both parts (the benchmark's is what every attestation
    names), class counts."""
    from mlops_assets.core.common.hashing import frame_sha256
    from mlops_assets.core.common.row_matching import RowMatching

    counts = reference.frame[task.label].value_counts().sort_index()
    matching = RowMatching.for_task(task, pd.concat([split.train, split.benchmark]))
    return {
        "task": task.name,
        "source": reference.source,
        "source_location": reference.location,
        "fallback_reason": reference.fallback_reason or "",
        "dropped_columns": list(reference.dropped_columns),
        "rows_left_out": reference.rows_left_out,
        "rows_left_out_reasons": reference.left_out_reasons,
        "dagster/row_count": len(reference.frame),
        "train_rows": len(split.train),
        "benchmark_rows": len(split.benchmark),
        "benchmark_sha256": frame_sha256(split.benchmark),
        "benchmark": "private file" if task.private_benchmark else "split of the reference data",
        "benchmark_warning": "" if task.private_benchmark else PUBLIC_BENCHMARK_WARNING,
        "train_sha256": frame_sha256(split.train),
        "resolutions": matching.describe(),
        "class_counts": {str(k): int(v) for k, v in counts.items()},
        "preview": f"```\n{split.train.head(5).to_string(index=False)}\n```",
    }


def check_task_file(path: Path) -> dict[str, object]:
    """What ``mlops task check`` prints: the task file read and validated, and its reference
    data read and validated against it (a missing reference file is an error here: only
    the iris task falls back to scikit-learn's copy)."""
    from mlops_assets.task import load_task

    task = load_task(path)
    if not task.reference:
        raise ReferenceDataError(
            f"{path}: task.reference is not set",
            hint="name the reference CSV or Parquet file, or sklearn:<loader>",
        )
    if not task.reference.startswith(SKLEARN_PREFIX) and (
        reason := _why_unusable(Path(task.reference))
    ):
        raise ReferenceDataError(
            f"{path}: task.reference: {reason}", hint="fix the path (relative to the task file)"
        )
    from mlops_assets.core.common.row_matching import RowMatching

    reference = load_reference_data(task.reference, task)
    matching = RowMatching.for_task(task, reference.frame)
    return {
        "name": task.name,
        "label": task.label,
        "classes": list(task.classes),
        "duplicates": task.duplicates,
        "estimator": task.estimator,
        "primary_metric": task.primary_metric,
        "features": [
            {
                "name": f.name,
                "type": f.kind,
                "described": f"{_described(f)}; missing: {f.missing}"
                + (f"; resolution {matching.describe()[f.name]}" if not f.categorical else ""),
                "aliases": list(f.aliases),
            }
            for f in task.features
        ],
        "benchmark": _benchmark_described(task),
        "warnings": [] if task.private_benchmark else [PUBLIC_BENCHMARK_WARNING],
        "reference": {
            "location": reference.location,
            "rows": len(reference.frame),
            "class_counts": {
                str(k): int(v) for k, v in reference.frame[task.label].value_counts().items()
            },
            "dropped_columns": list(reference.dropped_columns),
            "rows_left_out": reference.rows_left_out,
            "rows_left_out_reasons": reference.left_out_reasons,
        },
    }


def _benchmark_described(task: TaskSchema) -> str:
    if not task.private_benchmark:
        return "a seeded split of the reference data (MLOPS_BENCHMARK_FRACTION)"
    reason = _why_unusable(Path(task.benchmark))
    return f"a private file: {reason}" if reason else "a private file (found; read at run time)"


def _described(feature: Feature) -> str:
    if feature.categorical:
        return f"categorical, values {list(feature.values)}"
    return f"numeric {feature.minimum:g} to {feature.maximum:g} {feature.unit}".rstrip()
