"""What each new contribution is worth: its Shapley value in the retrain's game.

The players are the contributions in the training data that the champion was not trained on;
everything else (the reference rows and the champion's contributions) is the fixed base. A
coalition S is worth v(S) = score(base + S) - score(base): a model trained with the candidate's
config on those rows, scored on the benchmark with the primary metric, oriented so positive is
better (a log-loss gain is a drop in log loss). The Shapley values add up to v(all players),
the improvement all new contributions bring together.

Exact over all 2^n coalitions up to ``exact_max_players``; beyond, sampled permutations (each
permutation's marginals add up to v(all) exactly, so the estimate keeps that sum) until the
time budget or ``max_permutations``, with a standard error. Every coalition model is scored
on the benchmark and on the same bootstrap resamples of it (``scoring``), and Shapley values
are linear in the scores, so each value gets a benchmark interval for free; a sampled value's
interval is widened by its standard error.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_assets.core.data.integration import (
    CONTRIBUTION_ID,
    CONTRIBUTION_SOURCE,
    CONTRIBUTOR,
    SOURCE,
)
from mlops_assets.core.modeling.evaluation import LOWER_IS_BETTER, predict_on
from mlops_assets.core.modeling.scoring import (
    RESAMPLES,
    bootstrap_counts,
    interval,
    weighted_scores,
)
from mlops_assets.core.modeling.training import SAMPLE_WEIGHT, build_estimator, fit, model_input

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.core.modeling.candidate import TrainingSpec
    from mlops_assets.task import TaskSchema

INCLUDED, EXCLUDED = "included", "excluded"
VALUE_COLUMNS = (
    "contributor",
    "contribution",
    "rows",
    "value",
    "interval",
    "leave_one_out",
    "status",
)
_Z = 1.959964  # two-sided 95 %


@dataclass(frozen=True)
class ValuationPolicy:
    """How contributions are valued (``MLOPS_VALUATION_*``, ``MLOPS_EXCLUDE_HARMFUL``).

    ``permutations``: replay exactly this many sampled permutations instead of stopping at
    the budget (``mlops verify`` recomputes a sampled valuation so)."""

    metric: str
    seed: int
    exact_max_players: int
    budget_seconds: float
    max_permutations: int
    max_training_rows: int
    exclude_harmful: bool
    permutations: int | None = None


@dataclass(frozen=True)
class ContributionValue:
    """One player's worth: Shapley value and interval, leave-one-out delta, status."""

    contribution_id: str
    contributor: str
    rows: int
    value: float
    value_interval: tuple[float, float]
    standard_error: float  # of the sampled estimate; 0 when exact
    loo_delta: float  # v(all) - v(all without it)
    status: str  # included | excluded
    reason: str  # one sentence a contributor understands

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "value_interval": list(self.value_interval)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContributionValue:
        return cls(**{**data, "value_interval": tuple(data["value_interval"])})


@dataclass(frozen=True)
class Valuation:
    """The retrain's game and its outcome."""

    metric: str
    method: str  # exact | permutation | none (no new contribution)
    seed: int
    values: list[ContributionValue] = field(default_factory=list)
    base_contributions: list[str] = field(default_factory=list)
    base_score: float = 0.0  # the metric, in its own direction, of a model on the base alone
    all_score: float = 0.0  # ... on the base and every player
    improvement: float = 0.0  # v(all), positive = better: what the values add up to
    permutations: int = 0
    coalitions_trained: int = 0
    training_rows_cap: int = 0
    seconds: float = 0.0
    # What it takes to recompute it (``mlops verify``): the valued dataset's content hash,
    # the training spec and the policy.
    dataset_sha256: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)

    @property
    def excluded(self) -> list[ContributionValue]:
        return [v for v in self.values if v.status == EXCLUDED]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "values": [v.to_dict() for v in self.values]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Valuation:
        values = [ContributionValue.from_dict(v) for v in data.get("values", [])]
        return cls(**{**data, "values": values})

    def rows(self) -> list[dict[str, Any]]:
        """The ``contribution_values`` table (``VALUE_COLUMNS``), one row per player."""
        return [
            {
                "contributor": v.contributor,
                "contribution": v.contribution_id,
                "rows": v.rows,
                "value": v.value,
                "interval": f"[{v.value_interval[0]:+.4f}, {v.value_interval[1]:+.4f}]",
                "leave_one_out": v.loo_delta,
                "status": v.status,
            }
            for v in self.values
        ]

    def markdown(self) -> str:
        """A summary readable in the Dagster UI."""
        if not self.values:
            return "No new contribution in this retrain: nothing to value."
        how = (
            "exact Shapley values"
            if self.method == "exact"
            else f"Shapley values estimated from {self.permutations} sampled permutations"
        )
        lines = [
            f"**{len(self.values)} new contribution(s)**, {how} on the benchmark's "
            f"{self.metric} (positive = better). Together they moved {self.metric} from "
            f"{self.base_score:.4f} (base alone) to {self.all_score:.4f}: "
            f"{self.improvement:+.4f}."
            + (
                f" Left out as harmful: {', '.join(v.contribution_id for v in self.excluded)};"
                " the candidate is trained on the rest."
                if self.excluded
                else ""
            ),
            "",
            "| contributor | contribution | rows | value | 95 % interval | leave-one-out "
            "| status |",
            "|---|---|---:|---:|---|---:|---|",
        ]
        for v in sorted(self.values, key=lambda v: -v.value):
            low, high = v.value_interval
            lines.append(
                f"| {v.contributor} | {v.contribution_id} | {v.rows} | {v.value:+.4f} "
                f"| [{low:+.4f}, {high:+.4f}] | {v.loo_delta:+.4f} | {v.status} |"
            )
        lines += ["", *(f"- {v.contribution_id}: {v.reason}" for v in self.values)]
        return "\n".join(lines)


