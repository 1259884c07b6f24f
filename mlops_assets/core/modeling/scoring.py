"""Benchmark scores with their uncertainty: every score is computed on the benchmark itself
and on bootstrap resamples of its rows, the same resamples for every model, so a difference
between two models comes with a paired interval.

A resample is a row of counts (how often each benchmark row was drawn), so every metric is a
weighted metric and all resamples are scored at once with matrix products, never one
scikit-learn call per resample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlops_assets.core.modeling.evaluation import (
    LOWER_IS_BETTER,
    SUMMARY_METRICS,
    Evaluation,
    Predictions,
)

RESAMPLES = 1000
CONFIDENCE = 0.95
_EPSILON = float(np.finfo(np.float64).eps)  # the clip of scikit-learn's log_loss


def bootstrap_counts(rows: int, *, resamples: int, seed: int) -> np.ndarray:
    """``resamples + 1`` rows of draw counts over ``rows`` benchmark rows: first the benchmark
    itself (every row once), then the seeded resamples."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, rows, size=(resamples, rows))
    counts = np.zeros((resamples + 1, rows))
    counts[0] = 1.0
    np.add.at(counts, (np.repeat(np.arange(1, resamples + 1), rows), draws.ravel()), 1.0)
    return counts


def weighted_scores(predictions: Predictions, counts: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of ``predictions`` under each row of ``counts``; oriented so higher is
    better (losses negated)."""
    y, proba = predictions.true_index, predictions.probabilities
    total = counts.sum(axis=1)
    if metric == "accuracy":
        score = counts @ predictions.correct.astype(float) / total
    elif metric == "log_loss":
        picked = np.clip(proba[np.arange(len(y)), y], _EPSILON, 1.0)
        score = counts @ -np.log(picked) / total
    elif metric == "brier":
        onehot = np.eye(proba.shape[1])[y]
        score = counts @ ((proba - onehot) ** 2).sum(axis=1) / total
    elif metric in ("precision_macro", "recall_macro", "f1_macro"):
        score = _macro_from_confusion(counts, y, predictions.predicted_index, metric)
    elif metric == "roc_auc_ovr":
        score = np.mean([_auc(counts, y == k, proba[:, k]) for k in range(proba.shape[1])], 0)
    else:
        raise ValueError(f"no weighted form of metric {metric!r}")
    return -score if metric in LOWER_IS_BETTER else score


def _macro_from_confusion(
    counts: np.ndarray, y: np.ndarray, predicted: np.ndarray, metric: str
) -> np.ndarray:
    k = int(max(y.max(), predicted.max())) + 1
    cells = np.zeros((len(y), k * k))
    cells[np.arange(len(y)), y * k + predicted] = 1.0
    confusion = (counts @ cells).reshape(-1, k, k)  # [resample, true, predicted]
    hits = np.diagonal(confusion, axis1=1, axis2=2)
    predicted_n, true_n = confusion.sum(axis=1), confusion.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "precision_macro":
            per_class = hits / predicted_n
        elif metric == "recall_macro":
            per_class = hits / true_n
        else:
            per_class = 2 * hits / (predicted_n + true_n)
    return np.nan_to_num(per_class).mean(axis=1)  # zero_division=0, as evaluate()


def _auc(counts: np.ndarray, positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Weighted one-vs-rest ROC AUC (Mann-Whitney, ties count half) under each row of
    ``counts``: O(resamples x rows) after one sort."""
    order = np.argsort(score, kind="stable")
    sorted_score, is_positive = score[order], positive[order]
    weights = counts[:, order]
    group = np.concatenate([[0], np.cumsum(np.diff(sorted_score) != 0)])
    starts = np.flatnonzero(np.r_[True, np.diff(group) != 0])
    negative = np.add.reduceat(weights * ~is_positive, starts, axis=1)  # per tie group
    below = np.cumsum(negative, axis=1) - negative
    per_row = below[:, group] + 0.5 * negative[:, group]
    positives = (weights * is_positive).sum(axis=1)
    negatives = (weights * ~is_positive).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights * is_positive * per_row).sum(axis=1) / (positives * negatives)


