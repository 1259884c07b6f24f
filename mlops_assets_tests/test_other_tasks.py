"""Every shipped task from its task file, end to end; and a home or registry of one task
refusing another."""

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.registry.attestations import read_attestation
from mlops_assets.settings import Settings
from mlops_assets_testing.data import (
    iris_contribution,
    penguins_contribution,
    wine_contribution,
)
from mlops_assets_testing.processes import REPO, env_for
from mlops_assets_testing.servers import ApiServer

WINE = str(REPO / "tasks" / "wine.toml")


def latest(pipeline, asset: str) -> dict:
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _two_iris_contributions() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two contributions of new flowers that share none: every other of 20 per species."""
    flowers = iris_contribution(per_class=20)
    return flowers.iloc[::2].reset_index(drop=True), flowers.iloc[1::2].reset_index(drop=True)


def _measured_again(contribution) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A task's contribution and the same with every measurement moved by 3 %: the same kind
    of rows, all new (more than each task's measurement resolution away from the first; iris
    flowers are too close to each other for that, see ``_two_iris_contributions``)."""
    frame = contribution()
    numeric = frame.select_dtypes("number").columns.drop(["Id", "Sample Number"], errors="ignore")
    return frame, frame.assign(**{c: frame[c] * 1.03 for c in numeric}).round(4)


# task -> (two valid contributions in its own spellings that share no row, the column, value
# and reason code that spoil a row, and a raw row for the API)
SHIPPED = {
    "iris": (
        _two_iris_contributions,
        ("Species", "Iris-rosea", "unknown_label"),
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    ),
    "wine": (
        lambda: _measured_again(wine_contribution),
        ("Class", "class_9", "unknown_label"),
        pd.read_csv(REPO / "data" / "wine.csv").drop(columns="cultivar").iloc[0].to_dict(),
    ),
    "penguins": (
        lambda: _measured_again(penguins_contribution),
        ("Island", "Anvers", "unknown_category:island"),
        # Strings for categories; null where the task imputes a missing value.
        {
            "island": "Dream",
            "bill_length_mm": 49.0,
            "bill_depth_mm": 18.5,
            "flipper_length_mm": 195,
            "body_mass_g": None,
            "sex": None,
        },
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(SHIPPED))
def test_a_shipped_task_trains_takes_contributions_and_serves(pipeline, tmp_path, name):
    """Cold start on a fresh home; a contribution in the task's own spellings accepted and
    retrained on; one with an unknown category (the label, for tasks without a categorical
    feature) rejected row by row; the API predicting from raw values."""
    contribution, (column, unknown, reason), raw_row = SHIPPED[name]
    task_file = str(REPO / "tasks" / f"{name}.toml")
    pipeline.settings = Settings.from_env(env_for(pipeline.home, MLOPS_TASK=task_file))
    assert pipeline.settings.model_name == f"{name}-classifier"
    pipeline.materialize()
    assert latest(pipeline, f"{name}_dataset")["task"] == name
    assert latest(pipeline, "baseline_model")["cold_start"] is True

    good, other = contribution()
    spoiled = other.head(10)
    spoiled.loc[:4, column] = unknown
    pipeline.drop("carla", f"{name}.csv", good.to_csv(index=False))
    pipeline.drop("dmitri", f"{name}.csv", spoiled.to_csv(index=False))
    requests = {r.tags["mlops/contributor"]: r for r in pipeline.tick().run_requests}
    pipeline.launch(requests["carla"])
    intake = latest(pipeline, "contributed_data")
    assert intake["accepted"] is True, intake["decision"]
    assert intake["rows_clean"] == len(good)
    pipeline.launch(requests["dmitri"], raise_on_error=False)  # accepted or not: its rows
    store = pipeline.resources()["store"]
    key = store.contribution(requests["dmitri"].partition_key, "rejected.parquet")
    rejected = store.read_frame(key)
    assert rejected["row_index"].tolist() == [0, 1, 2, 3, 4]
    assert set(rejected["rejection_reasons"]) == {reason}
    assert latest(pipeline, "contributed_data")["rows_clean"] == 5

    pipeline.retrain()
    values = latest(pipeline, "trained_model")["valuation"]["values"]
    assert "carla" in [v["contributor"] for v in values]
    client = pipeline.client()
    assert client.get_registered_model(f"{name}-classifier").tags["task"] == name
    newest = max(client.search_model_versions(f"name = '{name}-classifier'"), key=_number)
    assert read_attestation(client, newest)["task"] == pipeline.settings.task.attested()
    with ApiServer(pipeline.home, tmp_path / "api.log", MLOPS_TASK=task_file) as api:
        status, body = api.request("POST", "/predict", {"instances": [raw_row]})
        assert status == 200, body
        assert body["predictions"][0]["label"] in pipeline.settings.task.classes
        status, body = api.request("POST", "/predict", {"instances": [{**raw_row, "x": 1}]})
        assert status == 422 and body["errors"][0]["field"] == "instances[0].x"


def _number(version) -> int:
    return int(version.version)


def test_a_home_of_one_task_refuses_another(pipeline):
    pipeline.materialize("iris_dataset")
    pipeline.settings = Settings.from_env(env_for(pipeline.home, MLOPS_TASK=WINE))
    result = pipeline.materialize("wine_dataset", raise_on_error=False)
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
    assert len(client.search_model_versions("name = 'iris-classifier'")) == 1  # untouched


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
