"""A candidate: trained on the integrated dataset, scored next to the baseline on the same
benchmark, and logged to the active MLflow run with everything that explains it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from mlops_assets.core.modeling.training import TrainingSpec
from mlops_assets.errors import UpstreamMissingError
from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.core.modeling.evaluation import Evaluation
    from mlops_assets.core.modeling.valuation import Valuation, ValuationPolicy


@dataclass(frozen=True)
class DatasetRef:
    """The training data of a candidate: the integrated dataset's content hash (its version),
    where it is stored, and whose contributions it holds."""

    sha256: str
    uri: str
    contributions: list[str] = field(default_factory=list)
    contributors: list[str] = field(default_factory=list)
    # Contributions with rows that earlier rows had brought (``integration.AlreadyGiven``).
    already_given: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], uri: str) -> DatasetRef:
        return cls(
            sha256=metadata["sha256"],
            uri=uri,
            contributions=list(metadata.get("contributions", [])),
            contributors=list(metadata.get("contributors", [])),
            already_given=dict(metadata.get("already_given", {})),
        )


@dataclass(frozen=True)
class BaselineRef:
    """The model a candidate is scored against, as ``baseline_model`` recorded it."""

    model_uri: str
    model_name: str
    version: str
    alias: str | None = None  # the alias it was found by; None when pinned
    contributions: list[str] | None = None  # what it was trained on; None: unknown
    training_fingerprint: str | None = None  # how it was trained; None: unknown

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> BaselineRef:
        known = metadata.get("training_contributions_known", False)
        return cls(
            model_uri=metadata["model_uri"],
            model_name=metadata["model_name"],
            version=str(metadata["version"]),
            alias=metadata.get("alias") or None,
            contributions=list(metadata["training_contributions"]) if known else None,
            training_fingerprint=metadata.get("training_fingerprint") or None,
        )

    def trained_alike(self, fingerprint: str) -> AlreadyTrained | None:
        """This baseline, when it was trained on the same data the same way as a candidate of
        ``fingerprint`` would be (``TrainingSpec.fingerprint``); None when it was not, or
        when that is unknown."""
        if self.training_fingerprint != fingerprint:
            return None
        return AlreadyTrained(self.model_name, self.version, fingerprint)


@dataclass(frozen=True)
class AlreadyTrained:
    """Why no candidate is trained: a registered version was trained on exactly this data
    with the same estimator, hyperparameters, seeds, task and code."""

    model_name: str
    version: str
    fingerprint: str

    @property
    def reason(self) -> str:
        return (
            f"not trained: {self.model_name} v{self.version} was trained on exactly this data "
            "with the same estimator, hyperparameters, seed, task and code, so a candidate "
            "would be the same model"
        )

    def to_metadata(self) -> dict[str, str]:
        return {
            "skipped": self.reason,
            "same_as_version": self.version,
            "training_fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Candidate:
    """What ``trained_model`` hands to registration (its materialization metadata)."""

    model_uri: str
    model_id: str
    model_uuid: str
    mlflow_run_id: str
    data_sha256: str
    contributions: list[str]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    deltas: dict[str, float]
    paired_outcome: dict[str, int]
    baseline_version: str
    baseline_model_name: str
    baseline_alias: str | None = None
    estimator: str = ""
    training_fingerprint: str = ""
    signature: str = ""
    # Per summary metric: delta, paired bootstrap interval [low, high] and p-value.
    delta_intervals: dict[str, dict[str, float]] = field(default_factory=dict)
    valuation: dict[str, Any] = field(default_factory=dict)  # Valuation.to_dict()
    excluded_contributions: dict[str, str] = field(default_factory=dict)  # id -> why

    def to_metadata(self) -> dict[str, Any]:
        return {**asdict(self), "baseline_alias": self.baseline_alias or ""}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> Candidate:
        if "delta_intervals" not in metadata:
            raise UpstreamMissingError(
                "the trained_model materialization has no paired benchmark intervals (it "
                "predates them)",
                hint="materialize trained_model again, then registered_model_version",
            )
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in metadata.items() if k in names}
        known["baseline_alias"] = known.get("baseline_alias") or None
        return cls(**known)


@dataclass(frozen=True)
class TrainedCandidate:
    """A candidate with its two evaluations, for the tables shown with it."""

    candidate: Candidate
    evaluation: Evaluation
    baseline_evaluation: Evaluation
    experiment_id: str
    valuation: Valuation

    def to_metadata(self) -> dict[str, Any]:
        """What ``trained_model`` shows, ordered as the UI lists it: the answer first,
        identifiers next, raw data last; ``*_table``/``confusion_matrix``/``valuation_summary``
        are markdown, ``contribution_values`` a table's rows."""
        from mlops_assets.core.modeling.evaluation import (
            confusion_matrix_markdown,
            metrics_markdown,
        )

        c = self.candidate
        return {
            "accuracy": c.metrics["accuracy"],
            "baseline_accuracy": c.baseline_metrics["accuracy"],
            "baseline_version": c.baseline_version,
            "baseline_model_name": c.baseline_model_name,
            "baseline_alias": c.baseline_alias or "",
            "metrics_table": metrics_markdown(c.metrics, c.baseline_metrics, c.delta_intervals),
            "valuation_summary": self.valuation.markdown(),
            "contribution_values": self.valuation.rows(),
            "confusion_matrix": confusion_matrix_markdown(self.evaluation),
            **c.to_metadata(),
        }


