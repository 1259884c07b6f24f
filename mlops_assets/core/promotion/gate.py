"""The promotion gate: does a candidate beat the champion on the benchmark?"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_assets.core.modeling.evaluation import LOWER_IS_BETTER


@dataclass(frozen=True)
class PromotionGate:
    """What a candidate must show to replace the champion.

    ``min_improvement``: the least gain on ``metric`` (always "better" direction).
    ``significance``: when above 0, the candidate must also be better than the champion at
    that level. Both models predict the same benchmark rows, so the test is paired: the
    two-sided paired bootstrap over benchmark rows, whose p-value is below ``significance``
    exactly when the ``1 - significance`` interval of the difference shown with it excludes
    0 (``scoring.interval``): the test and the interval are one statement, for every metric.
    ``min_benchmark_rows``: a benchmark smaller than this proves nothing; no promotion.
    """

    metric: str
    min_improvement: float
    significance: float
    min_benchmark_rows: int


@dataclass(frozen=True)
class PairedOutcome:
    """How two models did on the same benchmark rows: the rows only one of them got right."""

    rows: int
    candidate_only_correct: int
    baseline_only_correct: int

    @property
    def mcnemar_p_value(self) -> float:
        """Two-sided exact McNemar test: a binomial test of the discordant rows at 1/2 (shown
        for accuracy; the gate decides on the bootstrap, which its interval agrees with)."""
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
    test: str = ""  # "paired bootstrap", when one ran


def decide_promotion(
    gate: PromotionGate,
    *,
    candidate_value: float,
    baseline_value: float,
    paired: PairedOutcome,
    interval: dict[str, float],
    champion_version: str | None,
    candidate_version: str,
) -> PromotionDecision:
    """Promote only on a large enough benchmark, when the candidate is strictly better by at
    least ``gate.min_improvement`` and, if the gate asks for it, significantly so.

    ``improvement`` is signed so that positive always means better, also for metrics where
    lower is better (log loss). ``interval``: the delta's paired bootstrap ``low``, ``high``,
    its ``confidence`` and the two-sided ``p_value`` (``scoring.DeltaInterval``). The reason
    is one line naming the numbers that decided; it never calls significant a difference
    whose interval includes 0.
    """
    sign = -1.0 if gate.metric in LOWER_IS_BETTER else 1.0
    improvement = round(sign * (candidate_value - baseline_value), 6)
    test, p_value = "", None
    if gate.significance > 0:
        test, p_value = "paired bootstrap", float(interval["p_value"])
    level = f"{100 * interval.get('confidence', 0.95):g}"
    values = (
        f"{gate.metric} {candidate_value:.4f} vs {baseline_value:.4f} "
        f"({level} % interval of the difference [{interval['low']:+.4f}, "
        f"{interval['high']:+.4f}])"
    )
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
            f"{values}, improvement {improvement:+.4f} < required {gate.min_improvement:.4f}: "
            f"not enough, {stays}"
        )
    elif p_value is not None and p_value >= gate.significance:
        reason = (
            f"{values}, two-sided bootstrap p={p_value:.3f} ≥ {gate.significance}: the "
            f"interval includes 0, not significant, {stays}"
        )
    else:
        result = f", two-sided bootstrap p={p_value:.3f}" if p_value is not None else ""
        reason = f"{values}{result}: promoted v{candidate_version} to champion, was {champion}"
        return PromotionDecision(
            True, reason, gate.metric, candidate_value, baseline_value, improvement, p_value, test
        )
    return PromotionDecision(
        False, reason, gate.metric, candidate_value, baseline_value, improvement, p_value, test
    )
