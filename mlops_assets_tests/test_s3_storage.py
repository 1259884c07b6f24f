"""Datasets and the landing zone on S3 (a real local S3-compatible server): the pipeline
writes nothing to local disk, every command reads the bucket, and a bad bucket is a clear
error."""

import json

import boto3
import pytest

from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.resources import dataset_store
from mlops_assets.resources.s3 import S3DatasetStore
from mlops_assets.settings import Settings
from mlops_assets_testing.data import IRIS_CSV, VALID_CONTRIBUTION
from mlops_assets_testing.processes import env_for, in_process_mlops


def s3_settings(home, endpoint: str, bucket: str) -> dict[str, str]:
    return env_for(
        home,
        MLOPS_STORAGE_URI=f"s3://{bucket}/storage",
        MLOPS_LANDING_URI=f"s3://{bucket}/landing",
        MLOPS_S3_ENDPOINT_URL=endpoint,
    )


def keys_under(endpoint: str, bucket: str, prefix: str) -> list[str]:
    listed = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.fixture
def s3_pipeline(pipeline, s3_endpoint, s3_bucket):
    pipeline.settings = Settings.from_env(s3_settings(pipeline.home, s3_endpoint, s3_bucket))
    return pipeline


def test_the_pipeline_keeps_its_datasets_in_the_bucket(
    s3_pipeline, s3_endpoint, s3_bucket, tmp_path, monkeypatch, capsys
):
    pipeline = s3_pipeline
    landing = pipeline.resources()["landing"]
    upload = tmp_path / "upload.csv"
    upload.write_text(VALID_CONTRIBUTION)
    landing.put(upload, "alice/a.csv")
    upload.write_text("sepal_length,species\nabc,rose\n")
    landing.put(upload, "bob/bad.csv")

    pipeline.materialize("iris_dataset")
    for request in pipeline.tick().run_requests:
        pipeline.launch(request, raise_on_error=False)
    pipeline.materialize()  # v1 cold start, v2 trained on alice's file

    alice, bob = contribution_key("alice/a.csv"), contribution_key("bob/bad.csv")
    stored = keys_under(s3_endpoint, s3_bucket, "storage/")
    assert {
        "storage/reference/train.parquet",
        "storage/reference/benchmark.parquet",
        f"storage/contributions/{alice}/clean.parquet",
        f"storage/contributions/{alice}/report.json",
        f"storage/contributions/{bob}/rejected.parquet",
        f"storage/contributions/{bob}/report.json",
    } <= set(stored)
    # The cold-start champion's training set (iris alone) and the candidate's.
    version = pipeline.client().get_model_version("iris-classifier", "2")
    assert {k for k in stored if k.startswith("storage/integrated/")} == {
        f"storage/integrated/{v.tags['data_sha256'][:16]}.parquet"
        for v in (pipeline.client().get_model_version("iris-classifier", "1"), version)
    }
    assert not (pipeline.home / "storage").exists()  # nothing went to local disk

    store = pipeline.resources()["store"]
    frame = store.read_frame(store.integrated(version.tags["data_sha256"]))
    assert (frame["contribution_id"] == alice).sum() == 4
    assert json.loads(version.tags["contributions"]) == [alice]

    for name, value in s3_settings(pipeline.home, s3_endpoint, s3_bucket).items():
        monkeypatch.setenv(name, value)
    mlops = in_process_mlops(pipeline.home, monkeypatch, capsys)
    code, out, err = mlops("contributions", "--json")
    assert code == 0, err
    statuses = {row["landing_path"]: row["status"] for row in json.loads(out)}
    assert statuses == {"alice/a.csv": "accepted", "bob/bad.csv": "rejected"}
    for number in ("1", "2"):  # hash the benchmark and training sets in the bucket
        code, out, err = mlops("verify", number)
        assert code == 0, out + err


def test_a_republished_folder_replaces_the_stored_one(s3_endpoint, s3_bucket, tmp_path):
    store = dataset_store(Settings.from_env(s3_settings(tmp_path / "var", s3_endpoint, s3_bucket)))
    assert isinstance(store, S3DatasetStore)
    folder = store.local_path("contributions/x")
    folder.mkdir(parents=True)
    for name in ("clean.parquet", "rejected.parquet", "report.json"):
        (folder / name).write_text(name)
    store.publish("contributions/x")
    assert keys_under(s3_endpoint, s3_bucket, "storage/contributions/x/") == [
        "storage/contributions/x/clean.parquet",
        "storage/contributions/x/rejected.parquet",
        "storage/contributions/x/report.json",
    ]
    (folder / "rejected.parquet").unlink()  # the new outcome has no rejected rows
    store.publish("contributions/x")
    assert keys_under(s3_endpoint, s3_bucket, "storage/contributions/x/") == [
        "storage/contributions/x/clean.parquet",
        "storage/contributions/x/report.json",
    ]


