"""Benchmark intervals and contribution values, on the iris data with real models."""

import itertools
import re
from dataclasses import replace

import numpy as np
import pytest

from mlops_assets.core.data.integration import Contribution, integrate
from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark
from mlops_assets.core.modeling.evaluation import SUMMARY_METRICS, evaluate
from mlops_assets.core.modeling.scoring import bootstrap_counts, delta_intervals, weighted_scores
from mlops_assets.core.modeling.training import TrainingSpec, train_model
from mlops_assets.core.modeling.valuation import (
    VALUE_COLUMNS,
    ValuationPolicy,
    recompute,
    value_contributions,
    without_excluded,
)
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV, new_flowers

SPEC = TrainingSpec("logistic_regression", {"C": 1.0, "max_iter": 1000}, seed=3)


def policy(**changes) -> ValuationPolicy:
    defaults = dict(
        metric="log_loss",
        seed=3,
        exact_max_players=8,
        budget_seconds=60.0,
        max_permutations=200,
        max_training_rows=100_000,
        exclude_harmful=True,
    )
    return ValuationPolicy(**{**defaults, **changes})


@pytest.fixture(scope="module")
def split():
    iris = load_reference_data(IRIS_CSV, IRIS).frame
    return split_benchmark(iris, IRIS, fraction=0.3, seed=42)


@pytest.fixture(scope="module")
def batch(split):
    """A small base (30 reference rows) and three contributions from the rest: clean flowers,
    other flowers with versicolor and virginica swapped, and a few new flowers."""
    rows = split.train.sample(frac=1.0, random_state=0).reset_index(drop=True)
    base, clean = rows.iloc[:30], rows.iloc[30:75].copy()
    swapped = rows.iloc[75:].copy()
    swapped[IRIS.label] = swapped[IRIS.label].map(
        {"versicolor": "virginica", "virginica": "versicolor", "setosa": "setosa"}
    )
    few = new_flowers(per_class=3, seed=5)
    contributions = [
        Contribution(cid, who, frame.assign(row_index=range(len(frame))), landed_at=at)
        for cid, who, frame, at in (
            ("alice-clean", "alice", clean, 1.0),
            ("mallory-swapped", "mallory", swapped, 2.0),
            ("bob-few", "bob", few, 3.0),
        )
    ]
    return integrate(base, contributions, split.benchmark, IRIS, seed=3).frame


def test_bootstrap_scores_at_unit_weights_are_the_metrics_themselves(split):
    model = train_model(
        split.train, IRIS, estimator="random_forest", hyperparameters={"n_estimators": 20}, seed=1
    )
    evaluation = evaluate(model, split.benchmark, IRIS)
    counts = bootstrap_counts(evaluation.n_rows, resamples=10, seed=0)
    for metric in SUMMARY_METRICS:
        score = weighted_scores(evaluation.predictions, counts, metric)[0]
        lower_is_better = metric in ("log_loss", "brier")
        # The metrics are rounded to 6 decimals: half a unit of the last is the tolerance.
        shown = evaluation.metrics[metric]
        assert (-score if lower_is_better else score) == pytest.approx(shown, rel=0, abs=5e-7)


def test_paired_intervals_see_a_real_difference_and_none_between_equals(split):
    small = evaluate(
        train_model(
            split.train.groupby(IRIS.label).head(3),
            IRIS,
            estimator=SPEC.estimator,
            hyperparameters={},
            seed=1,
        ),
        split.benchmark,
        IRIS,
    )
    full = evaluate(
        train_model(split.train, IRIS, estimator=SPEC.estimator, hyperparameters={}, seed=1),
        split.benchmark,
        IRIS,
    )
    same = delta_intervals(full, full, seed=7)
    assert same["log_loss"].to_dict() == {
        "delta": 0.0,
        "low": 0.0,
        "high": 0.0,
        "p_value": 1.0,
        "confidence": 0.95,
    }
    better = delta_intervals(full, small, seed=7)
    loss = better["log_loss"]
    assert loss.delta < 0 and loss.low < loss.high < 0 and loss.p_value < 0.01
    assert better == delta_intervals(full, small, seed=7)  # the seed fixes the resamples


