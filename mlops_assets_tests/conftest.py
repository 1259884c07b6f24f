"""Shared fixtures: a real temporary Dagster instance, a real MLflow SQLite store, real files."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.process import apply_process_defaults
from mlops_assets.settings import Settings
from mlops_assets_testing.pipeline import Pipeline
from mlops_assets_testing.processes import env_for, free_port

apply_process_defaults()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The production-topology test first: it is the longest by far, and started last it
    would set the suite's wall time on its own."""
    items.sort(key=lambda item: "test_topology.py" not in item.nodeid)


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema created once; tests copy it (migrations take s)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_store(tmp_path: Path, empty_mlflow_db: Path):
    """A real MLflow SQLite store set as the process's tracking URI, with experiment ``e``."""
    import mlflow

    from mlops_assets.core.registry.client import ensure_experiment, mlflow_client

    db = tmp_path / "mlflow.db"
    shutil.copy(empty_mlflow_db, db)
    uri = f"sqlite:///{db}"
    client = mlflow_client(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=ensure_experiment(client, "e", str(tmp_path / "art")))
    yield client
    mlflow.end_run()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto) on 127.0.0.1, standing in for MinIO."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request) -> str:
    """A fresh bucket on the local S3 server, with credentials in the environment."""
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"landing-{abs(hash(request.node.nodeid)) % 10**8}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def pipeline(tmp_path: Path, empty_mlflow_db: Path) -> Iterator[Pipeline]:
    home = tmp_path / "var"
    (home / "mlflow").mkdir(parents=True)
    shutil.copy(empty_mlflow_db, home / "mlflow" / "mlflow.db")
    settings = Settings.from_env(env_for(home))
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield Pipeline(home=home, settings=settings, instance=instance)
