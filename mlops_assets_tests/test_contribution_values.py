"""What three contributions in one retrain are worth, on a real instance and MLflow store:
valued, the harmful one left out, and the values shown wherever a contributor looks."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.modeling.evaluation import LOWER_IS_BETTER
from mlops_assets.core.modeling.training import train_model
from mlops_assets.core.registry.tags import CHALLENGER
from mlops_assets.core.registry.webhooks import REGISTERED, Outbox, new_secret
from mlops_assets.core.reporting import plots
from mlops_assets.defs.contributions.partitions import LANDED_AT_TAG
from mlops_assets.settings import Settings
from mlops_assets.task import IRIS
from mlops_assets_testing.data import new_flowers
from mlops_assets_testing.pictures import decoded_pictures
from mlops_assets_testing.processes import env_for, free_port, in_process_mlops


def metadata(pipeline, asset: str) -> dict:
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.fixture
def valued(pipeline, monkeypatch):
    """A champion trained on iris alone, then one retrain for four contributions landing in
    one tick, in this order: clean new flowers (alice), the same flowers with versicolor and
    virginica swapped (mallory), a few other new flowers (bob), and a near-copy of some of
    alice's (eve, every measurement +0.05 cm). Eve's intake runs first, before alice's: the
    copier races. Webhook events go to a receiver that is down, so they wait in the outbox."""
    secret = new_secret()
    monkeypatch.setenv("MLOPS_WEBHOOK_SECRET", secret)  # resources read it as an EnvVar
    pipeline.settings = Settings.from_env(
        env_for(
            pipeline.home,
            MLOPS_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/hooks",
            MLOPS_WEBHOOK_SECRET=secret,
        )
    )
    pipeline.materialize()
    clean = new_flowers(per_class=20, seed=11)
    swapped = clean.assign(
        species=clean["species"].replace({"versicolor": "virginica", "virginica": "versicolor"})
    )
    few = new_flowers(per_class=3, seed=12)
    near = clean.sample(n=8, random_state=0)
    near[IRIS.feature_names] = (near[IRIS.feature_names] + 0.05).round(2)
    for age, (who, frame) in enumerate(
        (("alice", clean), ("mallory", swapped), ("bob", few), ("eve", near))
    ):
        pipeline.drop(who, "flowers.csv", frame.to_csv(index=False), age=60 - age)
    requests = pipeline.tick().run_requests
    assert len(requests) == 4
    for request in sorted(requests, key=lambda r: r.tags[LANDED_AT_TAG], reverse=True):
        pipeline.launch(request)
    pipeline.retrain()
    return pipeline


def contribution_metadata(pipeline, contribution_id: str) -> dict:
    (record,) = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("contributed_data"), asset_partitions=[contribution_id]
        ),
        limit=1,
    ).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_three_contributions_valued_in_one_retrain(valued, monkeypatch, capsys, tmp_path):
    pipeline, tmp = valued, tmp_path
    trained = metadata(pipeline, "trained_model")
    valuation = trained["valuation"]
    by_contributor = {v["contributor"]: v for v in valuation["values"]}
    assert set(by_contributor) == {"alice", "mallory", "bob", "eve"}
    assert valuation["method"] == "exact" and valuation["metric"] == "log_loss"
    clean, swapped = by_contributor["alice"], by_contributor["mallory"]
    assert clean["value"] == max(v["value"] for v in valuation["values"])
    assert swapped["status"] == "excluded" and swapped["value_interval"][1] < 0
    assert swapped["reason"].startswith("raised log loss on the benchmark by ")
    assert by_contributor["alice"]["status"] == by_contributor["bob"]["status"] == "included"
    # Eve's intake ran first and accepted her rows, but alice's landed first: they are hers.
    copy = by_contributor["eve"]
    assert copy["status"] == "nothing_new" and copy["value"] == 0.0 and copy["rows"] == 0
    assert copy["reason"].startswith("all 8 of your 8 rows had already been given by alice at ")

    # The values add up to what the new contributions improve, measured here independently:
    # a model on the base (iris alone) and one on everything, same config and seed.
    store = pipeline.resources()["store"]
    integrated = store.read_frame(
        store.integrated(metadata(pipeline, "integrated_dataset")["sha256"])
    )
    benchmark = store.read_frame(store.BENCHMARK)

    def log_loss(rows: pd.DataFrame) -> float:
        from mlops_assets.core.modeling.evaluation import evaluate

        model = train_model(
            rows,
            IRIS,
            estimator="logistic_regression",
            hyperparameters={"C": 1.0, "max_iter": 1000},
            seed=pipeline.settings.seed,
        )
        return evaluate(model, benchmark, IRIS).metrics["log_loss"]

    improvement = log_loss(integrated[integrated["source"] == "reference"]) - log_loss(integrated)
    total = sum(v["value"] for v in valuation["values"])
    assert total == pytest.approx(improvement, abs=1e-5)

    # The registered version is trained without the swapped rows, on a dataset of its own.
    registered = metadata(pipeline, "registered_model_version")
    version = pipeline.client().get_model_version(
        pipeline.settings.model_name, registered["version"]
    )
    assert CHALLENGER in version.aliases
    contributions = json.loads(version.tags["contributions"])
    assert (
        swapped["contribution_id"] not in contributions
        and clean["contribution_id"] in contributions
    )
    assert json.loads(version.tags["excluded_contributions"]) == {
        swapped["contribution_id"]: swapped["reason"]
    }
    trained_on = store.read_frame(store.integrated(version.tags["data_sha256"]))
    assert version.tags["data_sha256"] != metadata(pipeline, "integrated_dataset")["sha256"]
    assert set(trained_on["contribution_id"]) == {"iris", *contributions}
    assert len(trained_on) == len(integrated) - swapped["rows"]
    tagged = {v["contribution_id"]: v for v in json.loads(version.tags["contribution_values"])}
    assert tagged[clean["contribution_id"]]["value"] == clean["value"]
    assert (
        "| alice |" in trained["valuation_summary"] and "excluded" in trained["valuation_summary"]
    )

    # The pictures: each decodes at its stated size; the two drawn from metadata are exactly
    # what that metadata gives; the MLflow run holds the same bytes, and the pictures of each
    # contribution it valued.
    pictures = decoded_pictures(trained)
    assert set(pictures) == {
        "confusion_matrices",
        "calibration",
        "metric_deltas",
        "contribution_values",
    }
    assert (
        pictures["metric_deltas"]
        == plots.metric_deltas(
            trained["delta_intervals"], lower_is_better=LOWER_IS_BETTER, primary="log_loss"
        ).png
    )
    assert (
        pictures["contribution_values"]
        == plots.contribution_values(valuation["values"], metric="log_loss").png
    )
    client = pipeline.client()
    for name, png in pictures.items():
        logged = client.download_artifacts(trained["mlflow_run_id"], f"plots/{name}.png", str(tmp))
        assert Path(logged).read_bytes() == png
    intake = contribution_metadata(pipeline, swapped["contribution_id"])
    balance = decoded_pictures(intake)
    assert set(balance) == {"class_balance", "feature_drift"}
    logged = client.download_artifacts(
        trained["mlflow_run_id"], f"contributions/{swapped['contribution_id']}", str(tmp)
    )
    assert (Path(logged) / "class_balance.png").read_bytes() == balance["class_balance"]

    # Where a contributor looks: the CLI, the scoreboard, the attestation.
    mlops = in_process_mlops(pipeline.home, monkeypatch, capsys)
    code, out, _ = mlops("contributions", "--json")
    assert code == 0
    rows = {row["contributor"]: row for row in json.loads(out)}
    assert rows["mallory"]["status"] == "excluded"
    assert rows["mallory"]["decision"].startswith(f"valued in v{registered['version']}: raised")
    assert rows["alice"]["status"] == "accepted"
    assert rows["alice"]["value"] == clean["value"]
    assert rows["alice"]["value_interval"] == clean["value_interval"]
    assert rows["alice"]["loo_delta"] == clean["loo_delta"]
    assert rows["alice"]["valued_in_version"] == registered["version"]
    assert rows["eve"]["status"] == "nothing_new" and rows["eve"]["value"] == 0.0
    assert rows["eve"]["model_versions"] == []
    code, out, _ = mlops("contributions")
    assert "mallory/flowers.csv: excluded" in out and "raised log loss" in out
    assert "eve/flowers.csv: nothing_new" in out and "already been given by alice" in out
    assert f"valued in v{registered['version']}: lowered log loss" in out

    code, out, _ = mlops("model", "show", "--version", registered["version"], "--json")
    shown = json.loads(out)
    assert {v["contribution_id"] for v in shown["contribution_values"]} == {
        v["contribution_id"] for v in valuation["values"]
    }
    assert (
        shown["delta_intervals"]["log_loss"]["low"] <= shown["delta_intervals"]["log_loss"]["high"]
    )

    code, out, _ = mlops("verify", registered["version"])
    assert code == 0, out
    assert "ok   contribution values (4, exact): recomputed with the same seed" in out

    board = {
        row["contributor"]: row for row in _table(metadata(pipeline, "contributor_scoreboard"))
    }
    assert board["mallory"]["excluded"] == 1 and board["alice"]["accepted"] == 1
    assert board["alice"]["total_value"] == pytest.approx(clean["value"])
    assert registered["version"] in board["alice"]["model_versions"]
    assert store.read_frame(store.SCOREBOARD)["contributor"].tolist()[0] == "alice"

    # The webhook event of the registration carries the values too.
    (event,) = [
        e.event.data
        for e in Outbox(pipeline.home / "webhooks").waiting()
        if e.event.type == REGISTERED and e.event.data["version"] == registered["version"]
    ]
    assert event["contribution_values"] == json.loads(version.tags["contribution_values"])

    # The same seed gives the same numbers on a rerun.
    pipeline.materialize(["trained_model"])
    assert metadata(pipeline, "trained_model")["valuation"]["values"] == valuation["values"]


def test_a_tampered_valuation_does_not_verify(valued, monkeypatch, capsys):
    """Values recomputed from the stored data disagree with a record whose value was edited
    (and resealed, so only the recomputation can tell)."""
    from mlops_assets.core.promotion.attestation import seal
    from mlops_assets.core.registry.attestations import read_attestation, record_attestation

    pipeline = valued
    number = metadata(pipeline, "registered_model_version")["version"]
    client = pipeline.client()
    version = client.get_model_version(pipeline.settings.model_name, number)
    document = read_attestation(client, version)
    document["valuation"]["values"][0]["value"] += 0.5
    body = {k: v for k, v in document.items() if k not in ("document_sha256", "schema", "packages")}
    record_attestation(client, version.name, number, version.run_id, seal(body))
    code, out, _ = in_process_mlops(pipeline.home, monkeypatch, capsys)("verify", number)
    assert code == 1
    assert "FAIL contribution values (4, exact): recomputed differently" in out


def _table(materialization: dict) -> list[dict]:
    return [record.data for record in materialization["scoreboard"].records]