def test_three_players_exact_values_match_brute_force_over_every_order(split, batch):
    """Each order weighted by how likely it is when every row arrives in a random order and a
    contribution with it first row (see ``valuation``)."""
    valuation = value_contributions(
        batch, split.benchmark, IRIS, spec=SPEC, known=[], policy=policy(exclude_harmful=False)
    )
    assert valuation.method == "exact" and valuation.coalitions_trained == 8
    players = [v.contribution_id for v in valuation.values]

    def score(members: tuple[str, ...]) -> float:
        rows = batch[(batch["source"] == "reference") | batch["contribution_id"].isin(members)]
        model = train_model(
            rows, IRIS, estimator=SPEC.estimator, hyperparameters=SPEC.hyperparameters, seed=3
        )
        return -evaluate(model, split.benchmark, IRIS).metrics["log_loss"]

    scores = {frozenset(s): score(s) for r in range(4) for s in itertools.combinations(players, r)}
    rows = batch["contribution_id"].value_counts()
    brute = dict.fromkeys(players, 0.0)
    for order in itertools.permutations(players):
        probability, remaining = 1.0, sum(rows[p] for p in players)
        for player in order:  # the first of the rest, in proportion to its rows
            probability, remaining = (
                probability * rows[player] / remaining,
                remaining - rows[player],
            )
        for i, player in enumerate(order):
            gain = scores[frozenset(order[: i + 1])] - scores[frozenset(order[:i])]
            brute[player] += probability * gain
    for value in valuation.values:
        assert value.value == pytest.approx(brute[value.contribution_id], abs=2e-6)
        everyone = frozenset(players)
        assert value.loo_delta == pytest.approx(
            scores[everyone] - scores[everyone - {value.contribution_id}], abs=2e-6
        )
    improvement = scores[frozenset(players)] - scores[frozenset()]
    assert sum(v.value for v in valuation.values) == pytest.approx(improvement, abs=1e-5)
    assert valuation.improvement == pytest.approx(improvement, abs=1e-5)


def test_the_clean_contribution_is_worth_most_and_the_swapped_one_is_excluded(split, batch):
    valuation = value_contributions(
        batch, split.benchmark, IRIS, spec=SPEC, known=[], policy=policy()
    )
    by_id = {v.contribution_id: v for v in valuation.values}
    assert max(by_id.values(), key=lambda v: v.value).contribution_id == "alice-clean"
    swapped = by_id["mallory-swapped"]
    assert swapped.status == "excluded" and swapped.value_interval[1] < 0
    assert swapped.reason.startswith("raised log loss on the benchmark by ")
    assert "left out of this model, and valued again in the next retrain" in swapped.reason
    assert by_id["alice-clean"].status == "included"
    kept = without_excluded(batch, valuation)
    assert "mallory-swapped" not in set(kept["contribution_id"])
    assert len(kept) == len(batch) - swapped.rows
    # Deterministic: the same game with the same seed gives the same numbers.
    again = value_contributions(batch, split.benchmark, IRIS, spec=SPEC, known=[], policy=policy())
    assert again.values == valuation.values
    assert recompute(valuation.to_dict(), batch, split.benchmark, IRIS).values == valuation.values


def test_contributions_the_champion_was_trained_on_are_the_base(split, batch):
    valuation = value_contributions(
        batch, split.benchmark, IRIS, spec=SPEC, known=["alice-clean"], policy=policy()
    )
    assert [v.contribution_id for v in valuation.values] == ["bob-few", "mallory-swapped"]
    assert valuation.base_contributions == ["alice-clean"]
    nothing_new = value_contributions(
        batch,
        split.benchmark,
        IRIS,
        spec=SPEC,
        known=sorted(set(batch["contribution_id"])),
        policy=policy(),
    )
    assert nothing_new.method == "none" and nothing_new.values == []
    assert "nothing to value" in nothing_new.markdown()


def test_beyond_the_exact_bound_values_are_sampled_with_standard_errors(split):
    rows = split.train.sample(frac=1.0, random_state=1).reset_index(drop=True)
    parts = np.array_split(rows.iloc[20:], 12)
    contributions = [
        Contribution(f"c{i:02d}", f"p{i}", part.assign(row_index=range(len(part))))
        for i, part in enumerate(parts)
    ]
    frame = integrate(rows.iloc[:20], contributions, split.benchmark, IRIS, seed=3).frame
    sampled = policy(exact_max_players=4, budget_seconds=2.0, max_permutations=10_000, min_orders=5)
    valuation = value_contributions(
        frame, split.benchmark, IRIS, spec=SPEC, known=[], policy=sampled
    )
    assert valuation.method == "permutation" and len(valuation.values) == 12
    assert 2 <= valuation.permutations < 10_000  # the budget stopped it
    # Each order's marginals add up to v(all), so the estimate keeps that sum exactly.
    assert sum(v.value for v in valuation.values) == pytest.approx(valuation.improvement, abs=1e-5)
    assert all(v.standard_error > 0 for v in valuation.values)
    for v in valuation.values:
        low, high = v.value_interval
        assert low < v.value < high
    # Recomputed with the recorded number of permutations: the same estimate.
    again = recompute(valuation.to_dict(), frame, split.benchmark, IRIS)
    assert again.permutations == valuation.permutations and again.values == valuation.values


