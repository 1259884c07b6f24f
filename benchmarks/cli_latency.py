"""Wall time of the read-only ``mlops`` commands on a small home.

Builds a home the way a newcomer gets one (``make run``, then three files dropped at once and
one that is rejected): the cold-start champion v1, one retrain valuing the three, and the
Dagster instance that ran it all. Then times ``mlops contributions``, ``mlops model show``
and ``mlops verify <latest>`` as whole processes, each after one warm-up, and with
``--peer`` the same commands of another installation (e.g. a checkout of an earlier commit)
in turn, A B A B, so the ratio holds when the machine's speed drifts.

    python benchmarks/cli_latency.py --runs 5 [--peer /path/to/other/.venv/bin/mlops]
    python benchmarks/cli_latency.py --build-only /tmp/cli-home   # keep a home to time by hand
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

COMMANDS = (["contributions"], ["model", "show"], ["verify", "{latest}"])


def build_home(root: Path) -> tuple[dict[str, str], str]:
    """A home with v1 (cold start), three valued contributions and a rejected one, and its
    Dagster instance; returns the environment of the commands and the latest version."""
    from mlops_assets.process import apply_process_defaults
    from mlops_assets_testing.pipeline import deployment, small_home

    apply_process_defaults()
    with deployment(root) as pipeline:
        latest = small_home(pipeline)
    home = pipeline.home
    return {"MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}, latest


def time_command(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peer", type=Path, help="another installation's mlops, timed in turn")
    parser.add_argument("--build-only", type=Path, help="build a home here, print its env, stop")
    args = parser.parse_args()

    if args.build_only:
        env, latest = build_home(args.build_only)
        print(" ".join(f"{k}={v}" for k, v in env.items()), f"# latest version: v{latest}")
        return
    ours = Path(sys.executable).parent / "mlops"
    with tempfile.TemporaryDirectory() as tmp:
        home_env, latest = build_home(Path(tmp))
        env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, **home_env}
        print(f"Machine: {platform.machine()}, {os.cpu_count()} cores. Date: {date.today()}.")
        print(f"{args.runs} runs after one warm-up; median (min-max) seconds\n")
        print("| command | this checkout | peer | ratio |")
        print("|---|---:|---:|---:|")
        for words in COMMANDS:
            words = [w.format(latest=latest) for w in words]
            mine, peer = [], []
            for run in range(args.runs + 1):
                a = time_command([str(ours), *words], env)
                b = time_command([str(args.peer), *words], env) if args.peer else None
                if run:  # the first pair warms the page cache
                    mine.append(a)
                    if b is not None:
                        peer.append(b)

            def shown(times: list[float]) -> str:
                if not times:
                    return ""
                return f"{statistics.median(times):.2f} ({min(times):.2f}-{max(times):.2f})"

            ratio = (
                f"{statistics.median([a / b for a, b in zip(mine, peer, strict=True)]):.2f}"
                if peer
                else ""
            )
            print(f"| `mlops {' '.join(words)}` | {shown(mine)} | {shown(peer)} | {ratio} |")


if __name__ == "__main__":
    main()
