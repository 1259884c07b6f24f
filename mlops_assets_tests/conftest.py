"""Shared fixtures: a real temporary Dagster instance, a real MLflow SQLite store, real files."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.definitions import build_resources, defs
from mlops_assets.settings import Settings, apply_process_defaults

REPO = Path(__file__).resolve().parent.parent
IRIS_CSV = REPO / "data" / "iris.csv"
DEFINITION_ASSETS = list(defs.assets or [])
DEFINITION_CHECKS = list(defs.asset_checks or [])

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


def env_for(home: Path, **overrides: str) -> dict[str, str]:
    """Environment variables of an embedded deployment rooted at ``home``."""
    return {"MLOPS_HOME": str(home), **overrides}


@dataclass
class Pipeline:
    """The whole code location wired to temporary state, with a persistent Dagster instance."""

    home: Path
    settings: Settings
    instance: dg.DagsterInstance

    @property
    def landing(self) -> Path:
        return Path(self.settings.landing_uri)

    def resources(self) -> dict[str, object]:
        return build_resources(self.settings)

    def materialize(
        self,
        selection: str = "iris_dataset*",
        *,
        run_config: dict | None = None,
        partition_key: str | None = None,
        raise_on_error: bool = True,
        tags: dict[str, str] | None = None,
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [*DEFINITION_ASSETS, *DEFINITION_CHECKS],
            selection=selection,
            resources=self.resources(),
            instance=self.instance,
            run_config=run_config,
            partition_key=partition_key,
            raise_on_error=raise_on_error,
            tags=tags,
        )

    def client(self):
        from mlops_assets.core.registry.client import mlflow_client

        return mlflow_client(self.settings.tracking_uri)

    def drop(self, contributor: str, name: str, text: str, *, age: float = 60.0) -> Path:
        """Write a file into the landing zone, last modified ``age`` seconds ago (by default
        long enough for the sensor to take it as complete; 0 for a file still being written)."""
        path = self.landing / contributor / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
        return path


SENSOR_RESOURCES = ("landing", "webhooks", "registry")


def tick_of(
    pipeline: Pipeline, cursor: str | None = None, sensor_name: str = "contribution_sensor"
):
    """One evaluation of a sensor over the pipeline's instance and resources.

    Invoked directly: ``evaluate_tick`` validates partition keys before applying the tick's
    own request to add them (the daemon applies it first).
    """
    with dg.build_sensor_context(
        instance=pipeline.instance,
        # What the sensors use; mlflow_tracking cannot start outside a run.
        resources={k: v for k, v in pipeline.resources().items() if k in SENSOR_RESOURCES},
        cursor=cursor,
        definitions=defs,
    ) as context:
        return defs.resolve_sensor_def(sensor_name)(context)


@pytest.fixture
def pipeline(tmp_path: Path, empty_mlflow_db: Path) -> Iterator[Pipeline]:
    home = tmp_path / "var"
    (home / "mlflow").mkdir(parents=True)
    shutil.copy(empty_mlflow_db, home / "mlflow" / "mlflow.db")
    settings = Settings.from_env(env_for(home))
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield Pipeline(home=home, settings=settings, instance=instance)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment plus ``env``, for a subprocess. mlflow.set_tracking_uri()
    exports MLFLOW_TRACKING_URI to os.environ: an earlier test's store must not leak into the
    child through it."""
    inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**inherited, **env}


@contextlib.contextmanager
def dagster_dev(home: Path, workdir: Path, **env: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """``dagster dev`` (webserver, daemon, sensors) on a fresh embedded deployment at ``home``,
    as a real subprocess; yields it and its webserver port, and stops it on exit."""
    dagster_home = workdir / "dagster"
    dagster_home.mkdir()
    shutil.copy(REPO / "docker" / "dagster.embedded.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    with (workdir / "dagster-dev.log").open("w") as log:
        process = subprocess.Popen(
            [
                *(str(REPO / ".venv/bin/dagster"), "dev", "-w", str(REPO / "workspace.yaml")),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            env=child_env(env_for(home, DAGSTER_HOME=str(dagster_home), **env)),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process, port
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def wait_for(condition, *, timeout: float, what: str, process=None, poll: float = 2.0):
    """``condition()``'s first truthy value, checked every ``poll`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None:
            assert process.poll() is None, f"dagster dev exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(poll)


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240):
    """Run a console script of this venv as a real subprocess."""
    executable = str(Path(sys.executable).parent / args[0])
    return subprocess.run(
        [executable, *args[1:]],
        env=child_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def in_process_mlops(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """The ``mlops`` entry point called in this process for a deployment at ``home``: the same
    code as the console script without ~10 s of imports per call. Returns (code, out, err)."""
    from mlops_assets.cli import main

    monkeypatch.setenv("MLOPS_HOME", str(home))
    # mlflow.set_tracking_uri() in an earlier test exports this; the CLI must not see it.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def mlops(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return mlops


VALID_CONTRIBUTION = (
    "Sepal Length (cm),sepal.width,PetalLengthCm,petal_width,variety,email\n"
    "5.05,3.45,1.55,0.25,Iris-setosa,a@example.com\n"
    "6.1,2.9,4.6,1.3,VERSICOLOR,b@example.com\n"
    "6.9,3.2,5.8,2.2,2,c@example.com\n"
    "5.5,2.5,4.0,1.2,versicolor,d@example.com\n"
)


def shifted_sample(shift: float) -> str:
    """data/sample_contribution.csv with every measurement moved by ``shift`` cm: a valid
    contribution whose rows are new for every distinct shift."""
    header, *rows = (REPO / "data" / "sample_contribution.csv").read_text().splitlines()
    moved = []
    for row in rows:
        *measurements, label = row.split(",")
        moved.append(",".join([f"{float(v) + shift:.3f}" for v in measurements] + [label]))
    return "\n".join([header, *moved]) + "\n"
