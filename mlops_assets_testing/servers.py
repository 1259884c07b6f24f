"""Servers the tests and benchmarks start for real: the prediction API (``mlops serve``)
and an ``mlflow server`` that can be stopped and started again."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from mlops_assets_testing.processes import (
    BIN,
    REPO,
    child_env,
    env_for,
    free_port,
    stop_group,
    wait_for,
)


class ApiServer:
    """``mlops serve`` on a free port (requiring ``key`` when given, which every request then
    sends unless it says otherwise), stopped on exit."""

    def __init__(self, home: Path, log: Path, *, key: str | None = None, **env: str) -> None:
        self.key = key
        if key:
            env["MLOPS_API_KEY"] = key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [str(BIN / "mlops"), "serve", "--port", str(self.port)],
                env=child_env(env_for(home, **env)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(self._up, timeout=90, what="mlops serve to answer", poll=0.3)
        except BaseException:
            self.stop()
            raise

    def _up(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()[-3000:]
        try:
            self.request("GET", "/openapi.json")
            return True
        except OSError:
            return False

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        key: str | object | None = ...,  # None: send no key
        raw: bytes | None = None,
        content_type: str | None = "application/json",  # None: no Content-Type header
    ) -> tuple[int, dict]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        key = self.key if key is ... else key
        if content_type is None and data is not None:
            return self._without_content_type(method, path, data, key)
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if content_type is not None:
            request.add_header("Content-Type", content_type)
        if key:
            request.add_header("X-API-Key", key)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            assert "Traceback" not in text and str(REPO) not in text, text
            return error.code, json.loads(text)

    def _without_content_type(
        self, method: str, path: str, data: bytes, key: object
    ) -> tuple[int, dict]:
        """A body sent with no Content-Type header at all (urllib would add a form type)."""
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Content-Length": str(len(data)), **({"X-API-Key": key} if key else {})}
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def __enter__(self) -> "ApiServer":
        return self

    def __exit__(self, *_) -> None:
        self.stop()

    def stop(self) -> None:
        stop_group(self.process, timeout=30)


class MlflowServer:
    """``mlflow server`` on a fixed port with a SQLite store, which a test can stop and start."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.root / "server.log").open("a")
        self.process = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                *("server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
                *("--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}"),
                *("--artifacts-destination", str(self.root / "artifacts")),
            ],
            # No background job runner: the registry is all these tests need, and it starts faster.
            env=child_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                assert self.process.poll() is None, (self.root / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "mlflow server did not start within 60 s"
                time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