def train_candidate(
    frame: pd.DataFrame,
    benchmark: pd.DataFrame,
    task: TaskSchema,
    *,
    spec: TrainingSpec,
    data: DatasetRef,
    benchmark_uri: str,
    baseline: BaselineRef,
    tracking_uri: str,
    valuation_policy: ValuationPolicy,
    save_training_data: Callable[[pd.DataFrame, str], str],
    registered_alike: Callable[[str], AlreadyTrained | None] = lambda _: None,
    confidence: float = 0.95,
) -> TrainedCandidate | AlreadyTrained:
    """Value the contributions ``baseline`` was not trained on, leave out those that harm
    the model (stored as their own training set by ``save_training_data(frame, sha256)``,
    which returns its URI), train on the rest, score it next to ``baseline`` on
    ``benchmark`` with paired intervals at ``confidence`` (the gate's), and log params,
    metrics, tags, dataset inputs, evaluation artifacts, the valuation and the model (with a
    signature and an input example) to the active MLflow run.

    Nothing is trained when ``registered_alike(fingerprint)`` finds a registered version
    trained on exactly the data that is left, the same way: that version is returned."""
    import mlflow

    from mlops_assets.core.modeling.evaluation import evaluate, metric_deltas, paired_outcome
    from mlops_assets.core.modeling.scoring import delta_intervals
    from mlops_assets.core.modeling.training import train_model
    from mlops_assets.core.modeling.valuation import value_contributions
    from mlops_assets.core.registry.models import load_sklearn_model, log_sklearn_model

    valuation = replace(
        value_contributions(
            frame,
            benchmark,
            task,
            spec=spec,
            known=baseline.contributions,
            policy=valuation_policy,
            already_given=data.already_given,
        ),
        dataset_sha256=data.sha256,
    )
    frame, data = _without_excluded(frame, data, valuation, save_training_data)
    fingerprint = spec.fingerprint(data.sha256, task)  # of the data actually trained on
    if (alike := baseline.trained_alike(fingerprint) or registered_alike(fingerprint)) is not None:
        return alike

    model = train_model(
        frame,
        task,
        estimator=spec.estimator,
        hyperparameters=spec.hyperparameters,
        seed=spec.seed,
        seeds=spec.seeds,
    )
    evaluation = evaluate(model, benchmark, task)
    baseline_evaluation = evaluate(
        load_sklearn_model(baseline.model_uri, tracking_uri), benchmark, task
    )
    deltas = metric_deltas(evaluation.metrics, baseline_evaluation.metrics)
    intervals = delta_intervals(
        evaluation, baseline_evaluation, seed=spec.seed, confidence=confidence
    )
    mlflow.log_params(
        {"estimator": spec.estimator, "seed": spec.seed, **spec.hyperparameters}
        | {"training_seeds": len(spec.training_seeds)}
        | {"training_rows": len(frame), "benchmark_rows": len(benchmark)}
    )
    mlflow.log_metrics(evaluation.metrics)
    mlflow.log_metrics({f"baseline_{k}": v for k, v in baseline_evaluation.metrics.items()})
    mlflow.log_metrics({f"delta_{k}": v for k, v in deltas.items()})
    mlflow.log_metrics(
        {
            f"delta_{k}_{end}": getattr(i, end)
            for k, i in intervals.items()
            for end in ("low", "high")
        }
        | {"valuation_seconds": valuation.seconds}
    )
    mlflow.log_dict(valuation.to_dict(), "valuation/contribution_values.json")
    mlflow.set_tags(
        {
            "data_sha256": data.sha256,
            "contributions": json.dumps(data.contributions),
            "contributors": json.dumps(data.contributors),
            "baseline_version": baseline.version,
            "training_fingerprint": fingerprint,
        }
    )
    _log_datasets(frame, benchmark, task, data, benchmark_uri)
    _log_evaluation_artifacts(evaluation, baseline_evaluation, deltas)
    info = log_sklearn_model(
        model, name="model", input_example=frame[task.feature_names].head(5), task=task
    )
    mlflow.log_metrics(evaluation.metrics, model_id=info.model_id)
    run = mlflow.active_run()
    assert run is not None
    candidate = Candidate(
        model_uri=info.model_uri,
        model_id=info.model_id,
        model_uuid=info.model_uuid,
        mlflow_run_id=run.info.run_id,
        data_sha256=data.sha256,
        contributions=data.contributions,
        metrics=evaluation.metrics,
        baseline_metrics=baseline_evaluation.metrics,
        deltas=deltas,
        paired_outcome=paired_outcome(evaluation, baseline_evaluation),
        baseline_version=baseline.version,
        baseline_model_name=baseline.model_name,
        baseline_alias=baseline.alias,
        estimator=spec.estimator,
        training_fingerprint=fingerprint,
        signature=str(info.signature) if info.signature else "",
        delta_intervals={k: i.to_dict() for k, i in intervals.items()},
        valuation=valuation.to_dict(),
        excluded_contributions={v.contribution_id: v.reason for v in valuation.excluded},
    )
    return TrainedCandidate(
        candidate, evaluation, baseline_evaluation, run.info.experiment_id, valuation
    )


