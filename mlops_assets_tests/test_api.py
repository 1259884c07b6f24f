"""The prediction API as a real server: ``mlops serve`` in a subprocess, real HTTP requests."""

import contextlib
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.core.promotion.champion import set_champion_by_hand
from mlops_assets.core.registry.client import ensure_experiment, register_model_version
from mlops_assets.core.registry.models import log_sklearn_model
from mlops_assets.core.registry.tags import CHAMPION
from mlops_assets.settings import Settings
from mlops_assets.task import IRIS
from mlops_assets_testing.browser import chromium, loaded_from, wait_until
from mlops_assets_testing.pipeline import SAME_MODEL_NEW_CONFIG, Pipeline
from mlops_assets_testing.processes import REPO, child_env, env_for, free_port, wait_for
from mlops_assets_testing.servers import ApiServer

# Real processes: left out of `make test-fast`.
pytestmark = pytest.mark.e2e

KEY = "s3cret-key"
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@contextlib.contextmanager
def pipeline_at(root: Path, empty_mlflow_db: Path) -> Iterator[Pipeline]:
    home = root / "var"
    (home / "mlflow").mkdir(parents=True)
    shutil.copy(empty_mlflow_db, home / "mlflow" / "mlflow.db")
    (root / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster")) as instance:
        yield Pipeline(home=home, settings=Settings.from_env(env_for(home)), instance=instance)


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory, empty_mlflow_db) -> Iterator[Path]:
    """A deployment whose registry has a champion (v1)."""
    root = tmp_path_factory.mktemp("served")
    with pipeline_at(root, empty_mlflow_db) as pipeline:
        pipeline.materialize()
        yield pipeline.home


@pytest.fixture(scope="module")
def served(registry_home) -> Iterator[ApiServer]:
    """A server with a key and small limits over a registry with a champion (v1)."""
    with ApiServer(
        registry_home,
        registry_home / "serve.log",
        key=KEY,
        MLOPS_API_MAX_BATCH="50",
        MLOPS_API_MAX_BODY_BYTES="20000",
        MLOPS_API_BODY_TIMEOUT="1",
    ) as server:
        yield server


@pytest.fixture(scope="module")
def served_openly(registry_home) -> Iterator[ApiServer]:
    """The same registry served without a key."""
    with ApiServer(registry_home, registry_home / "serve-open.log") as server:
        yield server


def test_health_model_and_predict(served):
    assert served.request("GET", "/health", key=None) == (
        200,
        {"status": "ok", "name": "iris-classifier", "version": "1"},
    )
    status, model = served.request("GET", "/model")
    assert status == 200 and model["version"] == "1" and CHAMPION in model["aliases"]
    assert model["model_uuid"].startswith("m-") and model["metrics"]["accuracy"] > 0.9
    assert model["last_error"] is None and model["loaded_at"]

    versicolor = {"sepal_length": 6.1, "sepal_width": 2.9, "petal_length": 4.6, "petal_width": 1.3}
    status, body = served.request("POST", "/predict", {"instances": [ROW, versicolor]})
    assert status == 200 and body["model"] == {"name": "iris-classifier", "version": "1"}
    first, second = body["predictions"]
    assert (first["label"], first["index"]) == ("setosa", 0)
    assert (second["label"], second["index"]) == ("versicolor", 1)
    assert set(first["probabilities"]) == set(IRIS.classes)
    assert abs(sum(first["probabilities"].values()) - 1) < 1e-9
    assert first["probabilities"]["setosa"] == max(first["probabilities"].values())

    # One instance without the list works too.
    status, body = served.request("POST", "/predict", {"instances": ROW})
    assert status == 200 and body["predictions"][0]["label"] == "setosa"
    status, schema = served.request("GET", "/openapi.json", key=None)
    assert status == 200 and "/predict" in schema["paths"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"instances": [{k: v for k, v in ROW.items() if k != "petal_width"}]},
            "instances[0].petal_width",
            "required",
        ),
        (
            {"instances": [ROW, {**ROW, "sepal_width": "wide"}]},
            "instances[1].sepal_width",
            "number",
        ),
        ({"instances": [{**ROW, "petal_length": 99}]}, "instances[0].petal_length", "less than"),
        ({"instances": [{**ROW, "petal_length": -1}]}, "instances[0].petal_length", "greater than"),
        ({"instances": [{**ROW, "colour": "blue"}]}, "instances[0].colour", "not permitted"),
        ({"instances": []}, "instances", "at least 1"),
        ([ROW], "body", "must be a JSON object"),
        # A single instance object (not in a list) is read as one instance, and only so.
        ({"instances": {**ROW, "petal_width": "wide"}}, "instances.petal_width", "number"),
        ({"instances": "all of them"}, "instances", "a list of instances, or one instance"),
    ],
)
def test_invalid_input_names_the_field(served, body, field, words):
    """One error per problem: never a second one about the other shape ``instances`` may
    take (a list, or one object)."""
    status, answer = served.request("POST", "/predict", body)
    assert status == 422, answer
    (error,) = answer["errors"]
    assert error["field"] == field and words in error["message"], answer
    assert answer["detail"] == f"{field}: {error['message']}"


