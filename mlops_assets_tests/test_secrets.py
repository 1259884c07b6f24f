"""No secret is ever displayed or logged: a whole deployment run with secrets set, then every
place a person or a log could see them searched for the secret values."""

import json
import subprocess
import time

import pytest

from mlops_assets.core.registry.client import mlflow_client
from mlops_assets.core.registry.webhooks import new_secret
from mlops_assets_testing.pipeline import SAME_MODEL_NEW_CONFIG
from mlops_assets_testing.processes import REPO, child_env, env_for, free_port, graphql, run_cli
from mlops_assets_testing.servers import ApiServer, MlflowServer

# Real processes: left out of `make test-fast`.
pytestmark = pytest.mark.e2e

PASSWORD = "pa55word-4f1c"
API_KEY = "api-key-7d2e"
AWS_SECRET = "aws-secret-9b3a"
WEBHOOK_SECRET = new_secret()

RESOURCES = """
{ allTopLevelResourceDetailsOrError(repositorySelector: {
    repositoryLocationName: "mlops_assets", repositoryName: "__repository__"}) {
  ... on ResourceDetailsList { results { name configuredValues { key value type } } } } }
"""
MATERIALIZE = ["dagster", "asset", "materialize", "-m", "mlops_assets.definitions"]
NEW_CONFIG = json.dumps(SAME_MODEL_NEW_CONFIG)
RUNS = "{ runsOrError { ... on Runs { results { runId runConfigYaml tags { key value } } } } }"
EVENTS = """
{ logsForRun(runId: "RUN_ID") { ... on EventConnection { events {
  __typename ... on MessageEvent { message }
  ... on MaterializationEvent { metadataEntries { label
    ... on TextMetadataEntry { text } ... on UrlMetadataEntry { url }
    ... on PathMetadataEntry { path } ... on JsonMetadataEntry { jsonString }
    ... on MarkdownMetadataEntry { mdStr } } }
  ... on ExecutionStepFailureEvent { error { message cause { message } } } } } } }
"""


@pytest.mark.timeout(600)
def test_no_secret_reaches_the_ui_logs_metadata_mlflow_or_the_api(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    home, dagster_home = tmp_path / "var", tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((REPO / "docker/dagster.embedded.yaml").read_text())
    env = env_for(
        home,
        DAGSTER_HOME=str(dagster_home),
        MLFLOW_TRACKING_URI=f"http://mlops:{PASSWORD}@127.0.0.1:{server.port}",
        MLOPS_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/hooks",  # down: kept in the outbox
        MLOPS_WEBHOOK_SECRET=WEBHOOK_SECRET,
        MLOPS_API_KEY=API_KEY,
        MLOPS_API_URL=f"http://127.0.0.1:{free_port()}",  # down: told in vain, with the key
        AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
        AWS_SECRET_ACCESS_KEY=AWS_SECRET,
    )
    secrets = [PASSWORD, API_KEY, AWS_SECRET, WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_")]
    seen: dict[str, str] = {}
    webserver = None
    try:
        # A candidate too (a new config), so registration's paths are searched as well.
        materialized = run_cli(
            [
                *MATERIALIZE,
                "--select",
                "key:iris_dataset+ and not key:contributed_data",
                "--config-json",
                NEW_CONFIG,
            ],
            env,
            tmp_path,
            timeout=400,
        )
        assert materialized.returncode == 0, materialized.stderr[-3000:]
        seen["materialize output"] = materialized.stdout + materialized.stderr

        port = free_port()
        log = (tmp_path / "webserver.log").open("w")
        webserver = subprocess.Popen(
            [
                str(REPO / ".venv/bin/dagster-webserver"),
                "-w",
                str(REPO / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env=child_env(env),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                resources = graphql(port, RESOURCES)
                if resources and resources["allTopLevelResourceDetailsOrError"].get("results"):
                    break
            except OSError:
                pass
            assert webserver.poll() is None and time.monotonic() < deadline, "no webserver"
            time.sleep(1)
        details = resources["allTopLevelResourceDetailsOrError"]["results"]
        webhook = next(r for r in details if r["name"] == "webhooks")["configuredValues"]
        assert {"key": "secret", "value": "MLOPS_WEBHOOK_SECRET", "type": "ENV_VAR"} in webhook
        serving = next(r for r in details if r["name"] == "serving")["configuredValues"]
        assert {"key": "api_key", "value": "MLOPS_API_KEY", "type": "ENV_VAR"} in serving
        seen["resources page"] = json.dumps(details)
        runs = graphql(port, RUNS)["runsOrError"]["results"]
        seen["runs and their config"] = json.dumps(runs)
        for run in runs:
            events = graphql(port, EVENTS.replace("RUN_ID", run["runId"]))
            assert events["logsForRun"]["events"], events
            seen[f"event log of {run['runId']}"] = json.dumps(events)
        for path in (dagster_home / "storage").rglob("*"):
            if path.is_file() and path.suffix in (".out", ".err", ".log", ".complete"):
                seen[f"compute log {path.name}"] = path.read_text(errors="replace")

        client = mlflow_client(server.uri)
        for experiment in client.search_experiments():
            for mlflow_run in client.search_runs([experiment.experiment_id]):
                seen[f"MLflow run {mlflow_run.info.run_id}"] = json.dumps(
                    {"params": mlflow_run.data.params, "tags": mlflow_run.data.tags}
                )
        for version in client.search_model_versions("name = 'iris-classifier'"):
            seen[f"version {version.version}"] = json.dumps(dict(version.tags))
        assert len([k for k in seen if k.startswith("version")]) == 2

        with ApiServer(
            home, tmp_path / "api.log", **{k: v for k, v in env.items() if k != "MLOPS_HOME"}
        ) as api:
            seen["API /health"] = json.dumps(api.request("GET", "/health", key=None))
            seen["API /model"] = json.dumps(api.request("GET", "/model", key=API_KEY))
            seen["API 401"] = json.dumps(api.request("GET", "/model", key="wrong"))
        seen["API log"] = (tmp_path / "api.log").read_text()
        seen["webserver log"] = (tmp_path / "webserver.log").read_text()
    finally:
        if webserver is not None:
            webserver.terminate()
            webserver.wait(timeout=60)
        server.stop()

    leaks = [
        (where, secret) for where, text in seen.items() for secret in secrets if secret in text
    ]
    assert leaks == [], leaks
    assert "127.0.0.1" in seen["materialize output"]  # the places searched are the right ones
