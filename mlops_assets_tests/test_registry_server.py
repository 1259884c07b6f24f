"""Registry reads against real servers: a real ``mlflow server`` stopped and restarted, and
small HTTP servers that answer 503 or 401."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark
from mlops_assets.core.modeling.baseline import BaselinePolicy, ColdStart
from mlops_assets.core.modeling.training import TrainingSpec
from mlops_assets.core.promotion.baseline import resolve_baseline
from mlops_assets.core.promotion.champion import promote_to_champion
from mlops_assets.core.registry.client import (
    RetryPolicy,
    mlflow_client,
    register_model_version,
    registry_errors,
    with_retries,
)
from mlops_assets.core.registry.model_files import ModelSource
from mlops_assets.core.registry.models import log_sklearn_model
from mlops_assets.errors import (
    ModelNotFoundError,
    RegistryAccessDeniedError,
    RegistryUnavailableError,
)
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV
from mlops_assets_testing.servers import MlflowServer

SPLIT = split_benchmark(load_reference_data(IRIS_CSV, IRIS).frame, IRIS, fraction=0.3, seed=42)


@pytest.fixture
def server(tmp_path):
    previous = mlflow.get_tracking_uri()
    server = MlflowServer(tmp_path)
    server.start()
    mlflow.set_tracking_uri(server.uri)
    try:
        yield server
    finally:
        server.stop()
        mlflow.set_tracking_uri(previous)


def resolve(uri: str, source: str, retries: list, policy: RetryPolicy):
    with registry_errors(uri):
        return resolve_baseline(
            mlflow_client(uri),
            tracking_uri=uri,
            policy=BaselinePolicy(source=ModelSource.parse(source), retry=policy),
            model_name="m",
            benchmark=SPLIT.benchmark,
            task=IRIS,
            cold_start=ColdStart(SPLIT.train, TrainingSpec("logistic_regression", {}, 42)),
            tags={},
            on_retry=lambda *args: retries.append(args),
        )


@pytest.mark.e2e
def test_baseline_reads_ride_out_a_server_restart(server):
    client = mlflow_client(server.uri)
    mlflow.set_experiment("e")
    model = LogisticRegression(max_iter=500).fit(
        SPLIT.train[IRIS.feature_names], SPLIT.train[IRIS.label]
    )
    with mlflow.start_run():
        info = log_sklearn_model(model, name="model")
    promote_to_champion(
        client, "m", register_model_version(client, info, model_name="m", tags={}).version
    )

    server.stop()
    restarter = threading.Timer(3.0, server.start)
    restarter.start()
    retries: list = []
    started = time.monotonic()
    baseline = resolve(
        server.uri, "models:/m@champion", retries, RetryPolicy(attempts=8, max_seconds=90)
    )
    restarter.join()
    assert baseline.version == "1" and not baseline.cold_start
    assert retries, "the first read failed while the server was down and was retried"
    assert [wait for _, wait, _ in retries][:3] == [1, 2, 4][: len(retries)]
    assert time.monotonic() - started < 90

    # "Not found" is an answer, not an outage: one try, at once.
    retries.clear()
    with pytest.raises(ModelNotFoundError):
        resolve(server.uri, "models:/m/9", retries, RetryPolicy(attempts=8, max_seconds=90))
    assert retries == []

    # Down for good: bounded by the policy, then a clear error.
    server.stop()
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError) as error:
        resolve(server.uri, "models:/m@champion", retries, RetryPolicy(attempts=2, max_seconds=5))
    assert len(retries) == 1 and time.monotonic() - started < 30
    assert error.value.code == "REGISTRY_UNAVAILABLE"


class Answering:
    """An HTTP server answering every request with one status and counting requests."""

    def __init__(self, status: int, body: dict) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_mlflow_retries(monkeypatch):
    """Count only our retries: MLflow's own HTTP retries would multiply the requests."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def test_5xx_is_retried_and_401_is_not(no_mlflow_retries):
    unavailable = Answering(503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"})
    denied = Answering(401, {"error_code": "UNAUTHENTICATED", "message": "who are you"})
    try:
        retries: list = []
        policy = RetryPolicy(attempts=3, max_seconds=30, max_wait=0.1)
        with pytest.raises(RegistryUnavailableError), registry_errors(unavailable.uri):
            with_retries(
                lambda: mlflow_client(unavailable.uri).get_registered_model("m"),
                policy,
                on_retry=lambda *args: retries.append(args),
            )
        assert unavailable.requests == 3 and len(retries) == 2

        retries.clear()
        with pytest.raises(RegistryAccessDeniedError) as error, registry_errors(denied.uri):
            with_retries(
                lambda: mlflow_client(denied.uri).get_registered_model("m"),
                policy,
                on_retry=lambda *args: retries.append(args),
            )
        assert denied.requests == 1 and retries == []
        assert "MLFLOW_TRACKING_TOKEN" in error.value.hint
    finally:
        unavailable.close()
        denied.close()


@pytest.mark.e2e
def test_a_run_starting_while_the_server_restarts_waits_for_it(server, pipeline):
    """The MLflow resource retries its start (experiment and run) while the server is down
    for a few seconds, instead of failing the run."""
    from mlops_assets.settings import Settings
    from mlops_assets_testing.processes import env_for

    pipeline.settings = Settings.from_env(
        env_for(pipeline.home, MLFLOW_TRACKING_URI=server.uri, MLOPS_MLFLOW_ARTIFACTS="")
    )
    pipeline.materialize("iris_dataset")
    server.stop()
    restarter = threading.Timer(3.0, server.start)
    restarter.start()
    result = pipeline.materialize("baseline_model")
    restarter.join()
    assert result.success
    client = mlflow_client(server.uri)
    assert client.get_model_version_by_alias("iris-classifier", "champion").version == "1"
