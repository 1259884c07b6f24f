"""Scoring models on the fixed benchmark and comparing them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.task import TaskSchema

# Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
SUMMARY_METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc_ovr",
    "log_loss",
    "brier",
)


@dataclass(frozen=True, eq=False)
class Predictions:
    """What a model said about each benchmark row: the true and predicted class (indices into
    the task's classes) and the probabilities; what paired tests and bootstrap intervals
    resample (``scoring``)."""

    true_index: np.ndarray
    predicted_index: np.ndarray
    probabilities: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        return self.true_index == self.predicted_index


def predict(model: Any, benchmark: pd.DataFrame, task: TaskSchema) -> Predictions:
    """``model``'s predictions on ``benchmark``, classes in the task's order."""
    return predict_on(model, benchmark[task.feature_names], benchmark[task.label], task)


def predict_on(model: Any, x: Any, labels: Any, task: TaskSchema) -> Predictions:
    """``model``'s predictions on features ``x`` (a frame or an array) whose true classes are
    ``labels``."""

    index = {name: i for i, name in enumerate(task.classes)}

    def codes(values: Any) -> np.ndarray:  # -1 for a label outside the task
        return np.fromiter((index.get(str(v), -1) for v in values), dtype=np.int64)

    return Predictions(
        true_index=codes(labels),
        predicted_index=codes(model.predict(x)),
        probabilities=_probabilities_in_task_order(model, x, task),
    )


def member_predictions(model: Any, x: Any, labels: Any, task: TaskSchema) -> list[Predictions]:
    """The predictions of each seed's model when ``model`` averages several (a soft-voting
    ensemble, perhaps after a preparing step): what the spread over training seeds is
    measured on by valuations of rules 1, whose models have no prior tree. Empty for a model
    of one seed."""
    from sklearn.ensemble import VotingClassifier

    voting = model.steps[-1][1] if hasattr(model, "steps") else model
    if not isinstance(voting, VotingClassifier):
        return []
    members = voting.estimators_
    prepared = model[:-1].transform(x) if hasattr(model, "steps") else x
    index = {name: i for i, name in enumerate(task.classes)}
    true = np.fromiter((index.get(str(v), -1) for v in labels), dtype=np.int64)
    order = [list(map(str, voting.le_.classes_)).index(name) for name in task.classes]
    result = []
    for member in members:
        proba = np.asarray(member.predict_proba(prepared))[:, order]
        result.append(Predictions(true, proba.argmax(axis=1), proba))
    return result


def vote_parts(model: Any, x: Any, labels: Any, task: TaskSchema) -> list[Predictions]:
    """The equal parts whose probabilities ``model`` averages, when it averages models that
    differ only by their random draws: each tree of a random forest (a forest's probability
    is its trees' mean; a soft vote of forests of one size, every tree's), else each seed's
    model of a soft vote. Empty for a model of one draw. The spread over training seeds is
    estimated from these (:func:`left_out_votes`): a forest's trees give many more
    independent draws than its three seeds. A vote's fixed prior (``training``'s
    ``FOREST_PRIOR_TREES``) is no draw: it is shared out over the parts, so that their mean is
    still the model's probability and no part, nor any group of them, says 0."""
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import RandomForestClassifier, VotingClassifier

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    prepared = model[:-1].transform(x) if hasattr(model, "steps") else x
    if not isinstance(final, (VotingClassifier, RandomForestClassifier)):
        return []
    voting = isinstance(final, VotingClassifier)
    members = list(final.estimators_) if voting else [final]
    classes = final.le_.classes_ if voting else final.classes_
    weights = np.ones(len(members)) if not voting or final.weights is None else final.weights
    drawn = [m for m in members if not isinstance(m, DummyClassifier)]
    prior = [
        (m, w) for m, w in zip(members, weights, strict=True) if isinstance(m, DummyClassifier)
    ]
    index = {name: i for i, name in enumerate(task.classes)}
    true = np.fromiter((index.get(str(v), -1) for v in labels), dtype=np.int64)
    order = [list(map(str, classes)).index(name) for name in task.classes]
    sizes = {len(m.estimators_) for m in drawn if isinstance(m, RandomForestClassifier)}
    forests = len(sizes) == 1 and all(isinstance(m, RandomForestClassifier) for m in drawn)
    if forests:
        dense = prepared.toarray() if hasattr(prepared, "toarray") else prepared
        # What a forest gives its trees, checked once here rather than by each of 150 trees.
        features = np.ascontiguousarray(dense, dtype=np.float32)
        parts = [
            tree.predict_proba(features, check_input=False) for m in drawn for tree in m.estimators_
        ]
        part_weight = 1.0 / sizes.pop()  # a tree's weight in its forest's vote of weight 1
    elif len(drawn) > 1:
        parts = [np.asarray(m.predict_proba(prepared)) for m in drawn]
        part_weight = 1.0
    else:
        return []
    parts = [np.asarray(p, dtype=float) for p in parts]
    if prior:  # the model is (sum of weighted parts + weighted prior) / (sum of weights)
        n = len(parts)
        extra = sum(w * np.asarray(m.predict_proba(prepared), dtype=float) for m, w in prior)
        weight = sum(w for _, w in prior)
        parts = [(part_weight * p + extra / n) / (part_weight + weight / n) for p in parts]
    result = []
    for proba in parts:
        proba = proba[:, order]
        result.append(Predictions(true, proba.argmax(axis=1), proba))
    return result