def test_a_fetched_tree_follows_the_bucket(s3_endpoint, s3_bucket, tmp_path):
    store = dataset_store(Settings.from_env(s3_settings(tmp_path / "var", s3_endpoint, s3_bucket)))
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for name in ("clean.parquet", "report.json"):
        s3.put_object(Bucket=s3_bucket, Key=f"storage/contributions/y/{name}", Body=name.encode())

    reports = store.fetch_tree("contributions", ending="report.json")
    assert [p.name for p in (reports / "y").iterdir()] == ["report.json"]
    assert (reports / "y" / "report.json").read_text() == "report.json"
    # Another process deletes y; a later fetch must not keep the stale copy.
    s3.delete_object(Bucket=s3_bucket, Key="storage/contributions/y/report.json")
    assert not (store.fetch_tree("contributions", ending="report.json") / "y/report.json").exists()
    with pytest.raises(FileNotFoundError, match=f"s3://{s3_bucket}/storage/nothing.parquet"):
        store.fetch("nothing.parquet")


@pytest.mark.parametrize(
    ("storage_uri", "endpoint", "message"),
    [
        ("s3://no-such-bucket/storage", None, "no-such-bucket/storage does not exist"),
        ("s3://{bucket}/storage", "http://127.0.0.1:9", "cannot be reached"),
    ],
)
def test_a_bad_bucket_is_a_clear_error_and_writes_nothing(
    pipeline, s3_endpoint, s3_bucket, storage_uri, endpoint, message, monkeypatch
):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no retries against a closed port
    pipeline.settings = Settings.from_env(
        env_for(
            pipeline.home,
            MLOPS_STORAGE_URI=storage_uri.format(bucket=s3_bucket),
            MLOPS_S3_ENDPOINT_URL=endpoint or s3_endpoint,
        )
    )
    result = pipeline.materialize("iris_dataset", raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0]
    error = failure.step_failure_data.error.cause.message
    assert "STORAGE_UNAVAILABLE" in error and message in error, error
    assert keys_under(s3_endpoint, s3_bucket, "storage/") == []
    assert not (pipeline.home / "storage").exists()


def test_a_withdrawal_deletes_its_objects_from_the_bucket(s3_endpoint, s3_bucket, tmp_path):
    """Withdrawing a contribution stored on S3 deletes its clean and quarantined rows, its kept
    bytes, the compacted copy of the accepted rows and its landing file with its sidecar; the
    other contributions' objects stay, and withdrawing again changes nothing."""
    from mlops_assets.core.accounts.portal import withdraw_contribution
    from mlops_assets.core.catalog.catalog import ContributionCatalog
    from mlops_assets.core.common.row_matching import RowMatching
    from mlops_assets.core.data.reference_data import load_reference_data
    from mlops_assets.core.intake.report import ContributionReport
    from mlops_assets.core.storage.places import open_landing, open_store
    from mlops_assets.task import IRIS

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    kept = ["storage/contributions/bob-1/clean.parquet", "landing/bob/b.csv"]
    gone = [
        "storage/contributions/alice-1/clean.parquet",
        "storage/contributions/alice-1/rejected.parquet",
        "storage/originals/0123456789abcdef/a.csv",
        "storage/catalog/accepted_rows.parquet",
        "landing/alice/a.csv",
        "landing/alice/a.csv.meta.json",
    ]
    for key in kept + gone:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    catalog = ContributionCatalog(f"sqlite:///{tmp_path}/catalog.sqlite", IRIS)
    report = ContributionReport("alice-1", "alice", "a.csv", "0" * 64, landing_path="alice/a.csv")
    report.snapshot, report.accepted = "0123456789abcdef/a.csv", True
    matching = RowMatching.for_task(IRIS, load_reference_data(IRIS_CSV, IRIS))
    catalog.record(report, None, matching)
    store = open_store(f"s3://{s3_bucket}/storage", s3_endpoint)
    landing = open_landing(f"s3://{s3_bucket}/landing", s3_endpoint)

    entry = withdraw_contribution(catalog, store, landing, "alice-1")
    assert entry.withdrawn_at is not None
    assert keys_under(s3_endpoint, s3_bucket, "") == sorted(kept)
    again = withdraw_contribution(catalog, store, landing, "alice-1")
    assert again.withdrawn_at == entry.withdrawn_at
