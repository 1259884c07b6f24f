"""The promotion gate: does a candidate beat the champion on the benchmark?"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_assets.core.evaluation import LOWER_IS_BETTER


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    metric: str
    candidate_value: float
    baseline_value: float
    improvement: float


def decide_promotion(
    *,
    metric: str,
    candidate_value: float,
    baseline_value: float,
    min_improvement: float,
    champion_version: str | None,
    candidate_version: str,
) -> PromotionDecision:
    """Promote only when the candidate is strictly better by at least ``min_improvement``.

    ``improvement`` is signed so that positive always means better, also for metrics where
    lower is better (log loss).
    """
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    improvement = round(sign * (candidate_value - baseline_value), 6)
    promote = improvement > 0 and improvement >= min_improvement
    values = f"{metric} {candidate_value:.4f} vs {baseline_value:.4f}"
    champion = f"v{champion_version}" if champion_version else "none"
    if promote:
        reason = (
            f"{values} ({improvement:+.4f}): promoted v{candidate_version} to champion, "
            f"was {champion}"
        )
    elif improvement <= 0:
        reason = f"{values}: not better, champion stays {champion}"
    else:
        reason = (
            f"{values} ({improvement:+.4f} < required {min_improvement:.4f}): "
            f"not enough, champion stays {champion}"
        )
    return PromotionDecision(promote, reason, metric, candidate_value, baseline_value, improvement)