def _without_excluded(
    frame: pd.DataFrame,
    data: DatasetRef,
    valuation: Valuation,
    save: Callable[[pd.DataFrame, str], str],
) -> tuple[pd.DataFrame, DatasetRef]:
    """The training set without the excluded contributions, stored and versioned as its own
    dataset (the integrated dataset stays as it is: they are valued again next time)."""
    from mlops_assets.core.common.hashing import frame_sha256
    from mlops_assets.core.data.integration import CONTRIBUTION_ID, CONTRIBUTOR
    from mlops_assets.core.modeling.valuation import without_excluded

    if not valuation.excluded:
        return frame, data
    kept = without_excluded(frame, valuation).reset_index(drop=True)
    sha256 = frame_sha256(kept)
    ids = set(kept[CONTRIBUTION_ID])
    return kept, replace(
        data,
        sha256=sha256,
        uri=save(kept, sha256),
        contributions=[c for c in data.contributions if c in ids],
        contributors=sorted({c for c in kept[CONTRIBUTOR] if c}),
    )


def _log_datasets(
    frame: pd.DataFrame,
    benchmark: pd.DataFrame,
    task: TaskSchema,
    data: DatasetRef,
    benchmark_uri: str,
) -> None:
    import mlflow

    from mlops_assets.core.common.hashing import frame_sha256

    training = mlflow.data.from_pandas(
        frame,
        source=data.uri,
        targets=task.label,
        name="integrated_dataset",
        digest=data.sha256[:16],
    )
    scoring = mlflow.data.from_pandas(
        benchmark,
        source=benchmark_uri,
        targets=task.label,
        name="benchmark",
        digest=frame_sha256(benchmark)[:16],
    )
    mlflow.log_input(training, context="training")
    mlflow.log_input(scoring, context="evaluation")


def _log_evaluation_artifacts(
    candidate: Evaluation, baseline: Evaluation, deltas: dict[str, float]
) -> None:
    # The pictures (confusion matrices, calibration, ...) are logged by trained_model, under
    # plots/, with the same bytes the Dagster UI shows.
    import mlflow

    mlflow.log_text(candidate.report, "evaluation/classification_report.txt")
    mlflow.log_dict(
        {"candidate": candidate.to_dict(), "baseline": baseline.to_dict(), "deltas": deltas},
        "evaluation/evaluation.json",
    )