def test_what_each_body_and_content_type_gets(served):
    """README: JSON with Content-Type application/json (or +json, any charset) or with no
    Content-Type at all; any other type is 415 saying what to send."""
    one = {"instances": ROW}
    for content_type in ("application/json", "application/json; charset=utf-8", None):
        status, answer = served.request("POST", "/predict", one, content_type=content_type)
        assert status == 200 and answer["predictions"][0]["label"] == "setosa", content_type
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        status, answer = served.request("POST", "/predict", one, content_type=content_type)
        assert status == 415, answer
        assert answer["detail"] == f"the body is sent as {content_type!r}; it must be JSON"
        assert "Content-Type: application/json" in answer["hint"]
    status, answer = served.request("POST", "/predict", raw=b'{"instances": [', content_type=None)
    assert (status, answer) == (400, {"detail": "the body is not valid JSON"})
    status, answer = served.request("POST", "/predict", raw=b"")
    assert status == 422 and answer["detail"].startswith("body: the request has no body: send")
    # Two problems, two errors: each once.
    status, answer = served.request("POST", "/predict", {"rows": [ROW]})
    assert status == 422 and [(e["field"], e["message"]) for e in answer["errors"]] == [
        ("instances", "Field required"),
        ("rows", "Extra inputs are not permitted"),
    ]


def test_bad_json_limits_and_auth(served):
    status, answer = served.request("POST", "/predict", raw=b'{"instances": [')
    assert status == 400 and "not valid JSON" in answer["detail"]
    status, answer = served.request(
        "POST", "/predict", raw=b'{"instances": [{"sepal_length": NaN}]}'
    )
    assert status in (400, 422)

    status, answer = served.request("POST", "/predict", {"instances": [ROW] * 51})
    assert status == 422 and "at most 50 items" in answer["detail"]
    status, answer = served.request("POST", "/predict", raw=b" " * 20001)
    assert status == 413 and "20000 bytes" in answer["detail"]

    assert served.request("POST", "/predict", {"instances": [ROW]}, key=None)[0] == 401
    assert served.request("POST", "/predict", {"instances": [ROW]}, key="wrong")[0] == 401
    assert served.request("GET", "/model", key=None)[0] == 401
    assert served.request("GET", "/health", key=None)[0] == 200
    # Anyone may not make it read the registry; the pipeline sends the key.
    assert served.request("POST", "/refresh", key=None)[0] == 401
    assert served.request("POST", "/refresh") == (202, {"status": "checking the registry"})


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)
instance_like = st.fixed_dictionaries(
    {}, optional={name: json_values for name in IRIS.feature_names}
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "instances": st.one_of(
                    json_values, st.lists(instance_like, max_size=4), instance_like
                )
            }
        ),
    )
)
def test_no_generated_input_gets_a_5xx(served, body):
    status, _ = served.request("POST", "/predict", body)
    assert status < 500