@pytest.fixture(scope="module")
def many(split):
    """256 contributions of 3 new flowers each (one per species) from 64 contributors."""
    contributions = [
        Contribution(
            f"c{i:03d}",
            f"p{i % 64:02d}",
            new_flowers(per_class=1, seed=1000 + i).assign(row_index=range(3)),
            landed_at=float(i),
        )
        for i in range(256)
    ]
    return integrate(split.train, contributions, split.benchmark, IRIS, seed=3).frame


class FakeClock:
    """``time.perf_counter`` for the valuation: it moves only when a model is fitted, so the
    budget is counted in models, not measured (no timed assertion on a shared machine)."""

    def __init__(self, per_fit: float) -> None:
        self.now, self.per_fit, self.fits = 0.0, per_fit, 0

    def perf_counter(self) -> float:
        return self.now

    def fitted(self, fit):
        def counted(*args, **kwargs):
            self.now += self.per_fit
            self.fits += 1
            return fit(*args, **kwargs)

        return counted


@pytest.fixture
def clock(monkeypatch):
    import types

    from mlops_assets.core.modeling import valuation

    fake = FakeClock(per_fit=0.01)
    monkeypatch.setattr(valuation, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    monkeypatch.setattr(valuation, "fit", fake.fitted(valuation.fit))
    return fake


def assert_honest(valuation, players: int) -> None:
    values = [v for v in valuation.values if v.status != "nothing_new"]
    assert len(values) == players
    assert sum(v.value for v in values) == pytest.approx(valuation.improvement, abs=1e-4)
    for v in values:
        low, high = v.value_interval
        assert np.isfinite([low, high, v.value, v.standard_error]).all()
        assert low <= v.value <= high


def new_players(frame) -> int:
    return frame[frame["source"] == "contribution"]["contribution_id"].nunique()


def test_many_contributions_never_run_past_the_budget(split, many, clock):
    """256 new contributions, a budget of 400 models' time: never a model started past it,
    values in 16 batches (the cap here) from full blocks of antithetic orders, and a replay of
    the recorded game gives the same numbers."""
    players = new_players(many)
    valuation = value_contributions(
        many,
        split.benchmark,
        IRIS,
        spec=SPEC,
        known=[],
        policy=policy(budget_seconds=4.0, max_players=16, min_orders=2),
    )
    assert clock.fits == valuation.coalitions_trained
    assert valuation.coalitions_trained <= 4.0 / clock.per_fit + 1  # + the one under way
    assert clock.now >= 4.0  # the budget stopped it, not max_permutations
    assert valuation.method == "permutation" and valuation.batches == 16
    assert valuation.permutations % 8 == 0 and valuation.permutations >= 16  # full blocks
    assert_honest(valuation, players)
    sizes = [v.batch_size for v in valuation.values if v.status != "nothing_new"]
    assert set(sizes) <= {players // 16, players // 16 + 1}
    assert f"with {sizes[0] - 1} other contribution(s)" in valuation.values[0].reason
    again = recompute(valuation.to_dict(), many, split.benchmark, IRIS)
    assert again.values == valuation.values and again.batches == 16


def test_a_contributors_contributions_share_a_batch():
    from mlops_assets.core.modeling.valuation import _batches

    contributors = [f"p{i % 64:02d}" for i in range(256)]
    batches = _batches([3.0] * 256, contributors, 16)
    assert sorted(i for members in batches for i in members) == list(range(256))
    assert [len({contributors[i] for i in members}) for members in batches] == [4] * 16
    assert _batches([3.0] * 5, contributors[:5], 5) == [[0], [1], [2], [3], [4]]


def test_a_budget_for_two_models_values_the_whole_batch_as_one(split, many, clock):
    players = new_players(many)
    valuation = value_contributions(
        many, split.benchmark, IRIS, spec=SPEC, known=[], policy=policy(budget_seconds=0.015)
    )
    assert valuation.coalitions_trained == 2  # the base, and everyone: nothing more
    assert valuation.method == "exact" and valuation.batches == 1
    assert_honest(valuation, players)
    valued = [v for v in valuation.values if v.status != "nothing_new"]
    rows = sum(v.rows for v in valued)
    for v in valued:
        assert v.value == pytest.approx(valuation.improvement * v.rows / rows, abs=1e-6)
        assert v.loo_delta == pytest.approx(v.value, abs=1e-6)
        assert f"valued in one batch with {players - 1} other contribution(s)" in v.reason
    assert "they were played in 1 batch(es)" in valuation.markdown()


def test_the_budget_plans_fewer_batches_rather_than_a_few_orders(split, many, clock):
    """A budget for ~300 models: 64 batches could not be sampled 100 times, so the game has
    as many batches as 2^n models afford (8), exactly."""
    valuation = value_contributions(
        many, split.benchmark, IRIS, spec=SPEC, known=[], policy=policy(budget_seconds=3.0)
    )
    assert valuation.method == "exact" and valuation.batches == 8
    assert valuation.coalitions_trained == 2**8
    assert_honest(valuation, new_players(many))


def test_harm_split_across_contributions_is_judged_in_its_contributors_batch(split):
    """40 contributions in 8 batches: mallory's five parts of a dataset with versicolor and
    virginica swapped stay in one batch (batches follow contributors), which is excluded
    whole; the honest ones are kept."""
    swap = {"versicolor": "virginica", "virginica": "versicolor", "setosa": "setosa"}
    honest = [
        Contribution(f"h{i:02d}", f"h{i:02d}", new_flowers(1, seed=2000 + i), landed_at=i)
        for i in range(35)
    ]
    shuffled = split.train.sample(frac=1.0, random_state=2).reset_index(drop=True)
    rows, base = shuffled.iloc[:50], shuffled.iloc[50:]
    swapped = rows.assign(**{IRIS.label: rows[IRIS.label].map(swap)})
    mallory = [
        Contribution(f"m{i}", "mallory", part, landed_at=100 + i)
        for i, part in enumerate(np.array_split(swapped, 5))
    ]
    contributions = [
        replace(c, rows=c.rows.assign(row_index=range(len(c.rows)))) for c in honest + mallory
    ]
    frame = integrate(base, contributions, split.benchmark, IRIS, seed=3).frame
    valuation = value_contributions(
        frame, split.benchmark, IRIS, spec=SPEC, known=[], policy=policy(max_players=8)
    )
    assert valuation.method == "exact" and valuation.batches == 8
    status = {v.contribution_id: v.status for v in valuation.values}
    assert {status[f"m{i}"] for i in range(5)} == {"excluded"}
    assert {s for cid, s in status.items() if cid.startswith("h")} <= {"included", "nothing_new"}


def test_a_valuation_recorded_before_batches_replays_as_it_was(split):
    """Recorded before issue 29 (no ``max_players``, ``antithetic``, ``batches``): replayed
    with every contribution a player and independent orders, as ``mlops verify`` needs."""
    rows = split.train.sample(frac=1.0, random_state=1).reset_index(drop=True)
    parts = np.array_split(rows.iloc[20:], 10)
    contributions = [
        Contribution(f"c{i:02d}", f"p{i}", part.assign(row_index=range(len(part))))
        for i, part in enumerate(parts)
    ]
    frame = integrate(rows.iloc[:20], contributions, split.benchmark, IRIS, seed=3).frame
    old = policy(exact_max_players=4, max_players=None, antithetic=False, permutations=6)
    valuation = value_contributions(frame, split.benchmark, IRIS, spec=SPEC, known=[], policy=old)
    assert valuation.permutations == 6 and valuation.batches == 10
    recorded = valuation.to_dict()
    del recorded["batches"]
    for key in ("max_players", "antithetic", "min_orders", "batches"):
        del recorded["policy"][key]
    recorded["policy"]["permutations"] = None
    for value in recorded["values"]:
        del value["batch_size"]
    assert recompute(recorded, frame, split.benchmark, IRIS).values == valuation.values


def test_a_large_training_set_is_valued_on_a_sample(split, batch):
    valuation = value_contributions(
        batch, split.benchmark, IRIS, spec=SPEC, known=[], policy=policy(max_training_rows=60)
    )
    assert valuation.training_rows_cap == 60
    assert sum(v.rows for v in valuation.values) == int(
        (batch["source"] == "contribution").sum()
    )  # rows reported are the contribution's own, not the sample's
    assert all(tuple(row) == VALUE_COLUMNS for row in valuation.rows())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "MLOPS_EXCLUDE_HARMFUL",
            "maybe",
            "MLOPS_EXCLUDE_HARMFUL='maybe' is neither true nor false",
        ),
        ("MLOPS_VALUATION_EXACT_MAX", "-1", "MLOPS_VALUATION_EXACT_MAX must be at least 0"),
        ("MLOPS_VALUATION_MAX_ROWS", "0", "MLOPS_VALUATION_MAX_ROWS above 0"),
        ("MLOPS_VALUATION_BUDGET_SECONDS", "soon", "is not a valid float"),
        ("MLOPS_PRIMARY_METRIC", "auc", "is not a benchmark metric"),
    ],
)
def test_bad_valuation_settings_are_named(tmp_path, name, value, message):
    from mlops_assets.errors import ConfigurationError
    from mlops_assets.settings import Settings

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Settings.from_env({"MLOPS_HOME": str(tmp_path), name: value})
