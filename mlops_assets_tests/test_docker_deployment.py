"""The production deployment, run for real: the image built from docker/Dockerfile, the compose
topology (docker/docker-compose.yml with docker-compose.host.yml, see
mlops_assets_testing/docker_topology.py) up on a Docker engine, and every Dagster run launched
in a container of its own. A contributor with an account uploads a file through the portal's
container; it is ingested, valued, trained on and registered, the API's container serves it and
the portal shows it in that version; a killed run container is marked
failed and the system recovers; `compose down` and `up` lose nothing.

`make test-docker` (marker ``docker``, left out of `make test`): it starts a Docker engine when
none answers and fails, saying why, when it cannot.
"""

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.core.registry.client import mlflow_client
from mlops_assets_testing.data import distinct_sample
from mlops_assets_testing.docker_host import (
    IMAGE,
    Build,
    DockerUnavailable,
    build_base_image,
    build_image,
    docker,
    docker_engine,
)
from mlops_assets_testing.docker_topology import (
    PORTAL_URL,
    STATE_VOLUME,
    Containers,
    compose_topology,
    put_in_state_volume,
)
from mlops_assets_testing.processes import REPO, wait_for
from mlops_assets_testing.topology import MODEL, Topology, write_stump

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

TRUSTED = "/opt/mlops/var/trusted"
TAG = "docker/container_id"  # the Docker run launcher's tag on each run it launched
SECRETS = ("DAGSTER_POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY", "MLOPS_API_KEY")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    try:
        with docker_engine(tmp_path_factory.mktemp("dockerd")):
            yield
    except DockerUnavailable as reason:
        pytest.fail(f"no Docker engine: {reason}")