def value_contributions(
    frame: pd.DataFrame,
    benchmark: pd.DataFrame,
    task: TaskSchema,
    *,
    spec: TrainingSpec,
    known: list[str] | None,
    policy: ValuationPolicy,
) -> Valuation:
    """Value the contributions of ``frame`` (an integrated dataset) that are not in ``known``
    (the champion's; None: unknown, so every contribution is new) by their Shapley values."""
    started = time.perf_counter()
    contributed = frame[frame[SOURCE] == CONTRIBUTION_SOURCE]
    sizes = contributed.groupby(CONTRIBUTION_ID, sort=True)[CONTRIBUTOR].agg(["first", "size"])
    known_set = set(known or [])
    players = [cid for cid in sizes.index if cid not in known_set]
    base_contributions = [cid for cid in sizes.index if cid in known_set]
    recipe = {"training": asdict(spec), "policy": asdict(policy)}
    if not players:
        return Valuation(
            policy.metric, "none", policy.seed, base_contributions=base_contributions, **recipe
        )

    game = _Game(frame, benchmark, task, spec, players, policy)
    n = len(players)
    if n <= policy.exact_max_players:
        shapley, errors = _exact(game, n), np.zeros(n)
        method, permutations = "exact", 0
    else:
        shapley, errors, permutations = _permutations(game, n, policy, started)
        method = "permutation"
    full = (1 << n) - 1
    empty, everything = game.utility(0), game.utility(full)
    loo = [float(everything[0] - game.utility(full & ~(1 << i))[0]) for i in range(n)]
    values = []
    for i, cid in enumerate(players):
        low, high = interval(shapley[i, 1:])
        low, high = low - _Z * errors[i], high + _Z * errors[i]
        harmful = policy.exclude_harmful and high < 0
        value = ContributionValue(
            contribution_id=cid,
            contributor=str(sizes.loc[cid, "first"]),
            rows=int(sizes.loc[cid, "size"]),
            value=round(float(shapley[i, 0]), 6),
            value_interval=(round(low, 6), round(high, 6)),
            standard_error=round(float(errors[i]), 6),
            loo_delta=round(loo[i], 6),
            status=EXCLUDED if harmful else INCLUDED,
            reason="",
        )
        values.append(replace(value, reason=_sentence(value, policy.metric)))
    own = -1.0 if policy.metric in LOWER_IS_BETTER else 1.0
    return Valuation(
        metric=policy.metric,
        method=method,
        seed=policy.seed,
        values=values,
        base_contributions=base_contributions,
        base_score=round(own * float(empty[0]), 6),
        all_score=round(own * float(everything[0]), 6),
        improvement=round(float(everything[0] - empty[0]), 6),
        permutations=permutations,
        coalitions_trained=len(game.cache),
        training_rows_cap=policy.max_training_rows if game.sampled else 0,
        seconds=round(time.perf_counter() - started, 3),
        **recipe,
    )


def without_excluded(frame: pd.DataFrame, valuation: Valuation) -> pd.DataFrame:
    """``frame`` without the rows of the contributions the valuation excluded."""
    excluded = [v.contribution_id for v in valuation.excluded]
    return frame[~frame[CONTRIBUTION_ID].isin(excluded)] if excluded else frame


