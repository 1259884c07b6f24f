"""The production topology as real processes on 127.0.0.1, without Docker: PostgreSQL for
Dagster and MLflow, a local S3 server standing in for MinIO, ``mlflow server``, the Dagster
user-code gRPC server, webserver and daemon (with the same dagster.yaml as docker/, minus the
Docker run launcher), and the prediction API; all reading the variables of docker/.env.example.
"""

import contextlib
import json
import os
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlops_assets_tests.conftest import REPO, child_env, free_port, wait_for

BIN = REPO / ".venv" / "bin"


@contextlib.contextmanager
def postgres_databases(*names: str) -> Iterator[None]:
    """Fresh databases on the machine's PostgreSQL, dropped afterwards."""
    import psycopg2

    admin = psycopg2.connect(host="127.0.0.1", port=5432, dbname="test", user="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            for name in names:
                cursor.execute(f'CREATE DATABASE "{name}"')
        yield
    finally:
        with admin.cursor() as cursor:
            for name in names:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class Processes:
    """Long-running subprocesses, each in its own process group, all stopped on exit."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs, self.env, self.running = logs, env, {}

    def start(self, name: str, *command: str, **extra_env: str) -> None:
        with (self.logs / f"{name}.log").open("w") as log:
            self.running[name] = subprocess.Popen(
                command,
                env=child_env({**self.env, **extra_env}),
                cwd=self.logs,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check(self) -> None:
        for name, process in self.running.items():
            assert process.poll() is None, f"{name} exited:\n{self.tail(name)}"

    def tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()[-3000:]

    def stop(self) -> None:
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def native_instance_yaml() -> dict:
    """docker/dagster.yaml without the Docker run launcher (there is no Docker engine here):
    the same PostgreSQL storage and queued coordinator, read from the same variables."""
    config = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    del config["run_launcher"]
    return config


@pytest.fixture
def stump(tmp_path: Path) -> Path:
    """A deliberately weak baseline (a depth-1 tree), so every real candidate is promoted
    and the API's move to the new champion can be observed."""
    import joblib
    from sklearn.tree import DecisionTreeClassifier

    from mlops_assets.core.reference_data import sklearn_iris
    from mlops_assets.task import IRIS

    frame = sklearn_iris(IRIS)
    path = tmp_path / "trusted" / "stump.joblib"
    path.parent.mkdir()
    joblib.dump(
        DecisionTreeClassifier(max_depth=1).fit(frame[IRIS.feature_names], frame[IRIS.label]),
        path,
    )
    return path


def test_production_topology_end_to_end(tmp_path, s3_endpoint, s3_bucket, stump):
    import boto3
    import psycopg2

    from mlops_assets.core.registry import get_version_by_alias, mlflow_client

    suffix = uuid.uuid4().hex[:8]
    dagster_db, mlflow_db = f"dagster_{suffix}", f"mlflow_{suffix}"
    ports = {name: free_port() for name in ("mlflow", "grpc", "webserver", "api")}
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(native_instance_yaml()))
    workspace = yaml.safe_load((REPO / "docker" / "workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"] |= {"host": "127.0.0.1", "port": ports["grpc"]}
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))

    tracking_uri = f"http://127.0.0.1:{ports['mlflow']}"
    # The names of docker/.env.example; values for 127.0.0.1.
    env = {
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": "5432",
        "DAGSTER_POSTGRES_USER": "postgres",
        "DAGSTER_POSTGRES_PASSWORD": "trust-auth-ignores-it",
        "DAGSTER_POSTGRES_DB": dagster_db,
        "DAGSTER_MAX_CONCURRENT_RUNS": "2",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLOPS_LANDING_URI": f"s3://{s3_bucket}/landing",
        "MLOPS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLOPS_HOME": str(tmp_path / "var"),
        "MLOPS_STORAGE_URI": str(tmp_path / "var" / "storage"),
        "MLOPS_MODEL_NAME": "iris-classifier",
        "MLOPS_SENSOR_INTERVAL": "2",
        "MLOPS_API_POLL_SECONDS": "1",
        "MLOPS_BASELINE_SOURCE": str(stump),
        "MLOPS_TRUSTED_MODEL_DIR": str(stump.parent),
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = Processes(logs, env)
    with postgres_databases(dagster_db, mlflow_db):
        try:
            processes.start(
                "mlflow",
                *(str(BIN / "mlflow"), "server", "--host", "127.0.0.1"),
                *("--port", str(ports["mlflow"]), "--workers", "1"),
                "--backend-store-uri",
                f"postgresql+psycopg2://postgres:unused@127.0.0.1:5432/{mlflow_db}",
                *("--artifacts-destination", f"s3://{s3_bucket}/mlflow"),
                # Clients send artifacts through the server; only it talks to the bucket.
                MLFLOW_S3_ENDPOINT_URL=s3_endpoint,
                MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
            )
            processes.start(
                "user-code",
                *(str(BIN / "dagster"), "api", "grpc", "-m", "mlops_assets.definitions"),
                *("-h", "127.0.0.1", "-p", str(ports["grpc"])),
            )
            workspace_file = str(tmp_path / "workspace.yaml")
            processes.start(
                "webserver",
                *(str(BIN / "dagster-webserver"), "-h", "127.0.0.1"),
                *("-p", str(ports["webserver"]), "-w", workspace_file),
            )
            processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", workspace_file)
            processes.start("api", str(BIN / "mlops"), "serve", "--port", str(ports["api"]))

            def up() -> bool:
                processes.check()
                return answers(f"{tracking_uri}/health") and answers(
                    f"http://127.0.0.1:{ports['webserver']}/server_info"
                )

            wait_for(up, timeout=180, what="mlflow server and dagster-webserver", poll=1)
            client = mlflow_client(tracking_uri)

            def champion() -> str | None:
                processes.check()
                version = get_version_by_alias(client, "iris-classifier", "champion")
                return str(version.version) if version else None

            # Cold start by automation: the stump imported as v1, the first candidate beats it.
            wait_for(lambda: champion() == "2", timeout=300, what="v2 to be champion", poll=2)
            api = f"http://127.0.0.1:{ports['api']}"
            wait_for(
                lambda: answers(f"{api}/health") and get_json(f"{api}/health")["version"] == "2",
                timeout=60,
                what="the API to serve v2",
                poll=1,
            )

            s3 = boto3.client("s3", endpoint_url=s3_endpoint)
            s3.put_object(
                Bucket=s3_bucket,
                Key="landing/alice/sample.csv",
                Body=(REPO / "data" / "sample_contribution.csv").read_bytes(),
            )
            wait_for(lambda: champion() == "3", timeout=300, what="v3 to be champion", poll=2)
            wait_for(
                lambda: get_json(f"{api}/health")["version"] == "3",
                timeout=60,
                what="the API to serve v3",
                poll=1,
            )
            v3 = client.get_model_version("iris-classifier", "3")
            assert json.loads(v3.tags["contributions"])[0].startswith("alice--sample.csv")

            # Runs are recorded in PostgreSQL; once they settle, every one succeeded.
            def run_statuses() -> dict[str, int]:
                with (
                    contextlib.closing(
                        psycopg2.connect(host="127.0.0.1", dbname=dagster_db, user="postgres")
                    ) as connection,
                    connection.cursor() as cursor,
                ):
                    cursor.execute("SELECT status, count(*) FROM runs GROUP BY status")
                    return dict(cursor.fetchall())

            statuses = wait_for(
                lambda: (s := run_statuses()) and set(s) <= {"SUCCESS", "FAILURE"} and s,
                timeout=120,
                what="the runs to finish",
                poll=1,
            )
            assert statuses.get("SUCCESS", 0) >= 3 and set(statuses) == {"SUCCESS"}, statuses

            # MLflow: runs FINISHED in PostgreSQL, the models' files in the bucket.
            experiment = client.get_experiment_by_name("iris-continuous-training")
            runs = client.search_runs([experiment.experiment_id])
            assert runs and {r.info.status for r in runs} == {"FINISHED"}
            keys = [
                o["Key"]
                for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket=s3_bucket, Prefix="mlflow/"
                )
                for o in page.get("Contents", [])
            ]
            assert any(k.endswith(".skops") for k in keys), keys[:20]
            assert any(k.endswith("attestation/attestation.json") for k in keys)
        finally:
            processes.stop()
