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
budget or ``max_permutations``, with a standard error; the orders come in antithetic pairs
with stratified clocks, which cancel most of the spread a player's arrival position causes.

Within the budget: no coalition model is started past it, except the first two (the base, and
every new contribution together), whose time plans the game. More contributions than
``max_players``, or than the budget affords ``min_orders`` sampled orders for, are played in
batches (by contributor, then contribution id: a contributor's parts stay together); a batch's
value, interval and leave-one-out delta are split among its members by rows, and each value
says so. A deadline that cuts sampling short before two orders falls back to one batch, whose
value v(all) is exact. Every coalition model is scored on the
benchmark and on the same bootstrap resamples of it (``scoring``), and values are linear in
the scores, so each value gets a benchmark interval for free; it is widened by a sampled
value's standard error and, for an estimator with randomness (trained with several seeds and
averaged), by the spread of the value over its random draws: the jackknife over groups of the
averaged model's parts (a forest's trees), with Student's t quantiles.

A contribution is left out of the candidate when its value is below zero beyond its interval,
or when it belongs to a group whose values together are: the contributions of one contributor,
or all those that made the model worse. Splitting harmful data across names does not hide it;
a member unlike its group (clearly better rows, not harmful on its own) is judged alone.

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
    left_out_votes,
    member_predictions,
    predict_on,
    vote_parts,
)
from mlops_assets.core.modeling.scoring import (
    RESAMPLES,
    bootstrap_counts,
    interval,
    jackknife_error,
    weighted_scores,
    with_spread,
)
from mlops_assets.core.modeling.training import (
    FOREST_PRIOR_TREES,
    TrainingSpec,
    build_estimator,
    fit,
    model_input,
)

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
    # Most players one retrain values as separate players; beyond, contributions are valued in
    # that many batches (see ``_batches``). None: every contribution is a player and nothing is
    # planned by time (how valuations recorded before issue 29 are replayed).
    max_players: int | None = 24
    # Sample orders in antithetic pairs (the second reverses the first's clocks).
    antithetic: bool = True
    # Sampled orders the budget must afford (by the time of the first models): when fewer
    # would fit, fewer batches are played. A batch value from fewer orders is mostly noise.
    min_orders: int = 200
    # Replay: value in exactly this many batches (``mlops verify``), ignoring the budget.
    batches: int | None = None
    # How intervals and exclusions are made, so recorded valuations replay as they were made.
    # 1 (before issue 26's second step): the seeds' spread from each seed's model alone, with a
    # normal quantile, and a harmful group leaves out every member. 2: the jackknife's spread
    # over groups of the averaged model's parts, with Student's t (``_Game.seed_spread``), and
    # a member unlike its group is judged alone (``_unlike``). 3: a random forest's vote also
    # counts its prior tree (``training.FOREST_PRIOR_TREES``), as the models the pipeline trains.
    rules: int = 3


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
    # Contributions valued together as one player (1: valued alone); its value, interval and
    # leave-one-out delta are then the batch's, times its share of the batch's rows.
    batch_size: int = 1

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
    # How many players the game had: the contributions themselves, or (beyond
    # ``max_players``, or when the budget affords fewer) batches of them (``_batches``).
    batches: int = 0
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
                f" More than the game values one by one within its budget: they were played in "
                f"{self.batches} batch(es) (by contributor, then contribution id), each batch's "
                "value split among its members by rows (`MLOPS_VALUATION_MAX_PLAYERS`, "
                "`MLOPS_VALUATION_BUDGET_SECONDS`)."
                if 0 < self.batches < sum(v.status != NOTHING_NEW for v in self.values)
                else ""
            )
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
    row_counts, firsts = sizes["size"].to_dict(), sizes["first"].to_dict()
    rates = [float(row_counts[cid]) for cid in players]
    contributors = [str(firsts[cid]) for cid in players]
    # Hundreds of small models: BLAS threads cost more than they give on matrices this small
    # (a logistic regression on iris fit 3.6 times faster with one, on a busy 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        game_result = _play(game, rates, contributors, policy, started)
    batches, values, errors = game_result.batches, game_result.values, game_result.errors
    empty, everything = game.utility(0), game.utility((1 << len(batches)) - 1)
    shares = np.zeros(n)  # each contribution's share of its batch's rows
    samples = [np.empty(0)] * n  # per player: its value on each resample, widened
    member_values, member_errors, loo = np.zeros((n, values.shape[1])), np.zeros(n), np.zeros(n)
    for b, members in enumerate(batches):
        seeds = game.seed_spread(values[b])
        spread = math.hypot(errors[b], seeds)
        if policy.rules >= 2:
            # A sampled estimate's error is normal (over many blocks of orders); the seeds'
            # spread is estimated from few draws: Student's t, so the interval is wide enough.
            widened = with_spread(values[b, 1 : 1 + RESAMPLES], errors[b], seed=policy.seed + b)
            widened = with_spread(
                widened, seeds, seed=policy.seed + 100_003 + b, dof=game.seed_dof(values[b])
            )
        else:
            widened = with_spread(values[b, 1 : 1 + RESAMPLES], spread, seed=policy.seed + b)
        left_out = everything[0] - game.utility(((1 << len(batches)) - 1) & ~(1 << b))[0]
        batch_rows = sum(rates[i] for i in members)
        for i in members:
            # A batch's value is split among its members by rows: the same share of every
            # resample, so a sum over members stays the batch's own (never narrower).
            shares[i] = rates[i] / batch_rows
            member_values[i] = shares[i] * values[b]
            member_errors[i] = shares[i] * spread
            samples[i] = shares[i] * widened
            loo[i] = shares[i] * left_out
    harmful, joint = _harmful(players, contributors, member_values, samples, policy, rates)
    batch_size = {i: len(members) for members in batches for i in members}
    result = []
    for i, cid in enumerate(players):
        low, high = interval(samples[i])
        value = ContributionValue(
            contribution_id=cid,
            contributor=contributors[i],
            rows=int(row_counts[cid]),
            value=round(float(member_values[i, 0]), 6),
            value_interval=(low, high),
            standard_error=round(float(member_errors[i]), 6),
            loo_delta=round(float(loo[i]), 6),
            status=EXCLUDED if cid in harmful else INCLUDED,
            reason="",
            rows_already_given=int(already_given.get(cid, {}).get("rows", 0)),
            batch_size=batch_size[i],
        )
        reason = _sentence(value, policy.metric, harmful.get(cid))
        if value.batch_size > 1:
            reason += (
                f" (valued in one batch with {value.batch_size - 1} other contribution(s): "
                f"the batch's worth, split by rows, {shares[i]:.0%} of it)"
            )
        if given := already_given.get(cid):
            reason += f" ({given['sentence']})"
        result.append(replace(value, reason=reason))
    own = -1.0 if policy.metric in LOWER_IS_BETTER else 1.0
    return Valuation(
        metric=policy.metric,
        method=game_result.method,
        seed=policy.seed,
        values=result + emptied,
        base_contributions=base_contributions,
        base_score=round(own * float(empty[0]), 6),
        all_score=round(own * float(everything[0]), 6),
        improvement=round(float(everything[0] - empty[0]), 6),
        permutations=game_result.orders,
        coalitions_trained=game.fits,
        training_rows_cap=policy.max_training_rows if game.sampled else 0,
        seconds=round(time.perf_counter() - started, 3),
        joint_exclusions=joint,
        batches=len(batches),
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
# A member of a harmful group is judged on its own, not with the group, when it is unlike the
# group: its rows are better than the other members' rows (value per row) in at least this
# share of resamples, and no more than this share of its own resamples is below zero. A clean
# contribution that happens to lean below zero beside noisy ones is such a member; a part of
# split harmful data is not (its rows are as bad as the others'), or is harmful at this level
# on its own (one-sided).
UNLIKE_THE_GROUP = 0.95


def _harmful(
    players: list[str],
    contributors: list[str],
    values: np.ndarray,
    samples: list[np.ndarray],
    policy: ValuationPolicy,
    rows: list[float],
) -> tuple[dict[str, dict[str, Any] | None], list[dict[str, Any]]]:
    """Which players are left out, each with the group it was left out with (None: on its
    own), and the groups' records.

    A player is harmful when its interval lies below 0. Splitting harmful rows across
    contributions or names widens each part's interval, not their sum's, so groups are
    tested too: the contributions of one contributor, and all contributions, that lean
    harmful (``LEANS_HARMFUL`` of their resamples below 0). When a group's summed interval
    lies below 0, its members are left out; the members already left out on their own count
    towards the sum (they are part of the evidence), and nothing else joins. From
    ``policy.rules`` 2 on, a member unlike the group (``UNLIKE_THE_GROUP``) is not left
    out by the group's evidence: the others' harm says nothing about its rows."""
    if not policy.exclude_harmful:
        return {}, []
    harmful: dict[str, dict[str, Any] | None] = {}
    for i, cid in enumerate(players):
        if interval(samples[i])[1] < 0:
            harmful[cid] = None
    leaning = [i for i in range(len(players)) if np.mean(samples[i] < 0) >= LEANS_HARMFUL]
    by_contributor: dict[str, list[int]] = {}
    for i in leaning:
        by_contributor.setdefault(contributors[i], []).append(i)
    groups = [_Group(members, f"of {who}") for who, members in sorted(by_contributor.items())]
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
        if policy.rules >= 2:
            joining = [i for i in joining if not _unlike(i, joining, group.members, samples, rows)]
            if not joining:
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


def _unlike(
    i: int, joining: list[int], members: list[int], samples: list[np.ndarray], rows: list[float]
) -> bool:
    """Whether member ``i`` of a harmful group is unlike it (``UNLIKE_THE_GROUP``): not
    harmful on its own at that level, one-sided, and its rows clearly better than the other
    members' (compared per row, on the same resamples: parts differ in size). It is compared
    with the other members that are not left out on their own, when there are: those are the
    worst parts, and beside them any part of the same data would look better."""
    if np.mean(samples[i] < 0) >= UNLIKE_THE_GROUP:
        return False
    others = [j for j in joining if j != i] or [j for j in members if j != i]
    per_row = np.sum([samples[j] for j in others], axis=0) / sum(rows[j] for j in others)
    return bool(np.mean(samples[i] / rows[i] > per_row) >= UNLIKE_THE_GROUP)


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
        # Each row's player (-1: the base), in one pass: thousands of players x rows is slow.
        import pandas as pd

        code = pd.Categorical(frame[CONTRIBUTION_ID], categories=players).codes.astype(int)
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
        self.rules = policy.rules
        self.cache: dict[int, np.ndarray] = {}
        self.fits = 0  # coalition models trained
        self.deadline: float | None = None  # past it, a model not yet trained raises _OutOfTime
        self.players = len(players)
        self.batch_code = code  # per row: its player's batch (-1: the base)
        self.batches = [[i] for i in range(len(players))]

    def regroup(self, batches: list[list[int]]) -> None:
        """Play with ``batches`` (lists of player indices) as the players: masks are over
        batches from now on. The base and everyone keep their trained models."""
        of = np.full(self.players + 1, -1)
        for b, members in enumerate(batches):
            of[members] = b
        kept = {0: self.cache.get(0), (1 << len(batches)) - 1: self.cache.get(self.full)}
        self.batch_code = of[self.code]  # code -1 picks the last entry, which stays -1
        self.batches = batches
        self.cache = {mask: scores for mask, scores in kept.items() if scores is not None}

    @property
    def full(self) -> int:
        return (1 << len(self.batches)) - 1

    def utility(self, mask: int) -> np.ndarray:
        if mask not in self.cache:
            if self.deadline is not None and time.perf_counter() > self.deadline:
                raise _OutOfTime
            players = [i for i in range(mask.bit_length()) if mask >> i & 1]
            member = (self.batch_code < 0) | np.isin(self.batch_code, players)
            self.fits += 1
            spec = self.spec
            model = fit(
                build_estimator(
                    spec.estimator,
                    spec.hyperparameters,
                    spec.seed,
                    self.task,
                    spec.seeds,
                    prior_trees=FOREST_PRIOR_TREES if self.rules >= 3 else 0,
                ),
                self.x[member],
                self.y[member],
                None if self.weights is None else self.weights[member],
            )
            predictions = predict_on(model, self.benchmark_x, self.benchmark_y, self.task)
            scores = [weighted_scores(predictions, self.counts, self.metric)]
            if self.rules >= 2:  # the model with each group of its parts left out
                parts = vote_parts(model, self.benchmark_x, self.benchmark_y, self.task)
                seeded = left_out_votes(parts)
            else:  # each seed's model alone
                seeded = member_predictions(model, self.benchmark_x, self.benchmark_y, self.task)
            for member in seeded:
                scores.append(weighted_scores(member, self.counts[:1], self.metric))
            self.cache[mask] = np.concatenate(scores)
        return self.cache[mask]

    def seed_spread(self, value: np.ndarray) -> float:
        """The standard error, over training seeds, of a value computed with averaged models.
        Rules 2: the jackknife's, from the value each left-out vote's models give (a forest's
        trees in ``JACKKNIFE_GROUPS`` groups, else its seeds); it has ``seed_dof`` degrees of
        freedom. Rules 1: the spread of the value each seed's models alone give, over the root
        of their number."""
        per_seed = value[1 + RESAMPLES :]
        if self.rules >= 2:
            return jackknife_error(per_seed)
        if self.seeds < 2:
            return 0.0
        return float(np.std(per_seed, ddof=1) / math.sqrt(len(per_seed)))

    def seed_dof(self, value: np.ndarray) -> int | None:
        """Degrees of freedom of ``seed_spread`` (rules 2), None (normal) for rules 1."""
        return max(len(value) - 1 - RESAMPLES - 1, 1) if self.rules >= 2 else None


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


class _OutOfTime(Exception):
    """A coalition model not yet trained was needed past the budget's deadline."""


@dataclass(frozen=True)
class _Played:
    batches: list[list[int]]  # player indices per batch: the game's players
    values: np.ndarray  # per batch: value on the benchmark, each resample, each seed
    errors: np.ndarray  # per batch: the sampled estimate's standard error (0 when exact)
    method: str
    orders: int


def _play(
    game: _Game,
    rates: list[float],
    contributors: list[str],
    policy: ValuationPolicy,
    started: float,
) -> _Played:
    """The game, with as many players as the budget affords (``policy.max_players`` at most)
    and never a new model past the budget: the first two models (the base, and everyone as one
    batch) are always trained; their time plans the rest, and whatever the deadline cuts short
    falls back to fewer players: at worst the whole batch as one, whose value is exact."""
    n = len(rates)
    if policy.max_players is None:  # as valued before issue 29: every contribution a player
        return _solve(game, rates, game.batches, policy, started)
    replay = policy.batches is not None
    game.regroup([list(range(n))])
    game.utility(0)  # the first model also pays for imports and warm-up: not timed
    clock = time.perf_counter()
    game.utility(1)  # the largest coalition
    # A sampled coalition holds half the new rows on average; a model's time grows with rows.
    base, new = int(np.sum(game.code < 0)), int(np.sum(game.code >= 0))
    per_fit = (time.perf_counter() - clock) * (base + new / 2) / max(base + new, 1)
    count = policy.batches
    if count is None:
        game.deadline = started + policy.budget_seconds
        count = _planned(n, policy, (game.deadline - time.perf_counter()) / max(per_fit, 1e-9))
    try:
        batches = _batches(rates, contributors, count)
        game.regroup(batches)
        return _solve(game, rates, batches, policy, started)
    except _OutOfTime:
        if replay:  # no deadline when replaying; unreachable
            raise
        game.regroup([list(range(n))])
        return _solve(game, rates, game.batches, policy, started)
    finally:
        game.deadline = None  # what follows reads trained models only


def _planned(n: int, policy: ValuationPolicy, affordable: float) -> int:
    """How many batches to play with when ``affordable`` more models can be trained."""
    count = min(n, policy.max_players or n)
    exact = min(count, policy.exact_max_players)
    if count == exact and 2**count - 2 <= affordable:
        return count
    # Sampled: each batch's leave-one-out model, then orders of one model per batch.
    sampled = min(count, int(affordable / (policy.min_orders + 1)))
    if sampled > policy.exact_max_players:
        return sampled
    # Exact beats sampling a few batches: as many as 2^n models afford.
    while exact > 1 and 2**exact - 2 > affordable:
        exact -= 1
    return max(exact, 1)


def _batches(rates: list[float], contributors: list[str], count: int) -> list[list[int]]:
    """The players (indices) in ``count`` batches: each contribution alone when there are that
    many, else consecutive runs, by contributor then contribution id, of nearly equal numbers
    of contributions: a contributor's contributions stay together where they fit, so a dataset
    split across several contributions is mostly judged in one batch."""
    n = len(rates)
    if count >= n:
        return [[i] for i in range(n)]
    ordered = sorted(range(n), key=lambda i: (contributors[i], i))
    return [[int(i) for i in part] for part in np.array_split(ordered, count)]


def _solve(
    game: _Game,
    rates: list[float],
    batches: list[list[int]],
    policy: ValuationPolicy,
    started: float,
) -> _Played:
    count = len(batches)
    batch_rates = [sum(rates[i] for i in members) for members in batches]
    if count <= policy.exact_max_players:
        values = _exact(game, batch_rates)
        return _Played(batches, values, np.zeros(count), "exact", 0)
    if policy.max_players is not None:
        # Leave-one-out models first: sampling runs until the deadline.
        for b in range(count):
            game.utility(game.full & ~(1 << b))
    values, errors, orders = _sampled(game, batch_rates, policy, started)
    return _Played(batches, values, errors, "permutation", orders)


# Antithetic pairs come in blocks of this many, their uniforms stratified (see ``_sampled``).
STRATA = 4


def _sampled(
    game: _Game, rates: list[float], policy: ValuationPolicy, started: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean marginal gains over seeded random orders of arrival (exponential clocks with the
    players' rates), and their standard errors.

    With ``policy.antithetic`` two variance reductions, neither changing which orders are
    likely (every order is still drawn with the clocks' distribution, so the estimate stays
    unbiased): orders come in pairs, the second's clocks from the first's uniforms mirrored
    (u -> 1 - u; the reverse order when the players are of equal size), so a player early in
    one is late in the other; and in blocks of ``STRATA`` pairs each player's uniforms are
    stratified (one in each quarter of [0, 1)), so every player arrives early, late and in
    between within a block. Most of a marginal gain's spread is where its player arrived
    (early gains are large), and both cancel most of it. Blocks are independent: the standard
    error is over blocks (over pairs, which overstates it, when fewer than two full blocks were
    done; over orders when one pair). An order the deadline cuts short is dropped with its
    pair, and so is an unfinished block when two are done; at least two orders are kept."""
    n = len(rates)
    rng = np.random.default_rng(policy.seed)
    scale = 1.0 / np.asarray(rates)
    total = np.zeros((n, len(game.utility(0))))
    point: list[np.ndarray] = []  # per order, each player's marginal on the benchmark itself
    limit = policy.max_permutations if policy.permutations is None else policy.permutations
    per_block = 2 * STRATA if policy.antithetic else 1
    pending, pending_point = np.zeros_like(total), []  # the block under way
    try:
        while len(point) < limit:
            if (
                policy.permutations is None
                and policy.max_players is None
                and len(point) >= 2
                and time.perf_counter() - started > policy.budget_seconds
            ):  # as before issue 29: the budget was checked between orders only
                break
            if game.deadline is not None and time.perf_counter() > game.deadline:
                # Orders of models all trained already need no fit, but still take time.
                if len(point) < 2:
                    raise _OutOfTime
                break
            if policy.antithetic:
                strata = rng.permuted(np.tile(np.arange(STRATA), (n, 1)), axis=1)
                uniforms = (strata + rng.random((n, STRATA))) / STRATA
                block = [(-np.log(u) * scale, -np.log1p(-u) * scale) for u in uniforms.T]
            else:
                block = [(rng.exponential(scale),)]
            for pair in block:
                if len(point) + len(pending_point) + len(pair) > limit:
                    break
                gains, marginals = np.zeros_like(total), []
                for clock in pair:
                    mask, previous, marginal = 0, game.utility(0), np.zeros(n)
                    for i in np.argsort(clock):
                        mask |= 1 << int(i)
                        current = game.utility(mask)
                        gains[i] += current - previous
                        marginal[i] = current[0] - previous[0]
                        previous = current
                    marginals.append(marginal)
                pending += gains  # a pair counts only when both its orders are done
                pending_point += marginals
            if not pending_point:
                break
            total += pending
            point += pending_point
            pending, pending_point = np.zeros_like(total), []
    except _OutOfTime:
        if len(point) < 2 * per_block:  # fewer than two full blocks: keep its full pairs too
            total += pending
            point += pending_point
        if len(point) < 2:
            raise
    m = len(point)
    if policy.antithetic and m >= 2 * per_block and m % per_block == 0:
        blocks = np.mean(np.reshape(point, (m // per_block, per_block, n)), axis=1)
        errors = np.std(blocks, axis=0, ddof=1) / math.sqrt(len(blocks))
    elif policy.antithetic and m >= 4:
        pairs = np.add(point[0::2], point[1::2]) / 2
        errors = np.std(pairs, axis=0, ddof=1) / math.sqrt(len(pairs))
    else:
        errors = np.std(point, axis=0, ddof=1) / math.sqrt(m) if m > 1 else np.zeros(n)
    return total / m, errors, m


def recompute(
    recorded: dict[str, Any], frame: pd.DataFrame, benchmark: pd.DataFrame, task: TaskSchema
) -> Valuation:
    """The valuation ``recorded`` (``Valuation.to_dict()``) again, on the dataset it valued:
    the same players, spec, policy and seed, and a sampled one with its own permutations."""
    sampled = recorded["method"] == "permutation"
    policy = {
        # Recorded before issue 29: every contribution a player, independent orders.
        "max_players": None,
        "antithetic": False,
        "rules": 1,  # recorded before issue 26's second step: the first rules
        **recorded["policy"],
        "permutations": recorded["permutations"] if sampled else None,
        "batches": recorded.get("batches") or None,
    }
    return value_contributions(
        frame,
        benchmark,
        task,
        spec=TrainingSpec(**recorded["training"]),
        known=recorded["base_contributions"],
        policy=ValuationPolicy(**policy),
        already_given=recorded.get("already_given"),
    )
