"""What each new contribution is worth: its value in the retrain's game, with an interval.

The players are the contributions in the training data that the champion was not trained on;
everything else (the reference rows and the champion's contributions) is the fixed base. A
coalition S is worth v(S) = score(base + S) - score(base): a model trained with the candidate's
config on those rows, scored on the benchmark with the primary metric, oriented so positive is
better (a log-loss gain is a drop in log loss).

A contribution's value is its average marginal gain over random orders of arrival (a
random-order value, so the values add up to v(all players)), where a contribution of more rows
tends to arrive earlier: each arrives when its first row would, in a uniformly random order of
all rows (an exponential clock whose rate is its row count; the weighted Shapley value of the
dual game). With every contribution of equal size this is the Shapley value. Unlike the
Shapley value it cannot be raised by splitting a dataset across names: the first part of a
split dataset arrives exactly when the whole would, and whenever more data helps less once
some is there, the parts together earn at most what the whole would.

Exact over all 2^n coalitions up to ``exact_max_players``; beyond, sampled orders (each
order's marginals add up to v(all) exactly, so the estimate keeps that sum) until the time
budget or ``max_permutations``, with a standard error. Every coalition model is scored on the
benchmark and on the same bootstrap resamples of it (``scoring``), and values are linear in
the scores, so each value gets a benchmark interval for free; it is widened by a sampled
value's standard error and, for an estimator with randomness (trained with several seeds and
averaged), by the spread of the value over those seeds.

A contribution is left out of the candidate when its value is below zero beyond its interval,
or when it belongs to a group whose values together are: the contributions of one contributor,
or all those that made the model worse. Splitting harmful data across names does not hide it.

Long on purpose: one algorithm (the game, its exact and sampled solutions, the test of
harmful groups and :func:`recompute`, which ``mlops verify`` replays), whose parts share the
private ``_Game`` and ``_Group``.
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
    SAMPLE_WEIGHT,
    SOURCE,
)
from mlops_assets.core.modeling.evaluation import (
    LOWER_IS_BETTER,
    member_predictions,
    predict_on,
)
from mlops_assets.core.modeling.scoring import (
    RESAMPLES,
    bootstrap_counts,
    interval,
    weighted_scores,
    with_spread,
)
from mlops_assets.core.modeling.training import TrainingSpec, build_estimator, fit, model_input

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.task import TaskSchema

INCLUDED, EXCLUDED, NOTHING_NEW = "included", "excluded", "nothing_new"
VALUE_COLUMNS = (
    "contributor",
    "contribution",
    "rows",
    "value",
    "interval",
    "leave_one_out",
    "status",
)
# How the order of arrival is drawn (see the module docstring), as attestations record it.
ARRIVAL = "by rows: a contribution arrives when its first row would, in a random order of rows"


@dataclass(frozen=True)
class ValuationPolicy:
    """How contributions are valued (``MLOPS_VALUATION_*``, ``MLOPS_EXCLUDE_HARMFUL``).

    ``permutations``: replay exactly this many sampled orders instead of stopping at the
    budget (``mlops verify`` recomputes a sampled valuation so)."""

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
    """One player's worth: value and interval, leave-one-out delta, status (``included``,
    ``excluded``, or ``nothing_new`` when earlier rows had brought all of its rows)."""

    contribution_id: str
    contributor: str
    rows: int  # rows it was valued on: those no earlier row had brought
    value: float
    value_interval: tuple[float, float]
    standard_error: float  # of the sampled estimate and over training seeds; 0 when exact
    loo_delta: float  # v(all) - v(all without it)
    status: str
    reason: str  # one sentence a contributor understands
    rows_already_given: int = 0  # its rows that earlier rows had brought

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
    arrival: str = ARRIVAL
    training_seeds: list[int] = field(default_factory=list)
    # Groups left out together (by contributor, or every contribution that made the model
    # worse): their members, summed value and interval.
    joint_exclusions: list[dict[str, Any]] = field(default_factory=list)
    # Contributions with rows that earlier ones had brought (``integration.AlreadyGiven``).
    already_given: dict[str, dict[str, Any]] = field(default_factory=dict)
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
            "exact values"
            if self.method == "exact"
            else f"values estimated from {self.permutations} sampled orders"
        )
        seeds = (
            f", each model averaged over {len(self.training_seeds)} training seeds"
            if len(self.training_seeds) > 1
            else ""
        )
        lines = [
            f"**{len(self.values)} new contribution(s)**, {how} on the benchmark's "
            f"{self.metric} (positive = better){seeds}. Together they moved {self.metric} "
            f"from {self.base_score:.4f} (base alone) to {self.all_score:.4f}: "
            f"{self.improvement:+.4f}."
            + (
                f" Left out as harmful: {', '.join(v.contribution_id for v in self.excluded)};"
                " the candidate is trained on the rest."
                if self.excluded
                else ""
            ),
            "",
            "Orders of arrival are drawn as if every row arrived in a random order: a "
            "contribution of more rows tends to come first, so splitting one across names "
            "does not raise its worth. Rows that earlier rows had already brought are not "
            "trained on twice and earn nothing.",
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
    already_given: dict[str, dict[str, Any]] | None = None,
) -> Valuation:
    """Value the contributions of ``frame`` (an integrated dataset) that are not in ``known``
    (the champion's; None: unknown, so every contribution is new).

    ``already_given``: the integrated dataset's record of rows that earlier rows had brought
    (contribution id -> ``rows``, ``of``, ``sentence``, ``contributor``); a new contribution
    none of whose rows is left is valued at exactly 0 as ``nothing_new``."""
    started = time.perf_counter()
    already_given = already_given or {}
    contributed = frame[frame[SOURCE] == CONTRIBUTION_SOURCE]
    sizes = contributed.groupby(CONTRIBUTION_ID, sort=True)[CONTRIBUTOR].agg(["first", "size"])
    known_set = set(known or [])
    players = [cid for cid in sizes.index if cid not in known_set]
    base_contributions = [cid for cid in sizes.index if cid in known_set]
    emptied = [
        _nothing_new(cid, given)
        for cid, given in sorted(already_given.items())
        if cid not in known_set and cid not in sizes.index
    ]
    recipe = {
        "training": asdict(spec),
        "policy": asdict(policy),
        "already_given": already_given,
        "training_seeds": list(spec.training_seeds),
    }
    if not players:
        return Valuation(
            policy.metric,
            "none",
            policy.seed,
            values=emptied,
            base_contributions=base_contributions,
            **recipe,
        )

    from threadpoolctl import threadpool_limits

    game = _Game(frame, benchmark, task, spec, players, policy)
    n = len(players)
    rates = [float(sizes.loc[cid, "size"]) for cid in players]
    # Hundreds of small models: BLAS threads cost more than they give on matrices this small
    # (a logistic regression on iris fit 3.6 times faster with one, on a busy 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        if n <= policy.exact_max_players:
            values, errors = _exact(game, rates), np.zeros(n)
            method, permutations = "exact", 0
        else:
            values, errors, permutations = _sampled(game, rates, policy, started)
            method = "permutation"
    full = (1 << n) - 1
    empty, everything = game.utility(0), game.utility(full)
    loo = [float(everything[0] - game.utility(full & ~(1 << i))[0]) for i in range(n)]
    samples = []  # per player: its value on each resample, widened by its other errors
    for i in range(n):
        spread = math.hypot(errors[i], game.seed_spread(values[i]))
        samples.append(with_spread(values[i, 1 : 1 + RESAMPLES], spread, seed=policy.seed + i))
    harmful, joint = _harmful(
        players, [str(sizes.loc[c, "first"]) for c in players], values, samples, policy
    )
    result = []
    for i, cid in enumerate(players):
        low, high = interval(samples[i])
        value = ContributionValue(
            contribution_id=cid,
            contributor=str(sizes.loc[cid, "first"]),
            rows=int(sizes.loc[cid, "size"]),
            value=round(float(values[i, 0]), 6),
            value_interval=(low, high),
            standard_error=round(math.hypot(errors[i], game.seed_spread(values[i])), 6),
            loo_delta=round(loo[i], 6),
            status=EXCLUDED if cid in harmful else INCLUDED,
            reason="",
            rows_already_given=int(already_given.get(cid, {}).get("rows", 0)),
        )
        reason = _sentence(value, policy.metric, harmful.get(cid))
        if given := already_given.get(cid):
            reason += f" ({given['sentence']})"
        result.append(replace(value, reason=reason))
    own = -1.0 if policy.metric in LOWER_IS_BETTER else 1.0
    return Valuation(
        metric=policy.metric,
        method=method,
        seed=policy.seed,
        values=result + emptied,
        base_contributions=base_contributions,
        base_score=round(own * float(empty[0]), 6),
        all_score=round(own * float(everything[0]), 6),
        improvement=round(float(everything[0] - empty[0]), 6),
        permutations=permutations,
        coalitions_trained=len(game.cache),
        training_rows_cap=policy.max_training_rows if game.sampled else 0,
        seconds=round(time.perf_counter() - started, 3),
        joint_exclusions=joint,
        **recipe,
    )


def without_excluded(frame: pd.DataFrame, valuation: Valuation) -> pd.DataFrame:
    """``frame`` without the rows of the contributions the valuation excluded."""
    excluded = [v.contribution_id for v in valuation.excluded]
    return frame[~frame[CONTRIBUTION_ID].isin(excluded)] if excluded else frame


def _nothing_new(cid: str, given: dict[str, Any]) -> ContributionValue:
    return ContributionValue(
        contribution_id=cid,
        contributor=str(given.get("contributor", "")),
        rows=0,
        value=0.0,
        value_interval=(0.0, 0.0),
        standard_error=0.0,
        loo_delta=0.0,
        status=NOTHING_NEW,
        reason=str(given["sentence"]),
        rows_already_given=int(given["rows"]),
    )


@dataclass(frozen=True)
class _Group:
    """Contributions whose values are tested together, and why they belong together."""

    members: list[int]
    why: str  # "of the same contributor" | "that also made the model worse"


# A contribution joins a group's test only if it leans harmful on its own: at least this share
# of its resamples below zero (a clean one whose value is noise around zero rarely does).
LEANS_HARMFUL = 0.8


def _harmful(
    players: list[str],
    contributors: list[str],
    values: np.ndarray,
    samples: list[np.ndarray],
    policy: ValuationPolicy,
) -> tuple[dict[str, dict[str, Any] | None], list[dict[str, Any]]]:
    """Which players are left out, each with the group it was left out with (None: on its
    own), and the groups' records.

    A player is harmful when its interval lies below 0. Splitting harmful rows across
    contributions or names widens each part's interval, not their sum's, so groups are
    tested too: the contributions of one contributor, and all contributions, that lean
    harmful (``LEANS_HARMFUL`` of their resamples below 0). When a group's summed interval
    lies below 0, every member is left out; the members already left out on their own count
    towards the sum (they are part of the evidence), and nothing else joins."""
    if not policy.exclude_harmful:
        return {}, []
    harmful: dict[str, dict[str, Any] | None] = {}
    for i, cid in enumerate(players):
        if interval(samples[i])[1] < 0:
            harmful[cid] = None
    leaning = [i for i in range(len(players)) if np.mean(samples[i] < 0) >= LEANS_HARMFUL]
    groups = [
        _Group([i for i in leaning if contributors[i] == who], f"of {who}")
        for who in sorted(set(contributors))
    ]
    groups.append(_Group(leaning, "that also made the model worse"))
    records = []
    for group in groups:
        joining = [i for i in group.members if players[i] not in harmful]
        if len(group.members) < 2 or not joining:
            continue
        together = np.sum([samples[i] for i in group.members], axis=0)
        low, high = interval(together)
        if high >= 0:
            continue
        record = {
            "contributions": [players[i] for i in group.members],
            "why": group.why,
            "value": round(float(sum(values[i, 0] for i in group.members)), 6),
            "value_interval": [low, high],
        }
        records.append(record)
        for i in joining:
            harmful[players[i]] = record
    return harmful, records


def _sentence(value: ContributionValue, metric: str, group: dict[str, Any] | None) -> str:
    if value.status == EXCLUDED and group is not None:
        low, high = group["value_interval"]
        others = len(group["contributions"]) - 1
        return (
            f"{_moved(value.value, value.value_interval, metric)}; together with {others} other "
            f"contribution(s) {group['why']} it {_moved(group['value'], (low, high), metric)}"
            ": left out of this model, and valued again in the next retrain"
        )
    said = _moved(value.value, value.value_interval, metric)
    if value.status == EXCLUDED:
        return f"{said}: left out of this model, and valued again in the next retrain"
    if value.value_interval[0] > 0:
        return f"{said}: it made the model better"
    return f"{said}: not clearly better or worse than without it"


def _moved(gain: float, bounds: tuple[float, float], metric: str) -> str:
    """E.g. "lowered log loss on the benchmark by 0.056 ± 0.015"."""
    spread = (bounds[1] - bounds[0]) / 2
    moved = "lowered" if (gain > 0) == (metric in LOWER_IS_BETTER) else "raised"
    # Significant digits, not decimals: a contribution's worth on a large training set is
    # often a ten-thousandth, which three decimals would show as 0.000.
    return f"{moved} {metric.replace('_', ' ')} on the benchmark by {abs(gain):.2g} ± {spread:.2g}"


class _Game:
    """v(S) for coalitions given as bit masks over the players; each trained and scored once.

    ``utility(mask)`` is the model's score on the benchmark, then on each bootstrap resample
    of it, then (for a model averaging several training seeds) each seed's model's score on
    the benchmark: values are linear in all of them."""

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
        self.seeds = len(spec.training_seeds)
        self.cache: dict[int, np.ndarray] = {}

    def utility(self, mask: int) -> np.ndarray:
        if mask not in self.cache:
            players = [i for i in range(mask.bit_length()) if mask >> i & 1]
            member = (self.code < 0) | np.isin(self.code, players)
            spec = self.spec
            model = fit(
                build_estimator(
                    spec.estimator, spec.hyperparameters, spec.seed, self.task, spec.seeds
                ),
                self.x[member],
                self.y[member],
                None if self.weights is None else self.weights[member],
            )
            predictions = predict_on(model, self.benchmark_x, self.benchmark_y, self.task)
            scores = [weighted_scores(predictions, self.counts, self.metric)]
            for seeded in member_predictions(model, self.benchmark_x, self.benchmark_y, self.task):
                scores.append(weighted_scores(seeded, self.counts[:1], self.metric))
            self.cache[mask] = np.concatenate(scores)
        return self.cache[mask]

    def seed_spread(self, value: np.ndarray) -> float:
        """The standard error, over training seeds, of a value computed with averaged models:
        the spread of the value each seed's models alone give, over the root of their number."""
        if self.seeds < 2:
            return 0.0
        per_seed = value[1 + RESAMPLES :]
        return float(np.std(per_seed, ddof=1) / math.sqrt(len(per_seed)))


def arrival_probabilities(rates: list[float]) -> dict[tuple[int, int], float]:
    """P(exactly the players in mask S arrive before player i), keyed (i, S), when player j
    arrives at an exponential time of rate ``rates[j]``:
    sum over T within S of (-1)^|T| * rate_i / (rate_i + rate(N - S - i) + rate(T))."""
    n = len(rates)
    result = {}
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            for subset in combinations(others, size):
                rest = sum(rates[j] for j in others if j not in subset)
                terms = [
                    (-1) ** len(dropped)
                    * rates[i]
                    / (rates[i] + rest + sum(rates[j] for j in dropped))
                    for k in range(len(subset) + 1)
                    for dropped in combinations(subset, k)
                ]
                result[i, sum(1 << j for j in subset)] = math.fsum(terms)
    return result


def _exact(game: _Game, rates: list[float]) -> np.ndarray:
    """phi_i = sum over S without i of P(S arrives before i) * (v(S + i) - v(S))."""
    n = len(rates)
    values = np.zeros((n, len(game.utility(0))))
    for (i, mask), probability in arrival_probabilities(rates).items():
        values[i] += probability * (game.utility(mask | (1 << i)) - game.utility(mask))
    return values


def _sampled(
    game: _Game, rates: list[float], policy: ValuationPolicy, started: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean marginal gains over seeded random orders of arrival (exponential clocks with the
    players' rates), and their standard errors."""
    n = len(rates)
    rng = np.random.default_rng(policy.seed)
    scale = 1.0 / np.asarray(rates)
    total = np.zeros((n, len(game.utility(0))))
    point = []  # per order, each player's marginal on the benchmark itself
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
        for i in np.argsort(rng.exponential(scale)):
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
    sampled = recorded["method"] == "permutation"
    policy = {**recorded["policy"], "permutations": recorded["permutations"] if sampled else None}
    return value_contributions(
        frame,
        benchmark,
        task,
        spec=TrainingSpec(**recorded["training"]),
        known=recorded["base_contributions"],
        policy=ValuationPolicy(**policy),
        already_given=recorded.get("already_given"),
    )