def test_a_fresh_service_waits_for_a_champion_then_follows_it(tmp_path, empty_mlflow_db):
    """Without a key: 503 before the first champion; served within seconds once it exists,
    though the service polls only every 10 minutes, because whoever moves champion tells it
    (``MLOPS_API_URL``: the pipeline, ``mlops model``); then hot reload under load with no
    failed request, and a broken champion refused while the old one keeps serving. An API
    that cannot be told is a log line, never a failure. (Following by the poll alone:
    test_a_champion_that_fails_to_load_once_is_retried_and_health_says_degraded.)"""
    from sklearn.linear_model import LogisticRegression

    from mlops_assets.core.serving.notify import tell_apis

    with (
        pipeline_at(tmp_path, empty_mlflow_db) as pipeline,
        ApiServer(pipeline.home, tmp_path / "serve.log", MLOPS_API_POLL_SECONDS="600") as server,
    ):
        status, answer = server.request("GET", "/health", key=None)
        assert status == 503 and "no champion yet" in answer["detail"]
        assert server.request("POST", "/predict", {"instances": [ROW]}, key=None)[0] == 503

        unreachable = f"http://127.0.0.1:{free_port()}"
        pipeline.settings = Settings.from_env(
            env_for(pipeline.home, MLOPS_API_URL=f"{server.url} {unreachable}")
        )
        # v1 champion (the APIs told), v2 challenger
        result = pipeline.materialize(run_config=SAME_MODEL_NEW_CONFIG)
        told = [
            e.user_message
            for e in pipeline.instance.all_logs(result.run_id)
            if "prediction API" in e.user_message
        ]
        assert told[0] == f"told the prediction API at {server.url} (HTTP 202)"
        assert f"could not tell the prediction API at {unreachable}" in told[1]
        wait_for(
            lambda: server.request("GET", "/health", key=None)[0] == 200,
            timeout=20,
            what="the first champion, told rather than polled",
            poll=0.2,
        )
        client = pipeline.client()
        seen: list[tuple[float, int, str | None]] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    status, body = server.request(
                        "POST", "/predict", {"instances": [ROW]}, key=None
                    )
                    seen.append((time.monotonic(), status, body.get("model", {}).get("version")))
                except OSError as exc:  # a refused connection counts as a failure too
                    seen.append((time.monotonic(), 0, str(exc)))

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            time.sleep(1)
            moved = time.monotonic()
            set_champion_by_hand(
                client, "iris-classifier", "2", actor="test", reason="reload", how="manual"
            )
            tell_apis([server.url], None)  # what `mlops model promote` does after the move
            wait_for(
                lambda: seen and seen[-1][2] == "2", timeout=30, what="v2 to be served", poll=0.1
            )
            switched = next(t for t, _, v in seen if v == "2") - moved

            # A broken champion (classes the task does not have) is never swapped in.
            mlflow.set_tracking_uri(pipeline.settings.tracking_uri)
            mlflow.set_experiment(
                experiment_id=ensure_experiment(client, "broken", str(tmp_path / "art"))
            )
            x = [[5.1, 3.5, 1.4, 0.2], [6.1, 2.9, 4.6, 1.3], [6.9, 3.2, 5.8, 2.2]]
            frame = pd.DataFrame(x, columns=IRIS.feature_names)
            broken = LogisticRegression().fit(frame, ["a", "b", "c"])
            with mlflow.start_run():
                info = log_sklearn_model(broken, name="model")
            v3 = register_model_version(client, info, model_name="iris-classifier", tags={})
            client.set_registered_model_alias("iris-classifier", CHAMPION, v3.version)
            tell_apis([server.url], None)
            wait_for(
                lambda: server.request("GET", "/model", key=None)[1].get("failed_version") == "3",
                timeout=30,
                what="the broken version to be refused",
                poll=0.3,
            )
            time.sleep(1)
        finally:
            stop.set()
            thread.join()

        failures = [s for s in seen if s[1] != 200]
        assert failures == [] and len(seen) > 20
        # Told at once, so a load, not the 10-minute poll: generous, the machine is shared.
        assert switched < 10, f"took {switched:.1f} s to serve the new champion"
        assert seen[-1][2] == "2", "the old champion keeps serving"
        log = (tmp_path / "serve.log").read_text()
        assert "version 3 was not loaded" in log and "still serving v2" in log