# The parts of an averaged model (:func:`vote_parts`) are left out in this many groups
# for the jackknife: enough degrees of freedom for the spread to be estimated (three seeds
# give two, where a 95 % bound needs 4.3 standard errors), few enough to score cheaply.
JACKKNIFE_GROUPS = 10


def left_out_votes(parts: list[Predictions], groups: int = JACKKNIFE_GROUPS) -> list[Predictions]:
    """The model averaging ``parts`` (their probabilities' mean) with each of ``groups``
    groups of them left out in turn (part j in group j mod ``groups``; every part its own
    group when fewer). Their spread is the jackknife's estimate of how the average varies with
    the random draws (``scoring.jackknife_error``); one part's own spread would be another,
    noisier model's (a forest of fewer trees puts probability 0 on rows the average does not)."""
    if len(parts) < 2:
        return []
    count = min(groups, len(parts))
    probabilities = np.asarray([p.probabilities for p in parts])
    total = probabilities.sum(axis=0)
    true = parts[0].true_index
    votes = []
    for g in range(count):
        left = probabilities[g::count]
        proba = (total - left.sum(axis=0)) / (len(parts) - len(left))
        votes.append(Predictions(true, proba.argmax(axis=1), proba))
    return votes


@dataclass(frozen=True)
class Evaluation:
    """Benchmark scores of one model: flat metrics, confusion matrix and a text report."""

    metrics: dict[str, float]
    confusion_matrix: list[list[int]]
    classes: list[str]
    report: str = field(repr=False)
    n_rows: int
    predictions: Predictions = field(repr=False)
    # When the model averages parts that differ only by their random draws (a forest's trees,
    # or seeds' models): its predictions with each group of parts left out in turn, what the
    # jackknife estimates the spread over training seeds from (:func:`left_out_votes`).
    left_out: list[Predictions] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "confusion_matrix": self.confusion_matrix,
            "classes": self.classes,
            "n_rows": self.n_rows,
        }


