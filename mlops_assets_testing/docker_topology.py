"""The production compose topology on this machine's Docker engine: docker/docker-compose.yml
with docker/docker-compose.host.yml, run from a project folder holding those files and a
docker/.env made from docker/.env.example as an operator would (see ``host_env``).

PostgreSQL is the machine's own server (fresh databases, dropped afterwards) and S3 a local
S3-compatible server the caller runs on 127.0.0.1; both are outside compose, as a managed
database and bucket would be. Every container is on the host's network, so the services listen
on their production ports. Used by ``test_docker_deployment.py`` and
``benchmarks/docker_deployment.py``.
"""

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlops_assets_testing.docker_host import IMAGE, docker
from mlops_assets_testing.processes import REPO
from mlops_assets_testing.topology import Topology, postgres_databases

PROJECT = "mlops-assets"  # COMPOSE_PROJECT_NAME of docker/.env.example
STATE_VOLUME = "mlops-state"  # fixed in docker-compose.yml and dagster.yaml
PORTS = {"webserver": 3000, "user-code": 4000, "mlflow": 5000, "api": 8000, "portal": 8080}
ONE_SHOT = {"create-bucket"}
# The API is healthy once it serves a champion: on a fresh deployment, after the cold start.
SERVES_LATER = {"api"}
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.host.yml")
# MLflow's --allowed-hosts (docker-compose.yml) name localhost, not 127.0.0.1.
TRACKING_URI = f"http://localhost:{PORTS['mlflow']}"
API_URL = f"http://127.0.0.1:{PORTS['api']}"
PORTAL_URL = f"http://127.0.0.1:{PORTS['portal']}"