def test_a_store_that_cannot_be_opened_yet_is_a_failed_poll_not_a_dead_service(
    tmp_path, empty_mlflow_db
):
    from mlops_assets.core.data.reference_data import sklearn_iris
    from mlops_assets.core.serving.champion import champion_slot
    from mlops_assets.task import IRIS

    blocker = tmp_path / "mlflow"
    blocker.write_text("a file where the store's folder should be")
    database = blocker / "mlflow.db"
    slot = champion_slot(
        f"sqlite:///{database}", "iris-classifier", IRIS, sklearn_iris(IRIS).head(20), "champion"
    )
    assert not slot.refresh() and "cannot read the registry" in slot.last_error
    blocker.unlink()
    blocker.mkdir()
    shutil.copy(empty_mlflow_db, database)
    assert not slot.refresh() and slot.last_error == "the registry has no champion yet"


def test_the_key_is_checked_before_the_body_is_read(served):
    status, answer = served.request("POST", "/predict", raw=b"not json", key=None)
    assert status == 401 and "X-API-Key" in answer["detail"]
    status, _ = served.request("POST", "/predict", raw=b"x" * 30000, key=None)
    assert status == 401  # not 413: nothing of the body is looked at without the key


def chunked_post(server: ApiServer, path: str, chunks: list[bytes], *, pause: float = 0.0):
    """POST with Transfer-Encoding: chunked (no Content-Length), as streaming clients send."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", path)
    connection.putheader("Content-Type", "application/json")
    connection.putheader("X-API-Key", KEY)
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    try:
        for chunk in chunks:
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            time.sleep(pause)
        connection.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before the rest was sent
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_an_oversized_chunked_body_gets_413_without_being_read_whole(served):
    status, answer = chunked_post(served, "/predict", [b" " * 8000] * 100)
    assert status == 413 and "20000 bytes" in answer["detail"]
    # 7 bytes a chunk, and no empty one: a chunk of 0 bytes ends the body (the bytes after it
    # would be a malformed second request).
    valid = json.dumps({"instances": [ROW]}).encode()
    status, body = chunked_post(
        served, "/predict", [valid[i : i + 7] for i in range(0, len(valid), 7)]
    )
    assert status == 200 and body["predictions"][0]["label"] == "setosa"


def test_a_body_that_stalls_gets_408(served):
    status, answer = chunked_post(served, "/predict", [b'{"instances": '], pause=2)
    assert status == 408 and "did not arrive in time" in answer["detail"]


def test_the_openapi_document_declares_every_answer_and_the_key(served, served_openly):
    _, keyed = served.request("GET", "/openapi.json", key=None)
    assert keyed["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    predict, model = keyed["paths"]["/predict"]["post"], keyed["paths"]["/model"]["get"]
    assert set(predict["responses"]) == {"200", "400", "401", "408", "413", "415", "422", "503"}
    assert set(model["responses"]) == {"200", "401", "503"}
    assert predict["security"] == model["security"] == [{"APIKeyHeader": []}]
    assert "security" not in keyed["paths"]["/health"]["get"]
    _, open_document = served_openly.request("GET", "/openapi.json", key=None)
    assert "security" not in open_document["paths"]["/predict"]["post"]


@pytest.mark.parametrize("keyed", [True, False], ids=["with a key", "without a key"])
def test_schemathesis_finds_nothing(served, served_openly, keyed, tmp_path):
    """Every check schemathesis has, against the running server: no 5xx, every status and
    body as documented, the key enforced where declared."""
    server = served if keyed else served_openly
    command = [
        str(REPO / ".venv/bin/st"),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "40",
        "--workers",
        "1",
        "--seed",
        "1",
        "--max-failures",
        "5",
        "--request-timeout",
        "20",
    ]
    if keyed:
        command += ["--header", f"X-API-Key: {KEY}"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
        env=child_env({"SCHEMATHESIS_TELEMETRY": "false"}),
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_a_champion_that_fails_to_load_once_is_retried_and_health_says_degraded(
    tmp_path, empty_mlflow_db
):
    from urllib.parse import urlparse

    with pipeline_at(tmp_path, empty_mlflow_db) as pipeline:
        pipeline.materialize(run_config=SAME_MODEL_NEW_CONFIG)  # v1 champion, v2 challenger
        with ApiServer(pipeline.home, tmp_path / "serve.log", MLOPS_API_POLL_SECONDS="1") as server:
            wait_for(
                lambda: server.request("GET", "/health", key=None)[0] == 200,
                timeout=30,
                what="v1 to be served",
                poll=0.5,
            )
            client = pipeline.client()
            v2 = client.get_model_version("iris-classifier", "2")
            files = Path(
                urlparse(client.get_logged_model(v2.tags["model_id"]).artifact_location).path
            )
            hidden = files.with_name(files.name + ".away")
            files.rename(hidden)  # fault: the artifact cannot be downloaded for a while
            set_champion_by_hand(
                client, "iris-classifier", "2", actor="test", reason="retry", how="manual"
            )
            wait_for(
                lambda: server.request("GET", "/model", key=None)[1].get("failed_version") == "2",
                timeout=30,
                what="the failed load",
                poll=0.3,
            )
            status, health = server.request("GET", "/health", key=None)
            assert status == 200 and health == {
                "status": "degraded",
                "name": "iris-classifier",
                "version": "1",
            }
            hidden.rename(files)  # the artifact store recovers
            wait_for(
                lambda: server.request("GET", "/health", key=None)[1]["version"] == "2",
                timeout=30,
                what="v2 after a retry, without the alias moving again",
                poll=0.3,
            )
            assert server.request("GET", "/health", key=None)[1]["status"] == "ok"
            _, model = server.request("GET", "/model", key=None)
            assert model["last_error"] is None and model["failed_version"] is None


def test_docs_and_redoc_render_with_no_network(served_openly):
    """/docs (Swagger UI) and /redoc come from files the API serves itself: in a browser
    that can reach nothing but this machine they render every operation, and nothing was
    loaded from anywhere else."""
    from selenium.webdriver.common.by import By

    with chromium(offline=True) as browser:
        browser.get(f"{served_openly.url}/docs")
        operations = wait_until(
            lambda: browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"),
            timeout=60,
            what="Swagger UI's operations",
        )
        paths = {element.text.replace("\u200b", "") for element in operations}
        assert {"/health", "/model", "/predict"} <= paths
        assert loaded_from(browser) == {served_openly.url}

        browser.get(f"{served_openly.url}/redoc")
        wait_until(
            lambda: "/predict" in browser.find_element(By.TAG_NAME, "body").text,
            timeout=60,
            what="ReDoc's rendering of /predict",
        )
        assert browser.find_elements(By.CSS_SELECTOR, ".api-content")
        assert loaded_from(browser) == {served_openly.url}
    # ReDoc's sidebar would fetch its maker's logo from a CDN: the pages' policy keeps the
    # browser from even asking.
    for page in ("/docs", "/redoc"):
        with urllib.request.urlopen(served_openly.url + page, timeout=30) as response:
            policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
