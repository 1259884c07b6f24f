"""The canonical reference data (iris): loading, validation and the fixed benchmark split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_assets.core.intake.validation import describe_rejections, validate_rows
from mlops_assets.errors import ReferenceDataError
from mlops_assets.task import TaskSchema

SOURCE_FILE = "file"
SOURCE_SKLEARN = "sklearn"


@dataclass(frozen=True)
class ReferenceData:
    """Validated reference rows and where they came from (``file`` or ``sklearn``)."""

    frame: pd.DataFrame
    source: str
    location: str
    fallback_reason: str | None = None


@dataclass(frozen=True)
class BenchmarkSplit:
    train: pd.DataFrame
    benchmark: pd.DataFrame


def load_reference_data(path: Path, task: TaskSchema) -> ReferenceData:
    """Read and validate the reference CSV at ``path``.

    Falls back to scikit-learn's bundled iris only when the file is missing or holds no data
    rows; a file that is present but invalid raises :class:`ReferenceDataError` naming the bad
    columns or rows, because silently training on other data would hide the problem.
    """
    fallback_reason = _why_unusable(path)
    if fallback_reason is None:
        frame = _read_reference_csv(path, task)
        if not frame.empty:
            return ReferenceData(
                validate_reference(frame, task, origin=str(path)), SOURCE_FILE, str(path)
            )
        fallback_reason = f"{path} has a header but no data rows"
    if task.name != "iris":
        raise ReferenceDataError(
            f"the {task.name} task's reference data is unusable: {fallback_reason}",
            hint="fix the task file's `reference` (or MLOPS_IRIS_CSV); only iris has a "
            "bundled copy to fall back to",
        )
    frame = sklearn_iris(task)
    return ReferenceData(
        validate_reference(frame, task, origin="sklearn.datasets.load_iris"),
        SOURCE_SKLEARN,
        "sklearn.datasets.load_iris",
        fallback_reason,
    )


def _why_unusable(path: Path) -> str | None:
    if not path.exists():
        return f"{path} does not exist"
    if not path.read_bytes().strip():
        return f"{path} is empty"
    return None


def _read_reference_csv(path: Path, task: TaskSchema) -> pd.DataFrame:
    try:
        # Read everything as text so that validation, not the parser, reports bad values.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ReferenceDataError(
            f"{path} is not a readable UTF-8 CSV: {exc}",
            hint="restore data/iris.csv from the repository (git checkout data/iris.csv)",
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in task.columns if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in task.columns]
    if missing or unexpected:
        raise ReferenceDataError(
            f"{path} has the wrong columns: missing {missing or 'none'}, "
            f"unexpected {unexpected or 'none'}",
            hint=f"the header must be exactly {','.join(task.columns)}",
        )
    return frame[task.columns]


def validate_reference(frame: pd.DataFrame, task: TaskSchema, *, origin: str) -> pd.DataFrame:
    """Return ``frame`` typed (float features, canonical labels), or raise naming the bad rows.

    Row numbers in the message are CSV line numbers (the header is line 1).
    """
    result = validate_rows(frame.reset_index(drop=True), task)
    if not result.rejected.empty:
        raise ReferenceDataError(
            f"{origin} has {len(result.rejected)} invalid row(s): "
            + describe_rejections(result.rejected, row_offset=2),
            hint="fix those rows or restore data/iris.csv from the repository",
        )
    missing_classes = sorted(set(task.classes) - set(result.valid[task.label]))
    if missing_classes:
        raise ReferenceDataError(
            f"{origin} has no rows of class(es) {missing_classes}",
            hint="the reference data must contain every class of the task",
        )
    return result.valid.reset_index(drop=True)


def sklearn_iris(task: TaskSchema) -> pd.DataFrame:
    """scikit-learn's bundled copy of iris (no network), in the task's column layout."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    frame = pd.DataFrame(bunch.data, columns=task.feature_names)
    frame[task.label] = [str(bunch.target_names[t]) for t in bunch.target]
    return frame


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
    """What ``iris_dataset`` shows: where the data came from, row counts, the content hashes
    of both parts (the benchmark's is what every attestation names), class counts."""
    from mlops_assets.core.common.hashing import frame_sha256

    counts = reference.frame[task.label].value_counts().sort_index()
    return {
        "source": reference.source,
        "source_location": reference.location,
        "fallback_reason": reference.fallback_reason or "",
        "dagster/row_count": len(reference.frame),
        "train_rows": len(split.train),
        "benchmark_rows": len(split.benchmark),
        "benchmark_sha256": frame_sha256(split.benchmark),
        "train_sha256": frame_sha256(split.train),
        "class_counts": {str(k): int(v) for k, v in counts.items()},
        "preview": f"```\n{split.train.head(5).to_string(index=False)}\n```",
    }


def check_task_file(path: Path) -> dict[str, object]:
    """What ``mlops task check`` prints: the task file read and validated, and its reference
    data read and validated against it (a missing reference file is an error here: only
    the iris task falls back to scikit-learn's copy)."""
    from mlops_assets.task import CATEGORICAL, load_task

    task = load_task(path)
    if not task.reference:
        raise ReferenceDataError(
            f"{path}: task.reference is not set", hint="name the reference CSV or Parquet file"
        )
    reference = Path(task.reference)
    if reason := _why_unusable(reference):
        raise ReferenceDataError(
            f"{path}: task.reference: {reason}", hint="fix the path (relative to the task file)"
        )
    frame = validate_reference(_read_reference_csv(reference, task), task, origin=str(reference))
    features = []
    for f in task.features:
        if f.kind == CATEGORICAL:
            described = f"categorical, values {list(f.values)}"
        else:
            described = f"numeric {f.minimum:g} to {f.maximum:g} {f.unit}".rstrip()
        features.append(
            {
                "name": f.name,
                "type": f.kind,
                "described": f"{described}; missing: {f.missing}",
                "aliases": list(f.aliases),
            }
        )
    return {
        "name": task.name,
        "label": task.label,
        "classes": list(task.classes),
        "features": features,
        "reference": {
            "location": str(reference),
            "rows": len(frame),
            "class_counts": {str(k): int(v) for k, v in frame[task.label].value_counts().items()},
        },
    }
