import numpy as np
import pytest
import skops.io
from hypothesis import given
from hypothesis import strategies as st

from mlops_assets.core.data.integration import integrate
from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark
from mlops_assets.core.modeling.evaluation import evaluate, metric_deltas, metrics_markdown
from mlops_assets.core.modeling.scoring import interval, two_sided_p_value
from mlops_assets.core.modeling.training import ESTIMATORS, train_model
from mlops_assets.core.promotion.gate import PairedOutcome, PromotionGate, decide_promotion
from mlops_assets.core.registry.model_files import SKOPS_TRUSTED_TYPES
from mlops_assets.errors import ConfigurationError
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV


@pytest.fixture(scope="module")
def data():
    split = split_benchmark(load_reference_data(IRIS_CSV, IRIS).frame, IRIS, fraction=0.3, seed=42)
    return integrate(split.train, [], split.benchmark, IRIS, seed=42).frame, split.benchmark


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_estimator_trains_scores_and_needs_only_trusted_types(data, estimator):
    train, benchmark = data
    model = train_model(train, IRIS, estimator=estimator, hyperparameters={}, seed=0)
    evaluation = evaluate(model, benchmark, IRIS)
    assert 0.8 <= evaluation.metrics["accuracy"] <= 1.0
    assert {"f1_macro", "roc_auc_ovr", "log_loss", "recall_virginica"} <= set(evaluation.metrics)
    assert sum(map(sum, evaluation.confusion_matrix)) == len(benchmark) == evaluation.n_rows
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    assert set(untrusted) <= set(SKOPS_TRUSTED_TYPES)


def test_training_is_deterministic(data):
    train, benchmark = data
    first = train_model(train, IRIS, estimator="random_forest", hyperparameters={}, seed=5)
    again = train_model(train, IRIS, estimator="random_forest", hyperparameters={}, seed=5)
    assert (
        first.predict_proba(benchmark[IRIS.feature_names])
        == again.predict_proba(benchmark[IRIS.feature_names])
    ).all()


def test_bad_hyperparameters_and_estimators_are_config_errors(data):
    with pytest.raises(ConfigurationError, match="invalid hyperparameter"):
        train_model(data[0], IRIS, estimator="random_forest", hyperparameters={"C": 1}, seed=0)
    with pytest.raises(ConfigurationError, match="unknown estimator"):
        train_model(data[0], IRIS, estimator="svm", hyperparameters={}, seed=0)


def test_deltas_and_markdown():
    candidate = dict.fromkeys(
        ["accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc_ovr"], 0.9
    ) | {"log_loss": 0.2, "brier": 0.1}
    baseline = {**candidate, "accuracy": 0.8}
    intervals = {m: {"low": -0.01, "high": 0.02} for m in candidate}
    assert metric_deltas(candidate, baseline)["accuracy"] == pytest.approx(0.1)
    table = metrics_markdown(candidate, baseline, intervals)
    assert "| accuracy | 0.9000 | 0.8000 | +0.1000 | [-0.0100, +0.0200] |" in table
    assert "| brier |" in table


INTERVAL = {"low": -0.01, "high": 0.02, "p_value": 0.2}


@pytest.mark.parametrize(
    ("metric", "candidate", "baseline", "margin", "promote", "reason"),
    [
        (
            "accuracy",
            0.9556,
            0.9556,
            0.0,
            False,
            "accuracy 0.9556 vs 0.9556 (95 % interval of the difference [-0.0100, +0.0200]): "
            "not better, champion stays v1",
        ),
        ("accuracy", 0.9778, 0.9556, 0.0, True, "promoted v2 to champion, was v1"),
        ("accuracy", 0.9778, 0.9556, 0.05, False, "not enough, champion stays v1"),
        ("log_loss", 0.10, 0.20, 0.0, True, "promoted"),
        ("log_loss", 0.30, 0.20, 0.0, False, "not better"),
    ],
)
def test_promotion_gate(metric, candidate, baseline, margin, promote, reason):
    decision = decide_promotion(
        PromotionGate(metric, min_improvement=margin, significance=0, min_benchmark_rows=30),
        candidate_value=candidate,
        baseline_value=baseline,
        paired=PairedOutcome(rows=45, candidate_only_correct=1, baseline_only_correct=0),
        interval=INTERVAL,
        champion_version="1",
        candidate_version="2",
    )
    assert decision.promote is promote
    assert reason in decision.reason
    assert decision.p_value is None  # no test unless the gate asks for one


def test_mcnemar_exact_p_value():
    # 10 rows only the candidate got right, none only the baseline: p = 2 * 0.5**10.
    assert PairedOutcome(45, 10, 0).mcnemar_p_value == pytest.approx(2 * 0.5**10)
    assert PairedOutcome(45, 3, 3).mcnemar_p_value == pytest.approx(1.0)
    assert PairedOutcome(45, 0, 0).mcnemar_p_value == 1.0  # the models agree on every row


def test_significance_and_benchmark_size_gate_a_promotion():
    def decide(candidate: float, baseline: float, paired: PairedOutcome, interval: dict):
        return decide_promotion(
            PromotionGate("accuracy", min_improvement=0, significance=0.05, min_benchmark_rows=30),
            candidate_value=candidate,
            baseline_value=baseline,
            paired=paired,
            interval=interval,
            champion_version="1",
            candidate_version="2",
        )

    # Accuracy is tested like every metric: the interval shown is the test.
    one_row_better = decide(
        0.9778, 0.9556, PairedOutcome(45, 1, 0), {"low": 0.0, "high": 0.0667, "p_value": 1.0}
    )
    assert not one_row_better.promote and one_row_better.p_value == pytest.approx(1.0)
    assert (
        "[+0.0000, +0.0667]), two-sided bootstrap p=1.000 ≥ 0.05: the interval includes 0, "
        "not significant" in one_row_better.reason
    )
    clearly_better = decide(
        0.9, 0.6, PairedOutcome(45, 14, 0), {"low": 0.17, "high": 0.44, "p_value": 0.0}
    )
    assert clearly_better.promote and "two-sided bootstrap p=0.000" in clearly_better.reason
    assert clearly_better.test == "paired bootstrap"
    too_small = decide(0.9, 0.6, PairedOutcome(12, 4, 0), {"low": 0.1, "high": 0.5, "p_value": 0})
    assert not too_small.promote
    assert "the benchmark has 12 rows, fewer than the 30 required" in too_small.reason


@given(
    samples=st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=400),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_the_test_and_the_interval_are_one_statement(samples, confidence):
    """Significant at 1 - confidence exactly when the interval at confidence excludes 0."""
    values = np.array(samples)
    low, high = interval(values, confidence)
    excludes_zero = low > 0 or high < 0
    assert (two_sided_p_value(values) < 1 - confidence) is excludes_zero


@pytest.mark.parametrize(("p_value", "promote"), [(0.2, False), (0.01, True)])
def test_other_metrics_are_tested_with_the_paired_bootstrap(p_value, promote):
    decision = decide_promotion(
        PromotionGate("log_loss", min_improvement=0, significance=0.05, min_benchmark_rows=30),
        candidate_value=0.19,
        baseline_value=0.21,
        paired=PairedOutcome(45, 0, 0),  # McNemar would see no difference at all
        interval={"low": -0.03, "high": 0.004 if p_value > 0.05 else -0.004, "p_value": p_value},
        champion_version="1",
        candidate_version="2",
    )
    assert decision.promote is promote and decision.test == "paired bootstrap"
    assert f"bootstrap p={p_value:.3f}" in decision.reason
    assert "95 % interval of the difference [-0.0300, " in decision.reason
