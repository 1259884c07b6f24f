"""Cold and warm wall-clock time of `dagster asset materialize` of the reference data and
everything downstream but `contributed_data`.

Cold: a fresh MLOPS_HOME (new MLflow database, cold-start baseline). Warm: a second run on
the same MLOPS_HOME. Each is repeated; min and median are printed as a markdown table row.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAGSTER = Path(sys.executable).parent / "dagster"
COMMAND = [str(DAGSTER), "asset", "materialize", "-m", "mlops_assets.definitions"]


def materialize(home: Path) -> float:
    env = {**os.environ, "MLOPS_HOME": str(home)}
    start = time.perf_counter()
    result = subprocess.run(
        [*COMMAND, "--select", "key:iris_dataset+ and not key:contributed_data"],
        env=env,
        cwd=home.parent,
        capture_output=True,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr.decode()[-3000:])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.repetitions):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "var"
            cold.append(materialize(home))
            warm.append(materialize(home))
    python = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {python}")
    print(f"date: {date.today()}, repetitions: {args.repetitions}")
    print("| run | min (s) | median (s) | all (s) |")
    print("|---|---:|---:|---|")
    for name, times in (("cold", cold), ("warm", warm)):
        all_times = ", ".join(f"{t:.1f}" for t in times)
        print(f"| {name} | {min(times):.1f} | {statistics.median(times):.1f} | {all_times} |")


if __name__ == "__main__":
    main()