def _sentence(value: ContributionValue, metric: str) -> str:
    low, high = value.value_interval
    spread = (high - low) / 2
    lower_is_better = metric in LOWER_IS_BETTER
    name = metric.replace("_", " ")
    moved = "lowered" if (value.value > 0) == lower_is_better else "raised"
    # Significant digits, not decimals: a contribution's worth on a large training set is
    # often a ten-thousandth, which three decimals would show as 0.000.
    said = f"{moved} {name} on the benchmark by {abs(value.value):.2g} ± {spread:.2g}"
    if value.status == EXCLUDED:
        return f"{said}: left out of this model, and valued again in the next retrain"
    if low > 0:
        return f"{said}: it made the model better"
    return f"{said}: not clearly better or worse than without it"


class _Game:
    """v(S) for coalitions given as bit masks over the players; each scored once."""

    def __init__(
        self,
        frame: pd.DataFrame,
        benchmark: pd.DataFrame,
        task: TaskSchema,
        spec: TrainingSpec,
        players: list[str],
        policy: ValuationPolicy,
    ) -> None:
        self.sampled = len(frame) > policy.max_training_rows
        if self.sampled:  # one seeded sample: every coalition trains on its part of it
            frame = frame.sample(n=policy.max_training_rows, random_state=policy.seed)
        code = np.full(len(frame), -1)
        ids = frame[CONTRIBUTION_ID].to_numpy()
        for i, cid in enumerate(players):
            code[ids == cid] = i
        self.code = code
        # Arrays where the task allows: a coalition model is scored and thrown away, and
        # scikit-learn fits arrays about twice as fast (no feature-name checks) on iris.
        self.x = model_input(frame, task)
        self.y = frame[task.label].astype(str).to_numpy()
        weights = frame.get(SAMPLE_WEIGHT)
        self.weights = None if weights is None else weights.to_numpy()
        self.benchmark_x = model_input(benchmark, task)
        self.benchmark_y = benchmark[task.label]
        self.task, self.spec, self.metric = task, spec, policy.metric
        self.counts = bootstrap_counts(len(benchmark), resamples=RESAMPLES, seed=policy.seed)
        self.cache: dict[int, np.ndarray] = {}

    def utility(self, mask: int) -> np.ndarray:
        """Scores (benchmark, then each resample) of the model on base + coalition ``mask``."""
        if mask not in self.cache:
            players = [i for i in range(mask.bit_length()) if mask >> i & 1]
            member = (self.code < 0) | np.isin(self.code, players)
            spec = self.spec
            model = fit(
                build_estimator(spec.estimator, spec.hyperparameters, spec.seed, self.task),
                self.x[member],
                self.y[member],
                None if self.weights is None else self.weights[member],
            )
            predictions = predict_on(model, self.benchmark_x, self.benchmark_y, self.task)
            self.cache[mask] = weighted_scores(predictions, self.counts, self.metric)
        return self.cache[mask]


def _exact(game: _Game, n: int) -> np.ndarray:
    """phi_i = sum over S without i of |S|! (n-|S|-1)! / n! * (v(S + i) - v(S))."""
    shapley = np.zeros((n, len(game.counts)))
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in combinations(others, size):
                mask = sum(1 << j for j in subset)
                shapley[i] += weight * (game.utility(mask | (1 << i)) - game.utility(mask))
    return shapley


def _permutations(
    game: _Game, n: int, policy: ValuationPolicy, started: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean marginal contributions over seeded random orders, and their standard errors."""
    rng = np.random.default_rng(policy.seed)
    total = np.zeros((n, len(game.counts)))
    point = []  # per permutation, each player's marginal on the benchmark itself
    while True:
        done = len(point)
        if policy.permutations is not None:
            if done >= policy.permutations:
                break
        elif done >= policy.max_permutations or (
            done >= 2 and time.perf_counter() - started > policy.budget_seconds
        ):
            break
        mask, previous, marginal = 0, game.utility(0), np.zeros(n)
        for i in rng.permutation(n):
            mask |= 1 << int(i)
            current = game.utility(mask)
            total[i] += current - previous
            marginal[i] = current[0] - previous[0]
            previous = current
        point.append(marginal)
    m = len(point)
    errors = np.std(point, axis=0, ddof=1) / math.sqrt(m) if m > 1 else np.zeros(n)
    return total / m, errors, m


def recompute(
    recorded: dict[str, Any], frame: pd.DataFrame, benchmark: pd.DataFrame, task: TaskSchema
) -> Valuation:
    """The valuation ``recorded`` (``Valuation.to_dict()``) again, on the dataset it valued:
    the same players, spec, policy and seed, and a sampled one with its own permutations."""
    from mlops_assets.core.modeling.candidate import TrainingSpec

    sampled = recorded["method"] == "permutation"
    policy = {**recorded["policy"], "permutations": recorded["permutations"] if sampled else None}
    return value_contributions(
        frame,
        benchmark,
        task,
        spec=TrainingSpec(**recorded["training"]),
        known=recorded["base_contributions"],
        policy=ValuationPolicy(**policy),
    )