def evaluate(model: Any, benchmark: pd.DataFrame, task: TaskSchema) -> Evaluation:
    """Accuracy, macro and per-class precision/recall/F1, one-vs-rest ROC AUC, log loss, the
    Brier score (mean over rows of the squared distance between the predicted probabilities
    and the one-hot truth, 0 to 2) and the confusion matrix of ``model`` on ``benchmark``."""
    from sklearn import metrics as skm

    predictions = predict(model, benchmark, task)
    labels = list(task.classes)
    y_true = np.array(labels)[predictions.true_index]
    y_pred = np.array(labels)[predictions.predicted_index]
    proba = predictions.probabilities

    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    scores = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "roc_auc_ovr": _roc_auc(y_true, proba, labels),
        "log_loss": skm.log_loss(y_true, proba, labels=labels),
        "brier": float(np.mean(((proba - (y_true[:, None] == np.array(labels))) ** 2).sum(1))),
    }
    for i, name in enumerate(labels):
        scores[f"precision_{name}"] = precision[i]
        scores[f"recall_{name}"] = recall[i]
        scores[f"f1_{name}"] = f1[i]
    return Evaluation(
        metrics={k: round(float(v), 6) for k, v in scores.items()},
        confusion_matrix=skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        classes=labels,
        report=skm.classification_report(y_true, y_pred, labels=labels, digits=4, zero_division=0),
        n_rows=len(benchmark),
        predictions=predictions,
        left_out=left_out_votes(
            vote_parts(model, benchmark[task.feature_names], benchmark[task.label], task)
        ),
    )


def _roc_auc(y_true: np.ndarray, proba: np.ndarray, labels: list[str]) -> float:
    """One-vs-rest ROC AUC, macro-averaged; for a binary task the AUC of the positive class
    (the task's second), which both one-vs-rest AUCs equal."""
    from sklearn.metrics import roc_auc_score

    if len(labels) == 2:
        return roc_auc_score(y_true == labels[1], proba[:, 1])
    return roc_auc_score(y_true, proba, multi_class="ovr", labels=labels)


def paired_outcome(candidate: Evaluation, baseline: Evaluation) -> dict[str, int]:
    """Benchmark rows, and the rows only the candidate / only the baseline got right."""
    c, b = candidate.predictions.correct, baseline.predictions.correct
    return {
        "rows": len(c),
        "candidate_only_correct": int((c & ~b).sum()),
        "baseline_only_correct": int((b & ~c).sum()),
    }


def _probabilities_in_task_order(model: Any, x: Any, task: TaskSchema) -> np.ndarray:
    proba = np.asarray(model.predict_proba(x))
    order = [list(map(str, model.classes_)).index(name) for name in task.classes]
    return proba[:, order]


def benchmark_tags(metrics: dict[str, float]) -> dict[str, str]:
    """Summary metrics as registry version tags (``benchmark_accuracy`` ...)."""
    from mlops_assets.core.registry.tags import BENCHMARK_PREFIX

    return {f"{BENCHMARK_PREFIX}{name}": str(metrics[name]) for name in SUMMARY_METRICS}


def metric_deltas(candidate: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    """candidate - baseline for every metric both have."""
    return {k: round(candidate[k] - baseline[k], 6) for k in candidate if k in baseline}


def metrics_markdown(
    candidate: dict[str, float],
    baseline: dict[str, float],
    intervals: dict[str, dict[str, float]],
) -> str:
    """A markdown table of the summary metrics: candidate, baseline, the delta and its
    paired 95 % bootstrap interval."""
    rows = [
        "| metric | candidate | baseline | delta | 95 % interval |",
        "|---|---:|---:|---:|---|",
    ]
    for name in SUMMARY_METRICS:
        delta = candidate[name] - baseline[name]
        low, high = intervals[name]["low"], intervals[name]["high"]
        rows.append(
            f"| {name} | {candidate[name]:.4f} | {baseline[name]:.4f} | {delta:+.4f} "
            f"| [{low:+.4f}, {high:+.4f}] |"
        )
    return "\n".join(rows)


def confusion_matrix_markdown(evaluation: Evaluation) -> str:
    """The confusion matrix as a markdown table (rows: true class, columns: predicted)."""
    header = "| true \\ predicted | " + " | ".join(evaluation.classes) + " |"
    rows = [header, "|---" * (len(evaluation.classes) + 1) + "|"]
    for name, counts in zip(evaluation.classes, evaluation.confusion_matrix, strict=True):
        rows.append(f"| **{name}** | " + " | ".join(str(c) for c in counts) + " |")
    return "\n".join(rows)
