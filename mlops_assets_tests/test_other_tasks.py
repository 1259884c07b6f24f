"""Another task from its task file: the wine data end to end, and a home or registry of one
task refusing another."""

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.settings import Settings
from mlops_assets_testing.processes import REPO, env_for
from mlops_assets_testing.servers import ApiServer

WINE = str(REPO / "tasks" / "wine.toml")


def wine_contribution() -> str:
    """Wines as the UCI repository names the columns, with scikit-learn's class names, each
    measurement nudged so the rows are new."""
    wine = pd.read_csv(REPO / "data" / "wine.csv").sample(n=30, random_state=1)
    features = [c for c in wine.columns if c != "cultivar"]
    nudged = wine[features] * 1.01
    uci = [
        "Alcohol", "Malic acid", "Ash", "Alcalinity of ash", "Magnesium", "Total phenols",
        "Flavanoids", "Nonflavanoid phenols", "Proanthocyanins", "Color intensity", "Hue",
        "OD280/OD315 of diluted wines", "Proline",
    ]  # fmt: skip
    nudged.columns = uci
    nudged["Class"] = wine["cultivar"].map(
        {"cultivar_1": "class_0", "cultivar_2": "class_1", "cultivar_3": "class_2"}
    )
    return nudged.round(4).to_csv(index=False)


def latest(pipeline, asset: str) -> dict:
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.mark.e2e
def test_the_wine_task_trains_takes_contributions_and_serves(pipeline, tmp_path):
    pipeline.settings = Settings.from_env(env_for(pipeline.home, MLOPS_TASK=WINE))
    assert pipeline.settings.model_name == "wine-classifier"
    pipeline.materialize()
    assert latest(pipeline, "iris_dataset")["benchmark_rows"] == 54
    assert latest(pipeline, "baseline_model")["cold_start"] is True

    pipeline.drop("carla", "wines.csv", wine_contribution())
    ((request),) = pipeline.tick().run_requests
    pipeline.launch(request)
    intake = latest(pipeline, "contributed_data")
    assert intake["accepted"] is True and intake["rows_clean"] == 30
    pipeline.materialize()
    values = latest(pipeline, "trained_model")["valuation"]["values"]
    assert [v["contributor"] for v in values] == ["carla"]

    client = pipeline.client()
    assert client.get_registered_model("wine-classifier").tags["task"] == "wine"
    row = pd.read_csv(REPO / "data" / "wine.csv").drop(columns="cultivar").iloc[0].to_dict()
    with ApiServer(pipeline.home, tmp_path / "api.log", MLOPS_TASK=WINE) as api:
        status, body = api.request("POST", "/predict", {"instances": [row]})
        assert status == 200, body
        assert body["predictions"][0]["label"] in ("cultivar_1", "cultivar_2", "cultivar_3")
        status, body = api.request("POST", "/predict", {"instances": [{"sepal_length": 5.1}]})
        assert status == 422  # the request model is the wine task's


def test_a_home_of_one_task_refuses_another(pipeline):
    pipeline.materialize("iris_dataset")
    pipeline.settings = Settings.from_env(env_for(pipeline.home, MLOPS_TASK=WINE))
    result = pipeline.materialize("iris_dataset", raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.cause.message
    assert "holds the 'iris' task's data, and MLOPS_TASK names 'wine'" in message
    assert "give this task its own MLOPS_HOME" in message
    # Nothing of the iris data was overwritten.
    store = pipeline.resources()["store"]
    assert set(store.read_frame(store.BENCHMARK)["species"]) == {
        "setosa",
        "versicolor",
        "virginica",
    }


def test_a_registered_model_of_one_task_refuses_another(pipeline, tmp_path):
    from mlops_assets.core.registry.client import claim_model_for_task
    from mlops_assets.errors import ConfigurationError

    pipeline.materialize()
    client = pipeline.client()
    assert client.get_registered_model("iris-classifier").tags["task"] == "iris"
    with pytest.raises(ConfigurationError, match="holds 'iris' models, and MLOPS_TASK names"):
        claim_model_for_task(client, "iris-classifier", "wine")
    # Another home on the same registry with the wine task and the iris model's name.
    other = Settings.from_env(
        env_for(
            tmp_path / "other",
            MLOPS_TASK=WINE,
            MLOPS_MODEL_NAME="iris-classifier",
            MLFLOW_TRACKING_URI=pipeline.settings.tracking_uri,
        )
    )
    pipeline.settings = other
    result = pipeline.materialize(raise_on_error=False)
    assert not result.success
    failed = {e.step_key for e in result.get_step_failure_events()}
    assert failed == {"baseline_model"}
    assert len(client.search_model_versions("name = 'iris-classifier'")) == 2  # untouched


def test_a_task_file_that_does_not_load_is_a_configuration_error(tmp_path):
    from mlops_assets.errors import ConfigurationError

    bad = tmp_path / "task.toml"
    bad.write_text('[task]\nname = "x"\n')
    with pytest.raises(
        ConfigurationError, match=r"MLOPS_TASK: .*task.toml:1: task.label is required"
    ):
        Settings.from_env(env_for(tmp_path, MLOPS_TASK=str(bad)))


def test_a_task_file_sets_the_default_primary_metric(tmp_path):
    from mlops_assets.errors import ConfigurationError

    text = (
        (REPO / "tasks" / "wine.toml")
        .read_text()
        .replace("[task.class_aliases]", 'primary_metric = "brier"\n\n[task.class_aliases]')
    )
    task = tmp_path / "wine.toml"
    task.write_text(text.replace("../data/wine.csv", str(REPO / "data" / "wine.csv")))
    assert Settings.from_env(env_for(tmp_path, MLOPS_TASK=str(task))).primary_metric == "brier"
    overridden = env_for(tmp_path, MLOPS_TASK=str(task), MLOPS_PRIMARY_METRIC="accuracy")
    assert Settings.from_env(overridden).primary_metric == "accuracy"
    assert Settings.from_env(env_for(tmp_path, MLOPS_TASK=WINE)).primary_metric == "log_loss"
    task.write_text(task.read_text().replace('"brier"', '"auc"'))
    with pytest.raises(ConfigurationError, match=r"wine.toml: task.primary_metric='auc' is not"):
        Settings.from_env(env_for(tmp_path, MLOPS_TASK=str(task)))