@pytest.fixture(scope="module")
def image(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Build:
    seconds = build_base_image(tmp_path_factory.mktemp("base"))
    build = build_image()
    size = build.size_bytes / 1e6
    print(f"base image {seconds:.0f} s; {IMAGE} built in {build.seconds:.0f} s, {size:.0f} MB")
    return build


def served_contributions(topology: Topology) -> set[str]:
    version = topology.served_version()
    if version is None:
        return set()
    tags = mlflow_client(topology.tracking_uri).get_model_version(MODEL, version).tags
    return set(json.loads(tags.get("contributions", "[]")))


def runs(topology: Topology) -> dict[str, tuple[str, str]]:
    """run id -> (job, status), from the Dagster database in PostgreSQL."""
    rows = topology.query("SELECT run_id, pipeline_name, status FROM runs")
    return {run_id: (job, status) for run_id, job, status in rows}


def wait_until_idle(topology: Topology) -> dict[str, tuple[str, str]]:
    finished = {"SUCCESS", "FAILURE", "CANCELED"}
    return wait_for(
        lambda: (now := runs(topology)) and {s for _, s in now.values()} <= finished and now,
        timeout=300,
        what="every run to finish",
        poll=2,
    )


def assert_started_in_dependency_order(events: list[dict]) -> None:
    """Each service started only once what it depends on was healthy (or, for a one-shot,
    had completed), by the engine's own events."""

    def first(service: str, status: str) -> int:
        times = [
            e["timeNano"]
            for e in events
            if e["Actor"]["Attributes"].get("com.docker.compose.service") == service
            and e["status"] == status
        ]
        assert times, f"no {status!r} event of {service}"
        return min(times)

    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    for service, spec in compose["services"].items():
        for dependency, condition in (spec.get("depends_on") or {}).items():
            done = condition["condition"] == "service_completed_successfully"
            ready = "die" if done else "health_status: healthy"
            assert first(dependency, ready) <= first(service, "start"), (service, dependency)


def assert_secrets_only_in_environment(containers: Containers, ids: list[str]) -> None:
    """The operator's secrets are in each container's environment and nowhere else that
    `docker inspect` or `docker top` shows; the image has none."""
    secrets = [containers.env[name] for name in SECRETS]
    for container in json.loads(docker("inspect", *ids).stdout):
        container["Config"].pop("Env")
        shown = json.dumps(container)
        if container["State"]["Running"]:
            shown += docker("top", container["Id"], "-o", "pid,args").stdout
        leaked = [name for name, value in zip(SECRETS, secrets, strict=True) if value in shown]
        assert not leaked, f"{container['Name']} shows {leaked} outside its environment"
    image = json.loads(docker("image", "inspect", IMAGE).stdout)[0]
    assert not [
        entry for entry in image["Config"]["Env"] if any(w in entry for w in ("PASSWORD", "SECRET"))
    ]


def predict_status(api_url: str, key: str | None) -> int:
    request = urllib.request.Request(
        f"{api_url}/predict",
        data=json.dumps({"instances": [{"sepal_length": 5.1, "sepal_width": 3.5,
                                        "petal_length": 1.4, "petal_width": 0.2}]}).encode(),
        headers={"Content-Type": "application/json", **({"X-API-Key": key} if key else {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def in_state_volume(path: str) -> bool:
    command = ["docker", "run", "--rm", "--network", "none", "-v", f"{STATE_VOLUME}:/opt/mlops/var"]
    return subprocess.run([*command, IMAGE, "test", "-f", path], check=False).returncode == 0


@pytest.mark.timeout(2400)
def portal_upload(token: str, name: str, body: bytes) -> dict:
    url = f"{PORTAL_URL}/api/v1/uploads?filename={name}&license=CC0-1.0&consent=true"
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def portal_get(token: str, path: str) -> dict:
    request = urllib.request.Request(
        f"{PORTAL_URL}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def test_compose_up_trains_and_serves_in_containers(
    image: Build, tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # A depth-1 tree as the baseline: every real candidate beats it, so each retrain moves the
    # champion and the API's move can be seen.
    stump = write_stump(tmp_path / "trusted" / "stump.joblib")
    with compose_topology(
        tmp_path / "deployment",
        s3_endpoint,
        f"mlops-{tmp_path.name[-12:].lower().replace('_', '-')}",
        MLOPS_SENSOR_INTERVAL="2",
        MLOPS_BASELINE_SOURCE=f"{TRUSTED}/{stump.name}",
        MLOPS_TRUSTED_MODEL_DIR=TRUSTED,
    ) as (topology, containers):
        put_in_state_volume(stump, f"{TRUSTED}/{stump.name}")
        print(f"compose up to healthy: {containers.up():.0f} s")
        assert_started_in_dependency_order(containers.events)

        # The cold start, in run containers: the stump imported as v1, then a model on iris.
        wait_for(topology.served_version, timeout=600, what="a first champion served", poll=2)
        wait_until_idle(topology)
        key = containers.env["MLOPS_API_KEY"]
        assert predict_status(topology.api_url, None) == 401
        assert predict_status(topology.api_url, key) == 200

        # A contributor's upload through the portal's container becomes the champion the API's
        # container serves, and the portal (the catalog in PostgreSQL, the registry) says so.
        added = containers.compose("exec", "-T", "portal", "mlops", "contributors", "add", "alice")
        token = added.strip().splitlines()[-1]
        uploaded = portal_upload(token, "flowers.csv", distinct_sample(0).encode())
        assert uploaded["accepted"] and uploaded["landing_path"] == "alice/flowers.csv", uploaded
        landed = time.monotonic()
        alice = contribution_key("alice/flowers.csv")
        wait_for(
            lambda: alice in served_contributions(topology),
            timeout=600,
            what="the API to serve a model trained on alice's file",
            poll=2,
        )
        print(f"alice's upload to served: {time.monotonic() - landed:.0f} s")
        steps = [s["step"] for s in portal_get(token, f"/api/v1/contributions/{alice}")["timeline"]]
        assert "trained_on" in steps, steps
        done = wait_until_idle(topology)
        assert {status for _, status in done.values()} == {"SUCCESS"}, done
        assert {"ingest_contribution", "retrain"} <= {job for job, _ in done.values()}
        launched = dict(topology.query(f"SELECT run_id, value FROM run_tags WHERE key = '{TAG}'"))
        assert set(launched) == set(done), "every run in a container of its own"
        assert len(set(launched.values())) == len(done)
        wait_for(
            lambda: not containers.run_containers(),
            timeout=120,
            what="the run containers to be removed when their runs ended",
        )

        # A run container killed mid-retrain: run monitoring marks the run failed, and the
        # retrain sensor tries again until bob's file is served.
        topology.put("landing/bob/flowers.csv", distinct_sample(1).encode())
        bob = contribution_key("bob/flowers.csv")
        retrain = wait_for(
            lambda: next(
                (run_id for run_id, (job, status) in runs(topology).items()
                 if job == "retrain" and status == "STARTED" and run_id not in done),
                None,
            ),
            timeout=600,
            what="bob's retrain to start",
            poll=0.5,
        )  # fmt: skip
        container = topology.query(
            f"SELECT value FROM run_tags WHERE run_id = '{retrain}' AND key = '{TAG}'"
        )[0][0]
        # What the launcher passed (the instance reference in the command line included)
        # holds no secret outside the environment; then the kill, while the retrain runs.
        assert_secrets_only_in_environment(containers, [container])
        docker("kill", container)
        assert_secrets_only_in_environment(containers, containers.ids())
        wait_for(
            lambda: runs(topology)[retrain][1] == "FAILURE",
            timeout=120,
            what="run monitoring to mark the killed run failed",
            poll=2,
        )
        (failure,) = topology.query(
            "SELECT event FROM event_logs WHERE dagster_event_type = 'PIPELINE_FAILURE' "
            f"AND run_id = '{retrain}'"
        )
        assert "Detected run worker status" in failure[0], failure  # run monitoring's verdict
        wait_for(
            lambda: bob in served_contributions(topology),
            timeout=600,
            what="a retried retrain to serve bob's file",
            poll=2,
        )
        wait_until_idle(topology)

        # `compose down` keeps the volumes: `up` again serves the same champion, Dagster
        # remembers its runs and cursors (nothing is ingested again), the state volume keeps
        # its files.
        served, before = topology.served_version(), runs(topology)
        containers.compose("down", "--timeout", "20")
        assert not containers.states()
        print(f"compose up again to healthy: {containers.up():.0f} s")
        wait_for(lambda: topology.served_version() == served, timeout=300, what="same champion")
        assert in_state_volume(f"{TRUSTED}/{stump.name}")
        time.sleep(10)  # five sensor intervals after the daemon is healthy
        assert runs(topology) == before