def env_example() -> dict[str, str]:
    lines = (REPO / "docker" / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def host_env(*, dagster_db: str, mlflow_db: str, s3_endpoint: str, bucket: str) -> dict[str, str]:
    """docker/.env.example with this machine's addresses (127.0.0.1, its PostgreSQL with trust
    authentication) and fresh secrets."""
    password = secrets.token_urlsafe(16)
    return env_example() | {
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_USER": "postgres",
        "DAGSTER_POSTGRES_PASSWORD": password,
        "MLOPS_CATALOG_URL": f"postgresql+psycopg2://postgres:{password}@127.0.0.1:5432/{dagster_db}",
        "DAGSTER_POSTGRES_DB": dagster_db,
        "DAGSTER_DOCKER_NETWORK": "host",
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
        "MLFLOW_POSTGRES_DB": mlflow_db,
        "MLFLOW_TRACKING_URI": TRACKING_URI,
        "MLOPS_BUCKET": bucket,
        "AWS_ACCESS_KEY_ID": f"key-{secrets.token_hex(4)}",
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(16),
        "MLOPS_S3_ENDPOINT_URL": s3_endpoint,
        "MLOPS_LANDING_URI": f"s3://{bucket}/landing",
        "MLOPS_STORAGE_URI": f"s3://{bucket}/storage",
        "MLOPS_API_KEY": secrets.token_urlsafe(16),
        "MLOPS_API_URL": API_URL,
    }


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Containers:
    """The compose project's containers; ``check`` fails when a service died."""

    project_dir: Path
    env: dict[str, str]
    up_seconds: list[float] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    def compose(self, *args: str, timeout: float = 600) -> str:
        command = ["docker-compose", *(arg for f in COMPOSE_FILES for arg in ("-f", f)), *args]
        result = subprocess.run(
            command,
            cwd=self.project_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            # Compose interpolates from docker/.env; nothing of the caller's environment leaks in.
            env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")},
        )
        assert result.returncode == 0, f"docker-compose {' '.join(args)}:\n{result.stderr[-4000:]}"
        return result.stdout

    def ids(self) -> list[str]:
        """The ids of the project's containers, stopped ones included."""
        filters = ("--filter", f"label=com.docker.compose.project={PROJECT}")
        return docker("ps", "-aq", *filters).stdout.split()

    def states(self) -> dict[str, dict]:
        """Each service's container state (``docker inspect``'s State)."""
        if not (ids := self.ids()):
            return {}
        return {
            c["Config"]["Labels"]["com.docker.compose.service"]: c["State"]
            for c in json.loads(docker("inspect", *ids).stdout)
        }

    def check(self) -> None:
        for service, state in self.states().items():
            if service in ONE_SHOT:
                assert state["Status"] != "exited" or state["ExitCode"] == 0, self.logs(service)
            else:
                assert state["Status"] == "running", f"{service} is {state['Status']}:\n" + (
                    self.logs(service)
                )

    def healthy(self, *, but: set[str] = SERVES_LATER) -> bool:
        """Whether every service is healthy (one-shots: done), those in ``but`` running."""
        states = self.states()
        self.check()
        return len(states) == 9 and all(
            state["Status"] == "exited"
            if service in ONE_SHOT
            else service in but or state.get("Health", {}).get("Status") == "healthy"
            for service, state in states.items()
        )

    def up(self, timeout: float = 600) -> float:
        """``compose up -d`` and the seconds until every service is healthy (the API: up).
        The engine's events meanwhile (it keeps only its last 256) are kept in ``events``."""
        start = time.monotonic()
        with tempfile.TemporaryFile("w+") as log:
            filters = ("--filter", f"label=com.docker.compose.project={PROJECT}")
            events = subprocess.Popen(
                ["docker", "events", "--format", "{{json .}}", *filters], stdout=log
            )
            try:
                self.compose("up", "-d", "--no-build", timeout=timeout)
                while not self.healthy():
                    assert time.monotonic() - start < timeout, (
                        f"not healthy in {timeout} s: {self.states()}"
                    )
                    time.sleep(1)
            finally:
                events.terminate()
                events.wait(timeout=30)
            log.seek(0)
            self.events = [json.loads(line) for line in log if line.strip()]
        self.up_seconds.append(time.monotonic() - start)
        return self.up_seconds[-1]

    def logs(self, service: str = "") -> str:
        return self.compose("logs", "--no-color", "--tail", "60", *([service] if service else []))[
            -6000:
        ]

    def run_containers(self) -> list[dict]:
        """Containers the Docker run launcher started (labelled with their run's id)."""
        ids = docker("ps", "-q", "--filter", "label=dagster/run_id").stdout.split()
        return json.loads(docker("inspect", *ids).stdout) if ids else []


def put_in_state_volume(source: Path, target: str) -> None:
    """Copy the file ``source`` to ``target`` (a path under /opt/mlops/var) in the state
    volume that every service and run container mounts."""
    docker(
        *("run", "--rm", "--network", "none"),
        *("-v", f"{STATE_VOLUME}:/opt/mlops/var", "-v", f"{source.parent}:/source:ro"),
        *(IMAGE, "sh", "-c", f"mkdir -p $(dirname {target}) && cp /source/{source.name} {target}"),
    )


@contextlib.contextmanager
def compose_topology(
    workdir: Path, s3_endpoint: str, bucket: str, **settings: str
) -> Iterator[tuple[Topology, Containers]]:
    """A project folder for the topology under ``workdir``, with fresh databases; yields it not
    yet started (``containers.up()``), and on exit takes it down with its volumes and drops
    the databases, also when the body fails."""
    busy = [f"{name} ({port})" for name, port in PORTS.items() if port_in_use(port)]
    assert not busy, f"ports in use on 127.0.0.1, needed by the host-network services: {busy}"
    leftovers = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}")
    assert not leftovers.stdout.strip(), f"compose project {PROJECT} already has containers"
    suffix = uuid.uuid4().hex[:8]
    dagster_db, mlflow_db = f"dagster_{suffix}", f"mlflow_{suffix}"
    project_dir = workdir / "docker"
    project_dir.mkdir(parents=True)
    for name in (*COMPOSE_FILES, "postgres-init.sql"):
        shutil.copy(REPO / "docker" / name, project_dir / name)
    env = (
        host_env(dagster_db=dagster_db, mlflow_db=mlflow_db, s3_endpoint=s3_endpoint, bucket=bucket)
        | settings
    )
    (project_dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    containers = Containers(project_dir, env)
    topology = Topology(
        processes=containers,  # type: ignore[arg-type]  # anything with check()
        env=env,
        tracking_uri=TRACKING_URI,
        api_url=API_URL,
        webserver_url=f"http://127.0.0.1:{PORTS['webserver']}",
        dagster_db=dagster_db,
        bucket=bucket,
        s3_endpoint=s3_endpoint,
    )
    with postgres_databases(dagster_db, mlflow_db):
        try:
            yield topology, containers
        finally:
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                containers.compose("down", "--volumes", "--remove-orphans", "--timeout", "20")
            # Run containers are the launcher's, not compose's: any still running goes too.
            for container in containers.run_containers():
                docker("rm", "-f", container["Id"])
            with contextlib.suppress(RuntimeError):
                docker("volume", "rm", "-f", STATE_VOLUME)
