"""Single-row prediction throughput and latency: ``mlops serve`` next to ``mlflow models serve``.

Both serve the same registered champion (logistic regression on iris) from the same MLflow
store, one process each, and are driven by the same load generator in the same run: N client
threads, each with its own keep-alive HTTP connection, sending one-row requests back to back
for a fixed time after a warm-up.

    python benchmarks/serving_throughput.py --seconds 15
"""

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def register_champion(home: Path) -> str:
    """A logistic regression on iris, registered as champion of iris-classifier."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from mlops_assets.core.data.reference_data import sklearn_iris
    from mlops_assets.core.promotion.champion import promote_to_champion
    from mlops_assets.core.registry.client import (
        ensure_experiment,
        mlflow_client,
        register_model_version,
    )
    from mlops_assets.core.registry.models import log_sklearn_model
    from mlops_assets.task import IRIS

    (home / "mlflow").mkdir(parents=True)
    uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    client = mlflow_client(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=ensure_experiment(client, "bench", str(home / "art")))
    frame = sklearn_iris(IRIS)
    model = LogisticRegression(max_iter=500).fit(frame[IRIS.feature_names], frame[IRIS.label])
    with mlflow.start_run():
        info = log_sklearn_model(model, name="model", input_example=frame[IRIS.feature_names][:3])
    version = register_model_version(
        client, info, model_name="iris-classifier", tags={"benchmark_accuracy": "0.97"}
    )
    promote_to_champion(client, "iris-classifier", version.version)
    return uri


def start(command: list[str], env: dict[str, str], port: int, ready_path: str, log: Path):
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=2):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text()[-3000:]) from None
            time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def drive(port: int, path: str, body: bytes, concurrency: int, seconds: float) -> dict:
    """Requests per second and latency percentiles (ms) over ``seconds`` of load."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    measuring = threading.Event()
    stopping = threading.Event()
    headers = {"Content-Type": "application/json"}

    def client(i: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stopping.is_set():
            start = time.perf_counter()
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            if measuring.is_set():
                latencies[i].append(time.perf_counter() - start)
                errors[i] += response.status != 200
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    time.sleep(2)  # warm-up
    measuring.set()
    began = time.perf_counter()
    time.sleep(seconds)
    measuring.clear()
    elapsed = time.perf_counter() - began
    stopping.set()
    for thread in threads:
        thread.join()
    flat = sorted(t for per in latencies for t in per)
    return {
        "rps": len(flat) / elapsed,
        "p50": 1000 * statistics.median(flat),
        "p99": 1000 * flat[int(0.99 * (len(flat) - 1))],
        "errors": sum(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "var"
        uri = register_champion(home)
        # mlflow models serve runs `uvicorn` by name: the venv must be on PATH.
        path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {"MLOPS_HOME": str(home), "MLFLOW_TRACKING_URI": uri, "PATH": path}
        ours, theirs = free_port(), free_port()
        servers = {
            "mlops serve": (
                [str(BIN / "mlops"), "serve", "--port", str(ours)],
                ours,
                "/health",
                "/predict",
                json.dumps({"instances": [ROW]}).encode(),
            ),
            "mlflow models serve": (
                [
                    *(str(BIN / "mlflow"), "models", "serve"),
                    *("-m", "models:/iris-classifier@champion", "--env-manager", "local"),
                    *("--port", str(theirs), "--host", "127.0.0.1"),
                ],
                theirs,
                "/ping",
                "/invocations",
                json.dumps({"dataframe_records": [ROW]}).encode(),
            ),
        }
        print("| server | concurrency | requests/s | p50 (ms) | p99 (ms) | errors |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, (command, port, ready, path, body) in servers.items():
            process = start(command, env, port, ready, Path(tmp) / f"{port}.log")
            try:
                for concurrency in (1, 8):
                    r = drive(port, path, body, concurrency, args.seconds)
                    print(
                        f"| {name} | {concurrency} | {r['rps']:.0f} | {r['p50']:.2f} | "
                        f"{r['p99']:.2f} | {r['errors']} |"
                    )
            finally:
                stop(process)


if __name__ == "__main__":
    main()
