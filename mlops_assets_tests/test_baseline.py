"""Baseline sources (registry, skops, MLflow directory, pickle, joblib), trust and validation."""

import pickle
from pathlib import Path

import joblib
import mlflow
import pytest
import skops.io
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark
from mlops_assets.core.modeling.baseline import BaselinePolicy, ColdStart
from mlops_assets.core.modeling.training import TrainingSpec
from mlops_assets.core.promotion.baseline import COLD_START_REASON, resolve_baseline
from mlops_assets.core.registry.client import (
    RetryPolicy,
    get_version_by_alias,
    register_model_version,
)
from mlops_assets.core.registry.model_files import SKOPS_TRUSTED_TYPES, FileTrust, ModelSource
from mlops_assets.core.registry.models import log_sklearn_model
from mlops_assets.core.registry.tags import CHAMPION
from mlops_assets.errors import (
    ConfigurationError,
    ModelCorruptError,
    ModelIncompatibleError,
    ModelNotFoundError,
    UntrustedModelError,
)
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV

SPLIT = split_benchmark(load_reference_data(IRIS_CSV, IRIS).frame, IRIS, fraction=0.3, seed=42)
X, Y = SPLIT.train[IRIS.feature_names], SPLIT.train[IRIS.label]


def resolve(client, source: str, *, trust: FileTrust | None = None, hooks=(), retries=None):
    policy = BaselinePolicy(
        source=ModelSource.parse(source),
        trust=trust or FileTrust(),
        validators=tuple(hooks),
        retry=RetryPolicy(attempts=3, max_seconds=10),
    )
    with mlflow.start_run():
        return resolve_baseline(
            client,
            tracking_uri=mlflow.get_tracking_uri(),
            policy=policy,
            model_name="m",
            benchmark=SPLIT.benchmark,
            task=IRIS,
            cold_start=ColdStart(SPLIT.train, TrainingSpec("logistic_regression", {}, 42)),
            tags={"dagster_run_id": "run-1"},
            on_retry=None if retries is None else lambda *args: retries.append(args),
        )


def test_cold_start_registers_a_champion_once_then_reuses_it(mlflow_store):
    cold = resolve(mlflow_store, "models:/m@champion")
    assert cold.cold_start and cold.version == "1" and cold.load is None
    champion = get_version_by_alias(mlflow_store, "m", CHAMPION)
    assert champion.tags["cold_start"] == "true"
    assert champion.tags["promotion_reason"] == COLD_START_REASON
    assert champion.tags["dagster_run_id"] == "run-1"
    assert float(champion.tags["benchmark_accuracy"]) == cold.evaluation.metrics["accuracy"]

    warm = resolve(mlflow_store, "models:/m@champion")
    assert not warm.cold_start and warm.version == "1" and warm.alias == CHAMPION
    assert warm.model_uuid == cold.model_uuid
    assert warm.evaluation.metrics == cold.evaluation.metrics
    assert warm.load.seconds > 0 and warm.load.peak_rss_mb > 0 and warm.load.size_mb > 0
    assert warm.checks[0] == "predict and predict_proba present"


def test_a_registry_version_or_another_model_name_is_a_source(mlflow_store):
    for name in ("m", "other"):
        with mlflow.start_run():
            info = log_sklearn_model(LogisticRegression(max_iter=500).fit(X, Y), name="model")
        register_model_version(mlflow_store, info, model_name=name, tags={})

    by_version = resolve(mlflow_store, "models:/other/1")
    assert (by_version.model_name, by_version.version, by_version.alias) == ("other", "1", None)
    assert not by_version.cold_start
    # A missing alias of another model, or a missing version, is not a cold start.
    retries: list = []
    for missing in ("models:/other@champion", "models:/m/7", "models:/nobody@champion"):
        with pytest.raises(ModelNotFoundError) as error:
            resolve(mlflow_store, missing, retries=retries)
        assert missing in error.value.message and "MLOPS_BASELINE_SOURCE" in error.value.hint
    assert retries == [], "not found must not be retried"


def fitted() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)


def write_model(path: Path, model) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".skops":
        skops.io.dump(model, path)
    elif path.suffix == ".joblib":
        joblib.dump(model, path)
    else:
        path.write_bytes(pickle.dumps(model))
    return path


@pytest.mark.parametrize("name", ["model.skops", "model.pkl", "model.pickle", "model.joblib"])
def test_a_local_file_is_validated_and_imported_once(mlflow_store, tmp_path, name):
    trusted = tmp_path / "trusted"
    path = write_model(trusted / name, fitted())
    imported = resolve(mlflow_store, str(path), trust=FileTrust(trusted))
    # No champion yet: the imported file becomes the first one.
    assert imported.cold_start and imported.version == "1" and imported.source == str(path)
    version = mlflow_store.get_model_version("m", "1")
    assert version.tags["source_format"] == name.split(".")[1].replace("pkl", "pickle")
    assert version.tags["imported_from"] == str(path) and len(version.tags["source_sha256"]) == 64
    assert imported.load.size_mb > 0 and len(imported.checks) == 3

    again = resolve(mlflow_store, str(path), trust=FileTrust(trusted))
    assert (again.version, again.cold_start) == ("1", False)
    assert len(mlflow_store.search_model_versions("name = 'm'")) == 1


