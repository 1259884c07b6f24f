import mlflow
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_assets.core.data.reference_data import sklearn_iris
from mlops_assets.core.promotion.champion import promote_to_champion
from mlops_assets.core.registry.client import (
    get_version_by_alias,
    get_version_by_model_uuid,
    mlflow_client,
    redact_uri,
    register_model_version,
    registry_errors,
)
from mlops_assets.core.registry.models import load_sklearn_model, log_sklearn_model
from mlops_assets.core.registry.tags import CHAMPION, PREVIOUS_CHAMPION
from mlops_assets.errors import RegistryUnavailableError, UntrustedModelError
from mlops_assets.task import IRIS
from mlops_assets_testing.processes import free_port


@pytest.fixture(scope="module")
def iris_model():
    frame = sklearn_iris(IRIS)
    model = LogisticRegression(max_iter=500).fit(frame[IRIS.feature_names], frame[IRIS.label])
    return model, frame[IRIS.feature_names].head(3)


def test_register_load_and_promote_round_trip(mlflow_store, iris_model):
    model, example = iris_model
    with mlflow.start_run():
        info = log_sklearn_model(model, name="model", input_example=example)
    first = register_model_version(mlflow_store, info, model_name="m", tags={"data_sha256": "abc"})
    assert first.version == "1" and first.model_uuid == info.model_uuid
    assert first.signature and "sepal_length" in first.signature
    assert get_version_by_alias(mlflow_store, "m", CHAMPION) is None

    assert promote_to_champion(mlflow_store, "m", first.version) is None
    with mlflow.start_run():
        info2 = log_sklearn_model(model, name="model", input_example=example)
    second = register_model_version(mlflow_store, info2, model_name="m", tags={})
    assert promote_to_champion(mlflow_store, "m", second.version) == "1"
    assert str(get_version_by_alias(mlflow_store, "m", CHAMPION).version) == "2"
    assert str(get_version_by_alias(mlflow_store, "m", PREVIOUS_CHAMPION).version) == "1"

    version = get_version_by_model_uuid(mlflow_store, "m", second.model_uuid)
    assert str(version.version) == "2" and version.tags["model_id"] == second.model_id
    assert get_version_by_model_uuid(mlflow_store, "m", "m-0") is None
    assert get_version_by_model_uuid(mlflow_store, "m", "x' OR name != '") is None

    loaded = load_sklearn_model("models:/m@champion")
    assert (loaded.predict(example) == model.predict(example)).all()


def test_pickled_models_are_refused(mlflow_store, iris_model):
    model, _ = iris_model
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="cloudpickle", pip_requirements=[]
        )
    with pytest.raises(UntrustedModelError) as error:
        load_sklearn_model(info.model_uri)
    assert error.value.code == "MODEL_UNTRUSTED" and "skops" in error.value.hint


def test_a_dead_tracking_server_is_a_clear_error():
    uri = f"http://user:secret@127.0.0.1:{free_port()}"
    with pytest.raises(RegistryUnavailableError) as error, registry_errors(uri):
        mlflow_client(uri).get_experiment_by_name("e")
    assert "secret" not in str(error.value) and "***@127.0.0.1" in str(error.value)
    assert redact_uri("sqlite:///x.db") == "sqlite:///x.db"


def _promoted_over_a_stump(pipeline, tmp_path):
    """v1: a one-split tree imported as the first champion; v2: the candidate, promoted."""
    import joblib
    from sklearn.tree import DecisionTreeClassifier

    from mlops_assets.settings import Settings
    from mlops_assets_testing.processes import env_for

    pipeline.materialize("iris_dataset")
    store = pipeline.resources()["store"]
    train = store.read_frame(store.REFERENCE_TRAIN)
    stump = DecisionTreeClassifier(max_depth=1, random_state=0)
    weak = tmp_path / "trusted" / "stump.joblib"
    weak.parent.mkdir()
    joblib.dump(stump.fit(train[IRIS.feature_names], train[IRIS.label]), weak)
    pipeline.settings = Settings.from_env(
        env_for(
            pipeline.home, MLOPS_BASELINE_SOURCE=str(weak), MLOPS_TRUSTED_MODEL_DIR=str(weak.parent)
        )
    )
    pipeline.materialize()
    client, name = pipeline.client(), pipeline.settings.model_name
    v2 = client.get_model_version(name, "2")
    assert v2.tags["promoted"] == "true" and v2.tags["decided_against"] == "1"
    return client, name


@pytest.mark.parametrize(("champion_since", "expected"), [("1", "2"), ("moved", "1")])
def test_a_run_killed_before_the_aliases_moved_is_completed_by_a_rerun(
    pipeline, tmp_path, champion_since, expected
):
    """registration=complete, but the kill came before challenger and champion moved: the
    rerun moves them, unless the champion moved since the decision (then it stays)."""
    client, name = _promoted_over_a_stump(pipeline, tmp_path)
    # The state a kill right after registration=complete leaves.
    client.set_registered_model_alias(name, CHAMPION, "1")
    client.delete_registered_model_alias(name, "challenger")
    if champion_since == "moved":  # as if a promotion by hand had happened since
        client.set_model_version_tag(name, "2", "decided_against", "0")
    rerun = pipeline.materialize("registered_model_version")
    registered = rerun.asset_materializations_for_node("registered_model_version")[0].metadata
    assert registered["version"].value == "2" and registered["resumed_registration"].value
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == expected
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"
    assert len(client.search_model_versions(f"name = '{name}'")) == 2
