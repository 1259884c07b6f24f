"""The assets materialized with ``dg.materialize`` on a real instance and MLflow store."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.common.hashing import directory_digests
from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.core.registry import reader
from mlops_assets.core.registry.models import model_file_digests
from mlops_assets.core.registry.tags import CHALLENGER, CHAMPION
from mlops_assets.settings import Settings
from mlops_assets_testing.data import VALID_CONTRIBUTION
from mlops_assets_testing.pipeline import SAME_MODEL_NEW_CONFIG
from mlops_assets_testing.processes import env_for, free_port, in_process_mlops, run_cli


def metadata(pipeline, asset: str) -> dict:
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def mlflow_runs(pipeline):
    client = pipeline.client()
    experiment = client.get_experiment_by_name(pipeline.settings.experiment)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_cold_start_registers_a_champion_and_trains_no_copy_of_it(pipeline):
    result = pipeline.materialize()
    assert result.success

    iris = metadata(pipeline, "iris_dataset")
    assert iris["source"] == "file" and iris["train_rows"] == 105 and iris["benchmark_rows"] == 45
    assert Path(iris["benchmark_path"]).exists()

    baseline = metadata(pipeline, "baseline_model")
    assert baseline["cold_start"] is True and baseline["version"] == "1"
    assert len(baseline["training_fingerprint"]) == 64

    # The candidate would be trained on exactly v1's data with v1's config: it is not, and an
    # observation on trained_model says why; nothing downstream runs. v1's registration is
    # shown where people look for a registration, saying where v1 came from.
    for asset in ("trained_model", "contributor_scoreboard"):
        assert pipeline.instance.get_latest_materialization_event(dg.AssetKey(asset)) is None
    first = metadata(pipeline, "registered_model_version")
    assert first["version"] == "1" and first["aliases"] == [CHAMPION] and first["promoted"]
    assert first["registered_by"].startswith("baseline_model: no champion existed, so v1 was")
    assert first["contributions"] == [] and first["contributors"] == []
    v1 = pipeline.client().get_model_version(pipeline.settings.model_name, "1")
    assert first["attestation_sha256"] == v1.tags["attestation_sha256"]
    observed = pipeline.instance.fetch_observations(dg.AssetKey("trained_model"), limit=1)
    why = observed.records[0].asset_observation.metadata
    assert why["skipped"].value.startswith("not trained: iris-classifier v1 was trained on")
    assert why["training_fingerprint"].value == baseline["training_fingerprint"]
    client = pipeline.client()
    name = pipeline.settings.model_name
    assert [str(v.version) for v in client.search_model_versions(f"name = '{name}'")] == ["1"]
    assert client.get_model_version_by_alias(name, CHAMPION).version in (1, "1")
    runs = mlflow_runs(pipeline)  # the cold start's own
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert runs[0].data.tags["dagster_run_id"] == result.run_id

    # Anything new (here the config) trains a candidate, registered as challenger.
    result = pipeline.materialize(run_config=SAME_MODEL_NEW_CONFIG)
    trained = metadata(pipeline, "trained_model")
    assert trained["baseline_version"] == "1"
    assert trained["training_fingerprint"] != baseline["training_fingerprint"]
    assert "| accuracy |" in trained["metrics_table"]
    assert "true \\ predicted" in trained["confusion_matrix"]
    pictures = {k for k in trained if k.endswith("_plot")}
    assert pictures == {"confusion_matrices_plot", "calibration_plot", "metric_deltas_plot"}
    registered = metadata(pipeline, "registered_model_version")
    assert registered["version"] == "2" and registered["promoted"] is False
    assert registered["reason"].endswith("not better, champion stays v1")
    v2 = client.get_model_version_by_alias(name, CHALLENGER)
    assert v2.tags["model_uuid"] == trained["model_uuid"]
    assert v2.tags["data_sha256"] == trained["data_sha256"]
    assert v2.tags["training_fingerprint"] == trained["training_fingerprint"]
    assert v2.tags["dagster_run_id"] == result.run_id
    assert v2.tags["promotion_reason"] == registered["reason"]
    assert json.loads(v2.tags["deltas"])["accuracy"] == 0.0

    # One MLflow run for the Dagster run, ended FINISHED, with everything logged to it.
    (run,) = [r for r in mlflow_runs(pipeline) if r.data.tags["dagster_run_id"] == result.run_id]
    assert run.info.status == "FINISHED"
    assert run.data.params["estimator"] == "logistic_regression"
    assert {"accuracy", "baseline_accuracy", "delta_accuracy"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert artifacts == {"evaluation/classification_report.txt", "evaluation/evaluation.json"}
    # The pictures the UI shows, the same bytes.
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert logged == {f"plots/{k.removesuffix('_plot')}.png" for k in pictures}
    inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert inputs["integrated_dataset"] == trained["data_sha256"][:16]

    # The command line's own reading of the SQLite registry (no MLflow import) says what
    # MLflow's client says: versions, tags, aliases, and the same model files.
    uri = pipeline.settings.tracking_uri
    for found in reader.model_versions(uri, name):
        version = client.get_model_version(name, found.version)
        assert (found.run_id, found.source) == (version.run_id, version.source)
        assert found.tags == version.tags and found.aliases == sorted(version.aliases)
        local = found.local_files()
        assert local is not None
        assert directory_digests(local) == model_file_digests(uri, name, found.version)
    assert reader.find_version(uri, name, alias=CHALLENGER).version == "2"
    assert reader.find_version(uri, name, model_uuid=trained["model_uuid"]).version == "2"
    assert reader.find_version(uri, name, version="9") is None

    # The same data and config again (a re-run from the UI or the CLI): v2 would be trained
    # again, though it is no champion. It is not; the observation names it.
    pipeline.materialize(run_config=SAME_MODEL_NEW_CONFIG)
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    observed = pipeline.instance.fetch_observations(dg.AssetKey("trained_model"), limit=1)
    why = observed.records[0].asset_observation.metadata
    assert why["skipped"].value.startswith("not trained: iris-classifier v2 was trained on")
    assert why["same_as_version"].value == "2"


def test_an_equal_candidate_moves_only_the_challenger(pipeline):
    pipeline.materialize(run_config=SAME_MODEL_NEW_CONFIG)
    # The default gate: log loss, tested with the paired bootstrap. The same model predicts
    # the same rows, so the candidate is better in no resample: p = 1, a zero interval.
    registered = metadata(pipeline, "registered_model_version")
    assert registered["promotion_test"] == "paired bootstrap"
    assert registered["promotion_p_value"] == 1.0
    assert "(95 % interval of the difference [+0.0000, +0.0000])" in registered["reason"]
    trained = metadata(pipeline, "trained_model")
    assert trained["delta_intervals"]["log_loss"] == {
        "delta": 0.0,
        "low": 0.0,
        "high": 0.0,
        "p_value": 1.0,
        "confidence": 0.95,
    }
    assert (
        "| log_loss |" in trained["metrics_table"]
        and "[+0.0000, +0.0000]" in (trained["metrics_table"])
    )
    # Accuracy is tested like every metric, with the paired bootstrap its interval agrees
    # with. (A third config: v2's config on the same data would be v2 again, not trained.)
    pipeline.settings = Settings.from_env(env_for(pipeline.home, MLOPS_PRIMARY_METRIC="accuracy"))
    pipeline.materialize(run_config={"ops": {"trained_model": {"config": {"max_iter": 3000}}}})
    registered = metadata(pipeline, "registered_model_version")
    assert registered["version"] == "3" and not registered["promoted"]
    assert registered["reason"] == (
        "accuracy 0.9111 vs 0.9111 (95 % interval of the difference [+0.0000, +0.0000]): "
        "not better, champion stays v1"
    )
    assert metadata(pipeline, "trained_model")["paired_outcome"] == {
        "rows": 45,
        "candidate_only_correct": 0,
        "baseline_only_correct": 0,
    }
    assert registered["promotion_test"] == "paired bootstrap"
    assert registered["promotion_p_value"] == 1.0
    v3 = pipeline.client().get_model_version(pipeline.settings.model_name, "3")
    assert v3.tags["promotion_p_value"] == "1.000000"
    assert v3.tags["promotion_test"] == "paired bootstrap"
    assert json.loads(v3.tags["delta_intervals"])["accuracy"]["p_value"] == 1.0
    assert metadata(pipeline, "baseline_model")["cold_start"] is False
    assert all(run.info.status == "FINISHED" for run in mlflow_runs(pipeline))


def failed_training_run(pipeline) -> dg.ExecuteInProcessResult:
    """Materialize everything, then a training run that fails (an invalid hyperparameter)."""
    pipeline.materialize()
    bad_config = {"estimator": "random_forest", "n_estimators": -1}
    return pipeline.materialize(
        "trained_model",
        run_config={"ops": {"trained_model": {"config": bad_config}}},
        raise_on_error=False,
    )


def test_a_failing_step_ends_the_mlflow_run_as_failed(pipeline):
    result = failed_training_run(pipeline)
    assert not result.success
    statuses = {r.data.tags["dagster_run_id"]: r.info.status for r in mlflow_runs(pipeline)}
    assert statuses[result.run_id] == "FAILED"


def test_a_dead_run_process_leaves_no_mlflow_run_running(pipeline, monkeypatch):
    # A run whose process died cannot end its MLflow run; the cleanup sensor does, and a tick
    # that cannot reach MLflow is made up by the next one.
    result = failed_training_run(pipeline)
    client = pipeline.client()
    orphan = next(
        r for r in mlflow_runs(pipeline) if r.data.tags["dagster_run_id"] == result.run_id
    )
    client.update_run(orphan.info.run_id, status="RUNNING")  # as if the process was killed
    experiment = client.get_experiment_by_name(pipeline.settings.experiment)
    unknown = client.create_run(experiment.experiment_id, tags={"dagster_run_id": "gone"})

    from mlops_assets.core.registry import client as registry

    down = registry.end_orphaned_runs
    monkeypatch.setattr(  # fault injection: the tracking server is unreachable for one tick
        registry, "end_orphaned_runs", lambda *a: (_ for _ in ()).throw(ConnectionError("down"))
    )
    with pytest.raises(Exception, match="down"):
        pipeline.tick("mlflow_run_cleanup_sensor")
    assert client.get_run(orphan.info.run_id).info.status == "RUNNING"
    monkeypatch.setattr(registry, "end_orphaned_runs", down)

    tick = pipeline.tick("mlflow_run_cleanup_sensor")
    assert "2 MLflow run(s) ended" in tick.skip_message
    assert client.get_run(orphan.info.run_id).info.status == "FAILED"
    assert client.get_run(unknown.info.run_id).info.status == "FAILED"  # no such Dagster run


def check_evaluation(result: dg.ExecuteInProcessResult, name: str):
    """The evaluation of check ``name`` in ``result``."""
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_an_unbalanced_training_set_blocks_training(pipeline):
    pipeline.settings = Settings.from_env(env_for(pipeline.home, MLOPS_MIN_CLASS_SHARE="0.4"))
    result = pipeline.materialize(raise_on_error=False)
    assert not result.success
    check = check_evaluation(result, "integrated_dataset_class_balance")
    assert not check.passed and "setosa is 3" in check.description
    assert pipeline.instance.get_latest_materialization_event(dg.AssetKey("trained_model")) is None


def test_accuracy_floor_blocks_registration(pipeline):
    pipeline.settings = Settings.from_env(env_for(pipeline.home, MLOPS_ACCURACY_FLOOR="0.99"))
    result = pipeline.materialize(run_config=SAME_MODEL_NEW_CONFIG, raise_on_error=False)
    assert not result.success
    check = check_evaluation(result, "trained_model_accuracy_floor")
    assert not check.passed and "0.9111 < floor 0.9900" in check.description
    # The candidate is not registered: the registration shown is still the cold start's v1.
    registered = metadata(pipeline, "registered_model_version")
    assert registered["version"] == "1" and registered["registered_by"].startswith("baseline")
    versions = pipeline.client().search_model_versions(f"name='{pipeline.settings.model_name}'")
    assert [str(v.version) for v in versions] == ["1"]


@pytest.mark.parametrize(
    ("content", "source"), [(None, "sklearn"), ("", "sklearn")], ids=["missing", "empty"]
)
def test_iris_fallback_is_recorded(pipeline, tmp_path, content, source):
    csv = tmp_path / "iris.csv"
    if content is not None:
        csv.write_text(content)
    pipeline.materialize(
        "iris_dataset", run_config={"ops": {"iris_dataset": {"config": {"reference": str(csv)}}}}
    )
    iris = metadata(pipeline, "iris_dataset")
    assert iris["source"] == source and str(csv) in iris["fallback_reason"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n", "has the wrong columns"),
        (
            "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,x,1.4,0.2,setosa\n",
            "row 2: not_numeric:sepal_width",
        ),
    ],
    ids=["wrong-columns", "non-numeric"],
)
def test_invalid_iris_fails_clearly_and_writes_nothing(pipeline, tmp_path, content, message):
    csv = tmp_path / "iris.csv"
    csv.write_text(content)
    result = pipeline.materialize(
        "iris_dataset",
        run_config={"ops": {"iris_dataset": {"config": {"reference": str(csv)}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert message in failure.event_specific_data.error.cause.message
    assert "REFERENCE_DATA_INVALID" in failure.event_specific_data.error.cause.message
    assert not (pipeline.home / "storage" / "reference").exists()


def test_dead_tracking_server_fails_fast_and_registers_nothing(pipeline):
    pipeline.settings = Settings.from_env(
        env_for(pipeline.home, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    )
    result = pipeline.materialize(raise_on_error=False)
    assert not result.success
    # The failure is a resource's (mlflow_tracking cannot start), before any step.
    messages = " ".join(
        e.event_specific_data.error.to_string()
        for e in result.all_events
        if e.event_type_value == "RESOURCE_INIT_FAILURE"
    )
    assert "REGISTRY_UNAVAILABLE" in messages and "start the server" in messages
    assert pipeline.instance.get_latest_materialization_event(dg.AssetKey("baseline_model")) is None


def test_sensor_registers_contributions_and_they_flow_into_training(pipeline, monkeypatch, capsys):
    good = pipeline.drop("alice", "batch 1.csv", VALID_CONTRIBUTION)
    waiting = pipeline.tick()
    assert "waiting for iris_dataset" in waiting.skip_message  # contributions need the iris data
    pipeline.materialize("iris_dataset")

    pipeline.drop("bob", "bad.csv", "sepal_length,species\nabc,rose\n")
    pipeline.drop("bob", ".hidden.csv", VALID_CONTRIBUTION)
    pipeline.drop("bob", "bad.csv.meta.json", "{}")

    tick = pipeline.tick()
    keys = sorted(r.partition_key for r in tick.run_requests)
    assert keys == sorted([contribution_key("alice/batch 1.csv"), contribution_key("bob/bad.csv")])
    assert sorted(tick.dynamic_partitions_requests[0].partition_keys) == keys

    pipeline.instance.add_dynamic_partitions("contributions", keys)  # what the daemon does
    again = pipeline.tick(cursor=tick.cursor)
    assert not again.run_requests and "no new files" in again.skip_reason.skip_message

    outcomes = {
        r.partition_key: pipeline.launch(r, raise_on_error=False) for r in tick.run_requests
    }
    # A rejection is an outcome, not a failure: the run succeeds, the contribution is
    # materialized (its report and quarantine kept), and its check warns "rejected", why and
    # what to do; the run is tagged with the decision.
    assert outcomes[contribution_key("alice/batch 1.csv")].success
    bad_run = outcomes[contribution_key("bob/bad.csv")]
    assert bad_run.success
    (verdict,) = bad_run.get_asset_check_evaluations()
    assert verdict.check_name == "contributed_data_accepted" and not verdict.passed
    assert verdict.severity == dg.AssetCheckSeverity.WARN
    assert verdict.description.startswith("rejected: missing required column(s) ")
    assert "What to do: name the columns as the iris task does" in verdict.description
    (record,) = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("contributed_data"),
            asset_partitions=[contribution_key("bob/bad.csv")],
        ),
        limit=1,
    ).records
    shown = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert shown["status"] == "rejected" and shown["hint"] == verdict.metadata["hint"].value
    run = pipeline.instance.get_run_by_id(bad_run.run_id)
    assert run.tags["mlops/decision"] == "rejected"
    good_run = pipeline.instance.get_run_by_id(
        outcomes[contribution_key("alice/batch 1.csv")].run_id
    )
    assert good_run.tags["mlops/decision"] == "accepted"

    good_key = contribution_key("alice/batch 1.csv")
    report = json.loads(
        (pipeline.home / "storage/contributions" / good_key / "report.json").read_text()
    )
    assert (
        report["accepted"] and report["rows_clean"] == 4 and report["dropped_columns"] == ["email"]
    )
    bad_dir = pipeline.home / "storage/contributions" / contribution_key("bob/bad.csv")
    bad = json.loads((bad_dir / "report.json").read_text())
    assert not bad["accepted"] and "missing required column" in bad["decision"]
    assert bad["hint"].startswith("name the columns as the iris task does")
    _, out, _ = in_process_mlops(pipeline.home, monkeypatch, capsys)("contributions")
    assert f"  what to do: {bad['hint']}" in out.split("bob/bad.csv: rejected", 1)[1]
    assert pd.read_parquet(bad_dir / "rejected.parquet")["sepal_length"].tolist() == ["abc"]
    assert good.read_text() == VALID_CONTRIBUTION  # originals are never modified

    pipeline.materialize("integrated_dataset")
    integrated = metadata(pipeline, "integrated_dataset")
    assert integrated["contributions"] == [good_key]
    assert integrated["rows_by_source"][good_key] == 4

    weighted = {"strategy": "weighted", "max_contributed_share": 0.02}
    pipeline.materialize(
        "integrated_dataset", run_config={"ops": {"integrated_dataset": {"config": weighted}}}
    )
    integrated = metadata(pipeline, "integrated_dataset")
    assert integrated["strategy"] == "weighted" and integrated["rows_by_source"][good_key] == 2
    rows = pd.read_parquet(integrated["path"])
    assert rows.loc[rows["contribution_id"] == good_key, "sample_weight"].lt(1.0).all()


@pytest.mark.e2e
def test_attestation_holds_and_a_changed_model_byte_breaks_it(
    pipeline, tmp_path, monkeypatch, capsys
):
    from urllib.parse import urlparse

    pipeline.materialize("iris_dataset")
    pipeline.drop("alice", "a.csv", VALID_CONTRIBUTION)
    (request,) = pipeline.tick().run_requests
    pipeline.launch(request)
    key = request.partition_key
    pipeline.materialize()
    registered = metadata(pipeline, "registered_model_version")
    assert registered["version"] == "2" and len(registered["attestation_sha256"]) == 64

    env = env_for(pipeline.home)
    verified = run_cli(["mlops", "verify", "2"], env, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "the attestation holds" in verified.stdout
    assert f"ok   contribution {key}" in verified.stdout
    assert "ok   candidate model files (v2)" in verified.stdout

    # v1, the cold-start champion registered in the same run, has an attestation of its own.
    mlops = in_process_mlops(pipeline.home, monkeypatch, capsys)  # the same command, faster
    code, out, _ = mlops("verify", "1")
    assert code == 0 and "ok   baseline: none: the first model (a cold start)" in out, out
    assert "iris-classifier v1: the attestation holds" in out

    client = pipeline.client()
    v2 = client.get_model_version(pipeline.settings.model_name, "2")
    logged = client.get_logged_model(v2.tags["model_id"])
    model_dir = Path(urlparse(logged.artifact_location).path)
    (weights,) = model_dir.glob("*.skops")
    changed = bytearray(weights.read_bytes())
    changed[len(changed) // 2] ^= 1
    weights.write_bytes(changed)
    code, out, _ = mlops("verify", "2")
    assert code == 1
    assert f"FAIL candidate model files (v2): differs: {weights.name}" in out
    assert "does NOT hold" in out

    # An edited record fails on its own hash, and a missing field cannot crash the check.
    run_artifacts = Path(urlparse(client.get_run(v2.run_id).info.artifact_uri).path)
    record = run_artifacts / v2.tags["attestation_path"]
    edited = json.loads(record.read_text())
    del edited["integrated_dataset_sha256"]
    record.write_text(json.dumps(edited))
    code, out, err = mlops("verify", "2")
    assert code == 1, err
    assert "FAIL document" in out and "FAIL integrated dataset" in out

    # A version registered before versions were attested one by one says so.
    client.delete_model_version_tag(pipeline.settings.model_name, "2", "attestation_path")
    code, _, err = mlops("verify", "2")
    assert code == 2 and "has no attestation of its own" in err


def test_a_trusted_joblib_file_seeds_the_registry_as_the_baseline(pipeline, tmp_path):
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    from mlops_assets.core.common.hashing import file_sha256
    from mlops_assets.task import IRIS

    pipeline.materialize("iris_dataset")
    train = pd.read_parquet(metadata(pipeline, "iris_dataset")["train_path"])
    model = RandomForestClassifier(n_estimators=20, random_state=0)
    model.fit(train[IRIS.feature_names], train[IRIS.label])
    path = tmp_path / "trusted" / "team-model.joblib"
    path.parent.mkdir()
    joblib.dump(model, path)
    pipeline.settings = Settings.from_env(
        env_for(
            pipeline.home,
            MLOPS_BASELINE_SOURCE=str(path),
            MLOPS_TRUSTED_MODEL_DIR=str(path.parent),
            MLOPS_BASELINE_SHA256=file_sha256(path),
        )
    )
    pipeline.materialize()

    baseline = metadata(pipeline, "baseline_model")
    assert baseline["cold_start"] is True and baseline["source"] == str(path)
    assert baseline["version"] == "1" and baseline["load_seconds"] > 0
    assert baseline["model_size_mb"] > 0 and baseline["load_peak_rss_mb"] > 0
    assert "probe prediction on 20 benchmark rows" in baseline["validation"]
    v1 = pipeline.client().get_model_version(pipeline.settings.model_name, "1")
    assert v1.tags["source_format"] == "joblib"
    assert v1.tags["source_sha256"] == file_sha256(path)
    trained = metadata(pipeline, "trained_model")
    assert trained["baseline_version"] == "1" and trained["baseline_alias"] == ""
    assert trained["baseline_accuracy"] == baseline["benchmark_accuracy"]
    assert metadata(pipeline, "registered_model_version")["version"] == "2"

    # The file changes: the pin refuses it and nothing new is registered.
    joblib.dump(
        RandomForestClassifier(n_estimators=3).fit(train[IRIS.feature_names], train[IRIS.label]),
        path,
    )
    result = pipeline.materialize("baseline_model", raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert "MODEL_UNTRUSTED" in failure.event_specific_data.error.to_string()
    assert len(pipeline.client().search_model_versions("name = 'iris-classifier'")) == 2


@pytest.mark.e2e
def test_mlops_contributions_reads_every_status_from_the_records(
    pipeline, tmp_path, monkeypatch, capsys
):
    pipeline.materialize("iris_dataset")
    pipeline.drop("alice", "a.csv", VALID_CONTRIBUTION)
    pipeline.drop("bob", "bad.csv", "sepal_length,species\nabc,rose\n")
    for request in pipeline.tick().run_requests:
        pipeline.launch(request, raise_on_error=False)
    pipeline.materialize()  # v1 cold start, v2 trained on alice's file
    pipeline.drop("alice", "copy of a.csv", VALID_CONTRIBUTION)  # same bytes: never taken
    pipeline.drop("carol", "new.csv", VALID_CONTRIBUTION.replace("5.05", "5.15"))

    env = env_for(pipeline.home)
    listed = run_cli(["mlops", "contributions", "--json"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["landing_path"]: row for row in json.loads(listed.stdout)}
    assert rows["alice/a.csv"]["status"] == "accepted"
    assert rows["alice/a.csv"]["rows_accepted"] == 4
    assert rows["alice/a.csv"]["model_versions"] == ["2"]
    assert rows["alice/a.csv"]["quality_score"] > 50
    assert rows["bob/bad.csv"]["status"] == "rejected" and rows["bob/bad.csv"]["rows_accepted"] == 0
    assert rows["bob/bad.csv"]["model_versions"] == []
    assert rows["alice/copy of a.csv"]["status"] == "duplicate"
    assert contribution_key("alice/a.csv") in rows["alice/copy of a.csv"]["decision"]
    assert rows["carol/new.csv"]["status"] == "pending"
    # A page is read from the catalog alone, in landing order: no pending file, no scan.
    everything = json.loads(listed.stdout)
    assert {row["status"] for row in everything[:2]} == {"accepted", "rejected"}
    paged = run_cli(
        ["mlops", "contributions", "--json", "--limit", "1", "--offset", "1"], env, tmp_path
    )
    assert json.loads(paged.stdout) == [everything[1]]

    mlops = in_process_mlops(pipeline.home, monkeypatch, capsys)
    code, out, _ = mlops("contributions", "--contributor", "alice")
    assert code == 0 and "bob" not in out
    assert "alice/a.csv: accepted (4 rows accepted" in out
    assert "models trained on it: v2" in out


def test_an_edited_landing_file_is_a_new_contribution_and_old_attestations_still_hold(
    pipeline, monkeypatch, capsys
):
    import os
    import time

    pipeline.materialize("iris_dataset")
    landed = pipeline.drop("alice", "a.csv", VALID_CONTRIBUTION)
    tick = pipeline.tick()
    ((request),) = tick.run_requests
    pipeline.launch(request)
    pipeline.materialize()
    version = metadata(pipeline, "registered_model_version")["version"]
    report = json.loads(
        (
            pipeline.home / "storage/contributions" / request.partition_key / "report.json"
        ).read_text()
    )
    kept = pipeline.home / "storage/originals" / report["snapshot"]
    assert kept.read_text() == VALID_CONTRIBUTION  # the bytes that were ingested

    # The contributor edits the file in place after its intake.
    landed.write_text(VALID_CONTRIBUTION.replace("5.05", "5.25"))
    later = time.time() + 5
    os.utime(landed, (later, later))
    mlops = in_process_mlops(pipeline.home, monkeypatch, capsys)
    code, out, err = mlops("verify", version)  # hashes the kept bytes, not the edited file
    assert code == 0, out + err
    edited = pipeline.tick(cursor=tick.cursor)
    ((new),) = edited.run_requests
    assert new.partition_key != request.partition_key
    assert new.tags["mlops/landing_path"] == "alice/a.csv"
    assert pipeline.tick(cursor=edited.cursor).run_requests == []  # taken once


def test_an_intake_failing_on_itself_is_typed_cleaned_up_and_shown_failed(
    pipeline, monkeypatch, capsys
):
    import os
    import tempfile

    import duckdb

    import mlops_assets.core.intake.intake as contributions

    pipeline.materialize("iris_dataset")
    pipeline.drop("alice", "wide.csv", VALID_CONTRIBUTION)
    ((request),) = pipeline.tick().run_requests
    pipeline.instance.add_dynamic_partitions("contributions", [request.partition_key])

    def out_of_memory(*_):  # fault injection: what DuckDB raises on a 30,000-column file
        raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")

    monkeypatch.setattr(contributions, "_judge_valid_rows", out_of_memory)
    failed = pipeline.materialize(
        "contributed_data",
        partition_key=request.partition_key,
        tags=request.tags,
        raise_on_error=False,
    )
    assert not failed.success
    (failure,) = failed.get_step_failure_events()
    error = failure.step_failure_data.error
    assert "INTAKE_FAILED" in (error.cause or error).message
    assert list(Path(tempfile.gettempdir()).glob(f"mlops-{os.getpid()}-*")) == []
    contributions_root = pipeline.home / "storage/contributions"
    assert not list(contributions_root.glob(f".{request.partition_key}.staging-*"))

    monkeypatch.setenv("DAGSTER_HOME", pipeline.instance.root_directory)
    mlops = in_process_mlops(pipeline.home, monkeypatch, capsys)
    code, out, err = mlops("contributions", "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["status"] == "failed" and "out of memory" in row["decision"].lower()
