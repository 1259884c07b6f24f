"""Latency from a file landing to the new model version registered, on the embedded default.

Starts ``dagster dev`` on a fresh ``MLOPS_HOME`` (as ``make run`` does), waits for the first
candidate, then drops contributions one at a time into the landing zone and times each until
a registry version trained on it exists. Nothing is clicked or called in between: the sensors
and the daemon do everything.

    python benchmarks/contribution_latency.py --contributions 3 --sensor-interval 15
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from mlops_assets.core.registry.client import get_version_by_alias, mlflow_client
from mlops_assets_testing.data import distinct_sample
from mlops_assets_testing.processes import dagster_dev, wait_for


def main() -> None:
    from mlflow.exceptions import MlflowException

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contributions", type=int, default=3)
    parser.add_argument("--sensor-interval", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "var"
        database = home / "mlflow" / "mlflow.db"

        def challenger():
            if not database.exists():
                return None
            try:
                return get_version_by_alias(
                    mlflow_client(f"sqlite:///{database}"), "iris-classifier", "challenger"
                )
            except MlflowException:
                return None

        interval = str(args.sensor_interval)
        with dagster_dev(home, Path(tmp), MLOPS_SENSOR_INTERVAL=interval) as (dev, _):
            wait_for(challenger, timeout=300, what="the first candidate", process=dev, poll=0.5)
            latencies = []
            for shift in range(1, args.contributions + 1):
                name = f"latency-{shift}.csv"
                target = home / "landing" / "bench" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                start = time.monotonic()
                target.write_text(distinct_sample(shift))
                wait_for(
                    lambda name=name: (
                        (v := challenger())
                        and any(name in c for c in json.loads(v.tags.get("contributions", "[]")))
                    ),
                    timeout=600,
                    what=f"a version trained on {name}",
                    process=dev,
                    poll=0.5,
                )
                latencies.append(time.monotonic() - start)
                print(f"{name}: {latencies[-1]:.1f} s", flush=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    print(f"sensor interval {args.sensor_interval} s; latencies (s): {latencies}")
    print(
        f"| {args.sensor_interval} s | {len(latencies)} | {statistics.median(latencies):.1f} | "
        f"{min(latencies):.1f} | {max(latencies):.1f} |"
    )


if __name__ == "__main__":
    main()
