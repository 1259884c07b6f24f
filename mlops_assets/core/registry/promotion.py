"""The promotion gate: does a candidate beat the champion on the benchmark?"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_assets.core.modeling.evaluation import LOWER_IS_BETTER


@dataclass(frozen=True)
class PromotionGate:
    """What a candidate must show to replace the champion.

    ``min_improvement``: the least gain on ``metric`` (always "better" direction).
    ``significance``: when above 0, the candidate must also beat the champion in an exact
    McNemar test at that level: both models predict the same benchmark rows, so the rows only
    one of them gets right decide whether the difference is more than chance.
    ``min_benchmark_rows``: a benchmark smaller than this proves nothing; no promotion.
    """

    metric: str = "accuracy"
    min_improvement: float = 0.0
    significance: float = 0.0
    min_benchmark_rows: int = 30


@dataclass(frozen=True)
class PairedOutcome:
    """How two models did on the same benchmark rows: the rows only one of them got right."""

    rows: int
    candidate_only_correct: int
    baseline_only_correct: int

    @property
    def mcnemar_p_value(self) -> float:
        """Two-sided exact McNemar test: a binomial test of the discordant rows at 1/2."""
        from scipy.stats import binomtest

        discordant = self.candidate_only_correct + self.baseline_only_correct
        if discordant == 0:
            return 1.0
        return float(binomtest(self.candidate_only_correct, discordant, 0.5).pvalue)


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    metric: str
    candidate_value: float
    baseline_value: float
    improvement: float
    p_value: float | None = None


def decide_promotion(
    gate: PromotionGate,
    *,
    candidate_value: float,
    baseline_value: float,
    paired: PairedOutcome,
    champion_version: str | None,
    candidate_version: str,
) -> PromotionDecision:
    """Promote only on a large enough benchmark, when the candidate is strictly better by at
    least ``gate.min_improvement`` and, if the gate asks for it, significantly so.

    ``improvement`` is signed so that positive always means better, also for metrics where
    lower is better (log loss). The reason is one line naming the numbers that decided.
    """
    sign = -1.0 if gate.metric in LOWER_IS_BETTER else 1.0
    improvement = round(sign * (candidate_value - baseline_value), 6)
    p_value = paired.mcnemar_p_value if gate.significance > 0 else None
    values = f"{gate.metric} {candidate_value:.4f} vs {baseline_value:.4f}"
    champion = f"v{champion_version}" if champion_version else "none"
    stays = f"champion stays {champion}"
    if paired.rows < gate.min_benchmark_rows:
        reason = (
            f"{values}: the benchmark has {paired.rows} rows, fewer than the "
            f"{gate.min_benchmark_rows} required to decide; {stays}"
        )
    elif improvement <= 0:
        reason = f"{values}: not better, {stays}"
    elif improvement < gate.min_improvement:
        reason = (
            f"{values} ({improvement:+.4f} < required {gate.min_improvement:.4f}): "
            f"not enough, {stays}"
        )
    elif p_value is not None and p_value >= gate.significance:
        reason = (
            f"{values} ({improvement:+.4f}), McNemar p={p_value:.3f} on "
            f"{paired.candidate_only_correct}/{paired.baseline_only_correct} discordant rows "
            f"≥ {gate.significance}: not significant, {stays}"
        )
    else:
        test = f", McNemar p={p_value:.3f}" if p_value is not None else ""
        reason = (
            f"{values} ({improvement:+.4f}{test}): promoted v{candidate_version} to champion, "
            f"was {champion}"
        )
        return PromotionDecision(
            True, reason, gate.metric, candidate_value, baseline_value, improvement, p_value
        )
    return PromotionDecision(
        False, reason, gate.metric, candidate_value, baseline_value, improvement, p_value
    )
