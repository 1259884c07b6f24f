"""From `make run` to a served champion, next to the same work done by hand in one process.

Each round, in turn on this machine:

- **plain**: ``benchmarks/plain_champion.py`` (read iris, train the same logistic regression,
  log it to a fresh MLflow store with a signature, register it, alias it champion): the limit;
- **first champion**: ``make run`` on a fresh ``MLOPS_HOME`` (a clone's state: the
  environment installed, no ``var/``), until ``GET /health`` answers 200;
- **landing → served**: then a contribution of new flowers copied into the landing zone,
  until ``GET /health`` names a new version (the contribution makes a better model);
- **cold materialize**: ``dagster asset materialize --select`` the reference data and
  everything downstream but ``contributed_data``, on another fresh home.

Prints each figure per round, the medians and the ratios to the plain script (median of the
per-round ratios), for benchmarks/RESULTS.md.

    python benchmarks/first_champion.py --rounds 3
"""

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

from mlops_assets_testing.data import new_flowers
from mlops_assets_testing.processes import BIN, REPO, child_env, free_port, stop_group

TARGETS = {"first champion": 5.0, "cold materialize": 2.5, "landing → served": 4.0}


def plain(workdir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "plain_champion.py"), str(workdir)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def served_version(api: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
            return json.load(response)["version"]
    except OSError:
        return None


def wait_for_version(api: str, other_than: str | None, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        assert process.poll() is None, "make run stopped"
        version = served_version(api)
        if version is not None and version != other_than:
            return version
        time.sleep(0.2)
    raise TimeoutError(f"no new champion at {api} within 900 s")


def make_run(workdir: Path) -> tuple[float, float]:
    """Seconds from `make run` to the first champion served, then from a contribution landing
    to a new champion served."""
    home = workdir / "var"
    ports = {name: str(free_port()) for name in ("API_PORT", "DAGSTER_PORT", "MLFLOW_UI_PORT")}
    api = f"http://127.0.0.1:{ports['API_PORT']}"
    env = child_env({"MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **ports})
    with (workdir / "make-run.log").open("w") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            ["make", "run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            first = wait_for_version(api, None, process)
            to_champion = time.monotonic() - started
            landing = home / "landing" / "bench"
            landing.mkdir(parents=True, exist_ok=True)
            flowers = new_flowers(per_class=20, seed=int(started) % 1000).to_csv(index=False)
            started = time.monotonic()
            (landing / "flowers.csv").write_text(flowers)
            wait_for_version(api, first, process)
            return to_champion, time.monotonic() - started
        finally:
            stop_group(process, signal.SIGINT)  # Ctrl-C, as make run's user stops it


def cold_materialize(workdir: Path) -> float:
    env = child_env({"MLOPS_HOME": str(workdir / "var")})
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "mlops_assets.definitions",
         "--select", "key:iris_dataset+ and not key:contributed_data"],
        cwd=workdir, env=env, check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: list[dict[str, float]] = []
    for number in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for name in ("plain", "run", "cold"):
                (work / name).mkdir()
            row = {"plain": plain(work / "plain")}
            row["first champion"], row["landing → served"] = make_run(work / "run")
            row["cold materialize"] = cold_materialize(work / "cold")
        rows.append(row)
        print(f"round {number}: " + ", ".join(f"{k} {v:.1f} s" for k, v in row.items()))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    print("| measure | median (s) | all (s) | ratio to plain (median) | target |")
    print("|---|---:|---|---:|---:|")
    for name in ("plain", *TARGETS):
        times = [r[name] for r in rows]
        ratio = statistics.median(r[name] / r["plain"] for r in rows)
        target = f"≤ {TARGETS[name]}x" if name in TARGETS else ""
        all_times = ", ".join(f"{t:.1f}" for t in times)
        print(
            f"| {name} | {statistics.median(times):.1f} | {all_times} | {ratio:.2f}x | {target} |"
        )


if __name__ == "__main__":
    main()