@dataclass(frozen=True)
class DeltaInterval:
    """candidate - baseline on one metric, with its paired bootstrap interval at
    ``confidence`` and the two-sided test that is the same statement: ``p_value`` is below
    ``1 - confidence`` exactly when the interval excludes 0 (:func:`interval_and_p_value`)."""

    delta: float
    low: float
    high: float
    p_value: float
    confidence: float = CONFIDENCE

    def to_dict(self) -> dict[str, float]:
        return {
            "delta": self.delta,
            "low": self.low,
            "high": self.high,
            "p_value": self.p_value,
            "confidence": self.confidence,
        }

    def __str__(self) -> str:
        return f"{self.delta:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The interval of bootstrap ``samples`` at ``confidence``: the k-th smallest and k-th
    largest sample, k = ceil((1 - confidence) / 2 * n). Order statistics rather than
    interpolated percentiles, so that it excludes 0 exactly when :func:`two_sided_p_value`
    is below ``1 - confidence``."""
    values = np.sort(np.asarray(samples, dtype=float)[~np.isnan(samples)])
    if not len(values):
        return 0.0, 0.0
    k = max(1, math.ceil((1 - confidence) / 2 * len(values) - 1e-9))
    low, high = values[k - 1], values[len(values) - k]
    return round(float(low), 6) + 0.0, round(float(high), 6) + 0.0  # + 0.0: no "-0.0000"


def two_sided_p_value(samples: np.ndarray) -> float:
    """Twice the smaller share of bootstrap ``samples`` on either side of 0 (capped at 1):
    the test whose rejection at level a is the (1 - a) :func:`interval` excluding 0."""
    # At the interval's precision: a sample that shows as 0.000000 is 0 on both sides.
    values = np.round(np.asarray(samples, dtype=float), 6)
    values = values[~np.isnan(values)]
    if not len(values):
        return 1.0
    side = min(np.mean(values <= 0), np.mean(values >= 0))
    return round(min(1.0, 2 * float(side)), 6)


def jackknife_error(left_out: np.ndarray) -> float:
    """The jackknife standard error of a statistic from its values with each of m groups
    left out in turn: sqrt((m - 1) / m * sum((x_i - mean)^2)); it has m - 1 degrees of
    freedom."""
    m = len(left_out)
    if m < 2:
        return 0.0
    return float(math.sqrt((m - 1) / m * np.sum((left_out - np.mean(left_out)) ** 2)))


def with_spread(
    samples: np.ndarray, spread: float, *, seed: int, dof: int | None = None
) -> np.ndarray:
    """``samples`` plus independent noise of scale ``spread`` (drawn with ``seed``): the
    bootstrap distribution widened by another source of uncertainty (the training seed, or a
    sampled estimate's error), so one interval and one test carry both. Normal noise, or
    Student's t with ``dof`` degrees of freedom when ``spread`` is itself estimated from few
    draws (a standard error from m draws has m - 1): its quantiles then are the t's, wider."""
    if spread <= 0:
        return samples
    rng = np.random.default_rng(seed)
    if dof is None:
        return samples + rng.normal(0.0, spread, size=samples.shape)
    return samples + spread * rng.standard_t(dof, size=samples.shape)


def delta_intervals(
    candidate: Evaluation,
    baseline: Evaluation,
    *,
    seed: int,
    resamples: int = RESAMPLES,
    metrics: tuple[str, ...] = SUMMARY_METRICS,
    confidence: float = CONFIDENCE,
) -> dict[str, DeltaInterval]:
    """Paired bootstrap intervals of candidate - baseline for every summary metric (in the
    metric's own direction: a log-loss delta below 0 is an improvement), at ``confidence``,
    with the two-sided p-value that agrees with them.

    When the candidate averages parts that differ only by their random draws (a forest's
    trees, seeds' models: ``candidate.left_out``), the jackknife's standard error of the
    delta over those draws widens each interval, with Student's t quantiles of its degrees of
    freedom: other seeds would have given another candidate. The same estimate as a
    contribution's value (``valuation``), so the gate and the values agree."""
    counts = bootstrap_counts(candidate.n_rows, resamples=resamples, seed=seed)
    result = {}
    for metric in metrics:
        baseline_scores = weighted_scores(baseline.predictions, counts, metric)
        gain = weighted_scores(candidate.predictions, counts, metric) - baseline_scores
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        # The baseline is fixed: the spread of the left-out candidates' scores is the delta's.
        left_out = np.array([weighted_scores(m, counts[:1], metric)[0] for m in candidate.left_out])
        spread = jackknife_error(left_out)
        samples = with_spread(sign * gain[1:], spread, seed=seed, dof=max(len(left_out) - 1, 1))
        low, high = interval(samples, confidence)
        result[metric] = DeltaInterval(
            delta=round(float(sign * gain[0]), 6) + 0.0,
            low=low,
            high=high,
            p_value=two_sided_p_value(samples),
            confidence=confidence,
        )
    return result
