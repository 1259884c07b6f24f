"""Scoring models on the fixed benchmark and comparing them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.task import TaskSchema

# Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"log_loss"})
SUMMARY_METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc_ovr",
    "log_loss",
)


@dataclass(frozen=True)
class Evaluation:
    """Benchmark scores of one model: flat metrics, confusion matrix and a text report."""

    metrics: dict[str, float]
    confusion_matrix: list[list[int]]
    classes: list[str]
    report: str = field(repr=False)
    n_rows: int = 0
    # Per benchmark row, whether the prediction was right: what a paired test compares.
    correct: tuple[bool, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "confusion_matrix": self.confusion_matrix,
            "classes": self.classes,
            "n_rows": self.n_rows,
        }


def evaluate(model: Any, benchmark: pd.DataFrame, task: TaskSchema) -> Evaluation:
    """Accuracy, macro and per-class precision/recall/F1, one-vs-rest ROC AUC, log loss and
    the confusion matrix of ``model`` on ``benchmark``."""
    from sklearn import metrics as skm

    x = benchmark[task.feature_names]
    y_true = benchmark[task.label].astype(str).to_numpy()
    y_pred = np.asarray(model.predict(x)).astype(str)
    proba = _probabilities_in_task_order(model, x, task)
    labels = list(task.classes)

    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    scores = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "roc_auc_ovr": skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels),
        "log_loss": skm.log_loss(y_true, proba, labels=labels),
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
        correct=tuple(bool(c) for c in y_true == y_pred),
    )


def paired_outcome(candidate: Evaluation, baseline: Evaluation) -> dict[str, int]:
    """Benchmark rows, and the rows only the candidate / only the baseline got right."""
    pairs = list(zip(candidate.correct, baseline.correct, strict=True))
    return {
        "rows": len(pairs),
        "candidate_only_correct": sum(c and not b for c, b in pairs),
        "baseline_only_correct": sum(b and not c for c, b in pairs),
    }


def _probabilities_in_task_order(model: Any, x: pd.DataFrame, task: TaskSchema) -> np.ndarray:
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


def metrics_markdown(candidate: dict[str, float], baseline: dict[str, float]) -> str:
    """A markdown table of the summary metrics: candidate, baseline and the delta."""
    rows = ["| metric | candidate | baseline | delta |", "|---|---:|---:|---:|"]
    for name in SUMMARY_METRICS:
        delta = candidate[name] - baseline[name]
        rows.append(f"| {name} | {candidate[name]:.4f} | {baseline[name]:.4f} | {delta:+.4f} |")
    return "\n".join(rows)


def confusion_matrix_markdown(evaluation: Evaluation) -> str:
    """The confusion matrix as a markdown table (rows: true class, columns: predicted)."""
    header = "| true \\ predicted | " + " | ".join(evaluation.classes) + " |"
    rows = [header, "|---" * (len(evaluation.classes) + 1) + "|"]
    for name, counts in zip(evaluation.classes, evaluation.confusion_matrix, strict=True):
        rows.append(f"| **{name}** | " + " | ".join(str(c) for c in counts) + " |")
    return "\n".join(rows)
