import mlflow

from mlops_assets.core.baseline import COLD_START_REASON, resolve_baseline
from mlops_assets.core.reference_data import load_reference_data, split_benchmark
from mlops_assets.core.registry import CHAMPION, get_version_by_alias
from mlops_assets.task import IRIS
from mlops_assets_tests.conftest import IRIS_CSV


def test_cold_start_registers_a_champion_once_then_reuses_it(mlflow_store):
    split = split_benchmark(load_reference_data(IRIS_CSV, IRIS).frame, IRIS, fraction=0.3, seed=42)
    arguments = {
        "model_name": "m",
        "reference_train": split.train,
        "benchmark": split.benchmark,
        "task": IRIS,
        "estimator": "logistic_regression",
        "hyperparameters": {},
        "seed": 42,
        "tags": {"dagster_run_id": "run-1"},
    }
    with mlflow.start_run():
        cold = resolve_baseline(mlflow_store, **arguments)
    assert cold.cold_start and cold.version == "1"
    champion = get_version_by_alias(mlflow_store, "m", CHAMPION)
    assert champion.tags["cold_start"] == "true"
    assert champion.tags["promotion_reason"] == COLD_START_REASON
    assert champion.tags["dagster_run_id"] == "run-1"
    assert float(champion.tags["benchmark_accuracy"]) == cold.evaluation.metrics["accuracy"]

    warm = resolve_baseline(mlflow_store, **arguments)
    assert not warm.cold_start and warm.version == "1"
    assert warm.model_uuid == cold.model_uuid
    assert warm.evaluation.metrics == cold.evaluation.metrics
