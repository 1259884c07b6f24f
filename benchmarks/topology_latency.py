"""Latency from a contribution landing to the API serving the model trained on it: the
production topology (PostgreSQL, S3, mlflow server, gRPC user code, webserver, daemon, API as
processes on 127.0.0.1, see mlops_assets_testing/topology.py) next to the embedded default
(``dagster dev`` on SQLite and local files, plus ``mlops serve``).

Both pin a depth-1 tree as the baseline, so every candidate beats it and becomes the champion
the API must switch to. Each contribution is timed from the moment it lands until
``GET /health`` names a version trained on it. Nothing is called in between.

    python benchmarks/topology_latency.py --contributions 3
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from mlops_assets.core.registry.client import mlflow_client
from mlops_assets_testing.data import distinct_sample
from mlops_assets_testing.processes import dagster_dev, env_for, free_port, wait_for
from mlops_assets_testing.topology import (
    BIN,
    MODEL,
    Processes,
    answers,
    get_json,
    production_topology,
    write_stump,
)


def served(api_url: str) -> str | None:
    return get_json(f"{api_url}/health")["version"] if answers(f"{api_url}/health") else None


def time_contributions(
    count: int,
    land: Callable[[str, str], None],
    api_url: str,
    tracking_uri: str,
    check: Callable[[], None],
) -> list[float]:
    """Land ``count`` contributions one after the other; for each, the seconds until the API
    serves a version trained on it."""
    client = mlflow_client(tracking_uri)
    wait_for(lambda: check() or served(api_url), timeout=600, what="a first champion", poll=1)
    latencies = []
    for shift in range(1, count + 1):
        name = f"latency-{shift}.csv"
        start = time.monotonic()
        land(f"bench/{name}", distinct_sample(shift))

        def serves_it(name: str = name) -> bool:
            check()
            version = served(api_url)
            tags = client.get_model_version(MODEL, version).tags if version else {}
            return any(name in c for c in json.loads(tags.get("contributions", "[]")))

        wait_for(serves_it, timeout=600, what=f"the API to serve a model on {name}", poll=0.5)
        latencies.append(time.monotonic() - start)
        print(f"  {name}: {latencies[-1]:.1f} s", flush=True)
    return latencies


def embedded(
    workdir: Path, count: int, settings: dict[str, str], *, tell_api: bool = False
) -> list[float]:
    """``tell_api``: the pipeline tells the API when the champion moves (MLOPS_API_URL, as
    `make run` does), rather than leaving it to the API's poll."""
    home = workdir / "var"
    (home / "mlflow").mkdir(parents=True)
    tracking_uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    mlflow_client(tracking_uri)  # the schema, created once before two processes open it
    api_port = free_port()
    if tell_api:
        settings = settings | {"MLOPS_API_URL": f"http://127.0.0.1:{api_port}"}
    with dagster_dev(home, workdir, **settings) as (dev, _):
        processes = Processes(workdir, env_for(home, **settings))
        try:
            processes.start("api", str(BIN / "mlops"), "serve", "--port", str(api_port))

            def land(relative: str, text: str) -> None:
                target = home / "landing" / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)

            def check() -> None:
                processes.check()
                assert dev.poll() is None, "dagster dev exited"

            return time_contributions(
                count,
                land,
                f"http://127.0.0.1:{api_port}",
                tracking_uri,
                check,
            )
        finally:
            processes.stop()


def topology(workdir: Path, count: int, settings: dict[str, str]) -> list[float]:
    import boto3
    from moto.server import ThreadedMotoServer

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    s3_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3_server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="mlops")
        with production_topology(workdir, endpoint, "mlops", **settings) as running:
            return time_contributions(
                count,
                lambda relative, text: running.put(f"landing/{relative}", text.encode()),
                running.api_url,
                running.tracking_uri,
                running.processes.check,
            )
    finally:
        s3_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contributions", type=int, default=3)
    parser.add_argument("--sensor-interval", type=int, default=15)
    parser.add_argument("--api-poll-seconds", type=int, default=10)
    args = parser.parse_args()

    rows = []
    for name, deployment in (("embedded", embedded), ("production topology", topology)):
        with tempfile.TemporaryDirectory() as tmp:
            stump = write_stump(Path(tmp) / "trusted" / "stump.joblib")
            settings = {
                "MLOPS_SENSOR_INTERVAL": str(args.sensor_interval),
                "MLOPS_API_POLL_SECONDS": str(args.api_poll_seconds),
                "MLOPS_BASELINE_SOURCE": str(stump),
                "MLOPS_TRUSTED_MODEL_DIR": str(stump.parent),
            }
            print(f"{name}:", flush=True)
            latencies = deployment(Path(tmp), args.contributions, settings)
        rows.append(
            f"| {name} | {len(latencies)} | {statistics.median(latencies):.1f} | "
            f"{min(latencies):.1f} | {max(latencies):.1f} |"
        )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    print(f"sensor interval {args.sensor_interval} s, API poll {args.api_poll_seconds} s")
    print("| deployment | files | median (s) | min (s) | max (s) |\n|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