@pytest.mark.parametrize("serialization", ["skops", "cloudpickle"])
def test_an_mlflow_model_directory_is_a_source(mlflow_store, tmp_path, serialization):
    trusted = tmp_path / "trusted"
    mlflow.sklearn.save_model(
        fitted(),
        trusted / "model",
        serialization_format=serialization,
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=[],
    )
    if serialization == "cloudpickle":  # a pickle inside: only from the trusted directory
        with pytest.raises(UntrustedModelError):
            resolve(mlflow_store, str(trusted / "model"))
    baseline = resolve(mlflow_store, str(trusted / "model"), trust=FileTrust(trusted))
    assert baseline.version == "1" and baseline.evaluation.metrics["accuracy"] > 0.8


def test_a_pickle_outside_the_trusted_directory_is_never_unpickled(mlflow_store, tmp_path):
    marker = tmp_path / "code-ran"

    class Tampered:  # what an attacker's pickle does: run code on load
        def __reduce__(self):
            return (Path.touch, (marker,))

    elsewhere = tmp_path / "downloads" / "model.pkl"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(pickle.dumps(Tampered()))
    for trust in (FileTrust(), FileTrust(tmp_path / "trusted")):
        with pytest.raises(UntrustedModelError) as error:
            resolve(mlflow_store, str(elsewhere), trust=trust)
        assert (
            error.value.code == "MODEL_UNTRUSTED" and "MLOPS_TRUSTED_MODEL_DIR" in error.value.hint
        )
    # Inside the trusted directory but not the pinned file: refused before unpickling too.
    inside = write_model(tmp_path / "trusted" / "model.pkl", Tampered())
    with pytest.raises(UntrustedModelError) as error:
        resolve(mlflow_store, str(inside), trust=FileTrust(tmp_path / "trusted", "0" * 64))
    assert "pinned" in error.value.message
    assert not marker.exists()
    assert mlflow_store.search_model_versions("name = 'm'") == []


def test_a_pinned_file_loads_only_with_its_hash(mlflow_store, tmp_path):
    from mlops_assets.core.common.hashing import file_sha256

    path = write_model(tmp_path / "trusted" / "model.joblib", fitted())
    pinned = FileTrust(tmp_path / "trusted", file_sha256(path))
    assert resolve(mlflow_store, str(path), trust=pinned).version == "1"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("model.skops", b"PK\x03\x04 truncated"),
        ("model.pkl", b"\x80\x05garbage"),
        ("m.joblib", b""),
    ],
)
def test_a_corrupt_file_is_a_clear_error(mlflow_store, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelCorruptError) as error:
        resolve(mlflow_store, str(path), trust=FileTrust(tmp_path))
    assert error.value.code == "MODEL_CORRUPT" and name in error.value.message


def test_missing_files_and_unknown_formats(mlflow_store, tmp_path):
    with pytest.raises(ModelNotFoundError):
        resolve(mlflow_store, str(tmp_path / "nothing.skops"))
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ModelIncompatibleError, match="unknown model format"):
        resolve(mlflow_store, str(tmp_path / "model.onnx"))
    with pytest.raises(ConfigurationError, match="not a registry model URI"):
        ModelSource.parse("models:/m@")


def test_a_model_for_another_task_is_refused(mlflow_store, tmp_path):
    three_features = LogisticRegression(max_iter=500).fit(X.iloc[:, :3], Y)
    numeric_labels = LogisticRegression(max_iter=500).fit(X, Y.factorize()[0])
    for model, expected in ((three_features, "expects 3 features"), (numeric_labels, "classes")):
        path = write_model(tmp_path / "model.skops", model)
        with pytest.raises(ModelIncompatibleError, match=expected):
            resolve(mlflow_store, str(path))
    assert mlflow_store.search_model_versions("name = 'm'") == []


def reject_small_forests(model, probe, task):
    if getattr(model, "n_estimators", 0) < 10:
        raise ValueError(f"only {model.n_estimators} trees")


def accept(model, probe, task):
    return len(probe) > 0


def test_validation_hooks_are_called_by_dotted_path(mlflow_store, tmp_path):
    path = write_model(tmp_path / "model.skops", fitted())
    here = "mlops_assets_tests.test_baseline"
    with pytest.raises(ModelIncompatibleError) as error:
        resolve(mlflow_store, str(path), hooks=[f"{here}:accept", f"{here}:reject_small_forests"])
    assert "reject_small_forests rejected the model: only 5 trees" in error.value.message
    with pytest.raises(ConfigurationError, match="cannot be imported"):
        resolve(mlflow_store, str(path), hooks=[f"{here}:no_such_hook"])
    baseline = resolve(mlflow_store, str(path), hooks=[f"{here}.accept"])
    assert baseline.checks[-1] == f"hook {here}.accept"
