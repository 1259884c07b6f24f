"""Real processes on 127.0.0.1: ``dagster dev``, console scripts, and waiting on them."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlops_assets.settings import REPO_ROOT as REPO

BIN = REPO / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_group(
    process: subprocess.Popen, sig: int = signal.SIGTERM, *, timeout: float = 60
) -> None:
    """Send ``sig`` to ``process``'s process group (started with ``start_new_session``) and
    wait for it; kill the group if it is still there after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def env_for(home: Path, **overrides: str) -> dict[str, str]:
    """Environment variables of an embedded deployment rooted at ``home``."""
    return {"MLOPS_HOME": str(home), **overrides}


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment plus ``env``, for a subprocess. mlflow.set_tracking_uri()
    exports MLFLOW_TRACKING_URI to os.environ: an earlier test's store must not leak into the
    child through it."""
    inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**inherited, **env}


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    process: subprocess.Popen | None = None,
    poll: float = 2.0,
) -> Any:
    """``condition()``'s first truthy value, checked every ``poll`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None:
            assert process.poll() is None, f"{process.args[0]} exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(poll)


@contextlib.contextmanager
def dagster_dev(home: Path, workdir: Path, **env: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """``dg dev`` as ``make run`` starts it (webserver, daemon, sensors) on a fresh embedded
    deployment at ``home``, as a real subprocess; yields it and its webserver port, and stops
    it on exit."""
    import shutil

    dagster_home = workdir / "dagster"
    dagster_home.mkdir()
    shutil.copy(REPO / "docker" / "dagster.embedded.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    with (workdir / "dagster-dev.log").open("w") as log:
        process = subprocess.Popen(
            [
                *(str(BIN / "dg"), "dev"),
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
            stop_group(process)


@contextlib.contextmanager
def dagster_webserver(home: Path, log: Path) -> Iterator[str]:
    """``dagster-webserver`` over the deployment at ``home`` (its instance in
    ``home/dagster``), as a real subprocess; yields its URL once it answers."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                *(str(BIN / "dagster-webserver"), "-w", str(REPO / "workspace.yaml")),
                *("-h", "127.0.0.1", "-p", str(port)),
            ],
            env=child_env(env_for(home, DAGSTER_HOME=str(home / "dagster"))),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                    return True
            except OSError:
                return False

        try:
            wait_for(answers, timeout=180, what="dagster-webserver", process=process, poll=1)
            yield url
        finally:
            stop_group(process)


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240
) -> subprocess.CompletedProcess:
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


def in_process_mlops(
    home: Path, monkeypatch: Any, capsys: Any
) -> Callable[..., tuple[int, str, str]]:
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
