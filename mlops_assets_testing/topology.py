"""The production topology as real processes on 127.0.0.1, without Docker: PostgreSQL for
Dagster and MLflow, a local S3 server standing in for MinIO, ``mlflow server``, the Dagster
user-code gRPC server, webserver and daemon (with the same dagster.yaml as docker/, minus the
Docker run launcher), and the prediction API; all reading the variables of docker/.env.example.

Used by ``test_topology.py`` and ``benchmarks/topology_latency.py``.
"""

import contextlib
import json
import os
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops_assets_testing.processes import BIN, REPO, child_env, free_port, wait_for

MODEL = "iris-classifier"


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


@contextlib.contextmanager
def catalog_database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of a fresh contribution catalog database: an SQLite file in ``folder``
    (``kind`` "sqlite", as embedded) or a new PostgreSQL database on 127.0.0.1 ("postgresql",
    as in production), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder}/catalog.sqlite"
        return
    name = f"catalog_{uuid.uuid4().hex[:12]}"
    with postgres_databases(name):
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
        from mlops_assets.core.catalog import catalog

        catalog._engine.cache_clear()  # its pool goes with the database


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


def write_stump(path: Path) -> Path:
    """A deliberately weak baseline (a depth-1 tree) as a joblib file: pinned as the baseline,
    it makes every real candidate a new champion, so the API's move to it can be observed."""
    import joblib
    from sklearn.tree import DecisionTreeClassifier

    from mlops_assets.core.data.reference_data import sklearn_iris
    from mlops_assets.task import IRIS

    frame = sklearn_iris(IRIS)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(
        DecisionTreeClassifier(max_depth=1).fit(frame[IRIS.feature_names], frame[IRIS.label]),
        path,
    )
    return path


def topology_env(
    *, dagster_home: Path, dagster_db: str, tracking_uri: str, s3_endpoint: str, bucket: str
) -> dict[str, str]:
    """The names of docker/.env.example, with values for 127.0.0.1."""
    return {
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": "5432",
        "DAGSTER_POSTGRES_USER": "postgres",
        "DAGSTER_POSTGRES_PASSWORD": "trust-auth-ignores-it",
        "DAGSTER_POSTGRES_DB": dagster_db,
        "MLOPS_CATALOG_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{dagster_db}",
        "DAGSTER_MAX_CONCURRENT_RUNS": "4",  # as docker/.env.example
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLOPS_LANDING_URI": f"s3://{bucket}/landing",
        "MLOPS_STORAGE_URI": f"s3://{bucket}/storage",
        "MLOPS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLOPS_HOME": str(dagster_home.parent / "var"),
        "MLOPS_MODEL_NAME": MODEL,
    }


@dataclass
class Topology:
    processes: Processes
    env: dict[str, str]
    tracking_uri: str
    api_url: str
    webserver_url: str
    dagster_db: str
    bucket: str
    s3_endpoint: str

    def champion(self) -> str | None:
        from mlops_assets.core.registry.client import get_version_by_alias, mlflow_client

        self.processes.check()
        version = get_version_by_alias(mlflow_client(self.tracking_uri), MODEL, "champion")
        return str(version.version) if version else None

    def served_version(self) -> str | None:
        self.processes.check()
        if not answers(f"{self.api_url}/health"):
            return None
        return get_json(f"{self.api_url}/health")["version"]

    def put(self, key: str, body: bytes) -> None:
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint)
        s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def keys(self, prefix: str) -> list[str]:
        import boto3

        pages = (
            boto3.client("s3", endpoint_url=self.s3_endpoint)
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def query(self, sql: str) -> list[tuple]:
        """Rows from the Dagster database in PostgreSQL."""
        import psycopg2

        with (
            contextlib.closing(
                psycopg2.connect(host="127.0.0.1", dbname=self.dagster_db, user="postgres")
            ) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)
            return cursor.fetchall()


@contextlib.contextmanager
def production_topology(
    workdir: Path, s3_endpoint: str, bucket: str, **settings: str
) -> Iterator[Topology]:
    """Bring the topology up under ``workdir``, wait for MLflow and the webserver to answer,
    and stop every process at the end, also when the body fails."""
    suffix = uuid.uuid4().hex[:8]
    dagster_db, mlflow_db = f"dagster_{suffix}", f"mlflow_{suffix}"
    ports = {name: free_port() for name in ("mlflow", "grpc", "webserver", "api")}
    dagster_home = workdir / "dagster_home"
    dagster_home.mkdir()
    # docker/dagster.yaml without the Docker run launcher (there is no Docker engine here):
    # the same PostgreSQL storage and queued coordinator, read from the same variables.
    instance = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    del instance["run_launcher"]
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    workspace = yaml.safe_load((REPO / "docker" / "workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"] |= {"host": "127.0.0.1", "port": ports["grpc"]}
    workspace_file = workdir / "workspace.yaml"
    workspace_file.write_text(yaml.safe_dump(workspace))

    tracking_uri = f"http://127.0.0.1:{ports['mlflow']}"
    env = topology_env(
        dagster_home=dagster_home,
        dagster_db=dagster_db,
        tracking_uri=tracking_uri,
        s3_endpoint=s3_endpoint,
        bucket=bucket,
    )
    env |= settings
    logs = workdir / "logs"
    logs.mkdir()
    processes = Processes(logs, env)
    topology = Topology(
        processes=processes,
        env=env,
        tracking_uri=tracking_uri,
        api_url=f"http://127.0.0.1:{ports['api']}",
        webserver_url=f"http://127.0.0.1:{ports['webserver']}",
        dagster_db=dagster_db,
        bucket=bucket,
        s3_endpoint=s3_endpoint,
    )
    with postgres_databases(dagster_db, mlflow_db):
        try:
            processes.start(
                "mlflow",
                *(str(BIN / "mlflow"), "server", "--host", "127.0.0.1"),
                *("--port", str(ports["mlflow"]), "--workers", "1"),
                "--backend-store-uri",
                f"postgresql+psycopg2://postgres:unused@127.0.0.1:5432/{mlflow_db}",
                *("--artifacts-destination", f"s3://{bucket}/mlflow"),
                # Clients send artifacts through the server; only it talks to the bucket.
                MLFLOW_S3_ENDPOINT_URL=s3_endpoint,
                MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
            )
            processes.start(
                "user-code",
                *(str(BIN / "dagster"), "api", "grpc", "-m", "mlops_assets.definitions"),
                *("-h", "127.0.0.1", "-p", str(ports["grpc"])),
            )
            processes.start(
                "webserver",
                *(str(BIN / "dagster-webserver"), "-h", "127.0.0.1"),
                *("-p", str(ports["webserver"]), "-w", str(workspace_file)),
            )
            processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", str(workspace_file))
            processes.start("api", str(BIN / "mlops"), "serve", "--port", str(ports["api"]))

            def up() -> bool:
                processes.check()
                return answers(f"{tracking_uri}/health") and answers(
                    f"{topology.webserver_url}/server_info"
                )

            wait_for(up, timeout=180, what="mlflow server and dagster-webserver", poll=1)
            yield topology
        finally:
            processes.stop()
