"""The production deployment in Docker containers, measured: the image's build time and size,
`compose up` until every service is healthy, a contribution from landing to being served with
every run in a container of its own (docker/docker-compose.yml with docker-compose.host.yml,
see mlops_assets_testing/docker_topology.py) next to the embedded default (`dagster dev` and
`mlops serve` as processes, the same machine, the same run), and what launching a run costs in
each: from the run launcher being called (RUN_STARTING) to the run's first event from its
worker (RUN_START).

Both deployments pin a depth-1 tree as the baseline, so every candidate becomes the champion
the API must switch to (as benchmarks/topology_latency.py does).

    python benchmarks/docker_deployment.py --contributions 3
"""

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg
from moto.server import ThreadedMotoServer
from topology_latency import embedded, time_contributions

from mlops_assets_testing.docker_host import (
    IMAGE,
    build_base_image,
    build_image,
    docker_engine,
)
from mlops_assets_testing.docker_topology import compose_topology, put_in_state_volume
from mlops_assets_testing.processes import free_port, wait_for
from mlops_assets_testing.topology import write_stump

TRUSTED = "/opt/mlops/var/trusted"


def launch_overheads(instance: dg.DagsterInstance) -> list[float]:
    """Seconds from RUN_STARTING to RUN_START of every run the instance holds."""
    overheads = []
    for record in instance.get_run_records():
        stats = instance.get_run_stats(record.dagster_run.run_id)
        if stats.launch_time and stats.start_time:
            overheads.append(stats.start_time - stats.launch_time)
    return overheads


def embedded_deployment(workdir: Path, count: int, settings: dict, stump: Path) -> dict:
    pinned = {"MLOPS_BASELINE_SOURCE": str(stump), "MLOPS_TRUSTED_MODEL_DIR": str(stump.parent)}
    latencies = embedded(workdir, count, settings | pinned, tell_api=True)
    with dg.DagsterInstance.from_config(str(workdir / "dagster")) as instance:
        return {"latencies": latencies, "launch": launch_overheads(instance)}


def container_deployment(workdir: Path, count: int, settings: dict, stump: Path) -> dict:
    """The compose topology (it tells its API, MLOPS_API_URL of docker/.env.example), timed
    from `up` on empty databases, then three contributions, then `down` and `up` again."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    s3_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3_server.start()
    pinned = {
        "MLOPS_BASELINE_SOURCE": f"{TRUSTED}/{stump.name}",
        "MLOPS_TRUSTED_MODEL_DIR": TRUSTED,
    }
    try:
        with compose_topology(
            workdir, f"http://127.0.0.1:{port}", "mlops", **settings, **pinned
        ) as (topology, containers):
            put_in_state_volume(stump, f"{TRUSTED}/{stump.name}")
            start = time.monotonic()
            up = containers.up()
            wait_for(topology.served_version, timeout=900, what="a first champion", poll=1)
            first_served = time.monotonic() - start
            latencies = time_contributions(
                count,
                lambda relative, text: topology.put(f"landing/{relative}", text.encode()),
                topology.api_url,
                topology.tracking_uri,
                containers.check,
            )
            rows = topology.query(
                "SELECT run_id, dagster_event_type, timestamp FROM event_logs "
                "WHERE dagster_event_type IN ('PIPELINE_STARTING', 'PIPELINE_START')"
            )
            events: dict[str, dict[str, float]] = {}
            for run_id, kind, at in rows:
                events.setdefault(run_id, {})[kind] = at.timestamp()
            launch = [
                e["PIPELINE_START"] - e["PIPELINE_STARTING"] for e in events.values() if len(e) == 2
            ]
            containers.compose("down", "--timeout", "20")
            again = containers.up()
            return {
                "latencies": latencies,
                "launch": launch,
                "up": up,
                "first_served": first_served,
                "up_again": again,
            }
    finally:
        s3_server.stop()


def summary(values: list[float]) -> str:
    return (
        f"{statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} | {len(values)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contributions", type=int, default=3)
    parser.add_argument("--sensor-interval", type=int, default=5)
    parser.add_argument("--api-poll-seconds", type=int, default=10)
    parser.add_argument(
        "--cold-build", action="store_true", help="also time a build without the layer cache"
    )
    parser.add_argument("--only", choices=["embedded", "containers"], help="one deployment")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, docker_engine(Path(tmp) / "logs"):
        base_seconds = build_base_image(Path(tmp))
        cold = build_image(no_cache=True) if args.cold_build else None
        cached = build_image()
        results = {}
        settings = {
            "MLOPS_SENSOR_INTERVAL": str(args.sensor_interval),
            "MLOPS_API_POLL_SECONDS": str(args.api_poll_seconds),
        }
        for name, deployment in (
            ("embedded (dagster dev, processes)", embedded_deployment),
            ("containers (compose, a container per run)", container_deployment),
        ):
            if args.only and not name.startswith(args.only):
                continue
            workdir = Path(tempfile.mkdtemp(dir=tmp))
            stump = write_stump(workdir / "trusted" / "stump.joblib")
            print(f"{name}:", flush=True)
            results[name] = deployment(workdir, args.contributions, settings, stump)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    print(f"sensor interval {args.sensor_interval} s, API poll {args.api_poll_seconds} s\n")
    print("| image | seconds | size (MB) |\n|---|---:|---:|")
    if base_seconds:
        print(f"| local Debian base (debootstrap + docker import) | {base_seconds:.0f} | |")
    if cold:
        print(f"| {IMAGE}, no cache | {cold.seconds:.0f} | {cold.size_bytes / 1e6:.0f} |")
    print(f"| {IMAGE}, cached | {cached.seconds:.1f} | {cached.size_bytes / 1e6:.0f} |\n")
    containers = next((r for n, r in results.items() if n.startswith("containers")), None)
    if containers:
        print_compose(containers)
    print("| deployment | measure | median (s) | min (s) | max (s) | n |")
    print("|---|---|---:|---:|---:|---:|")
    for name, result in results.items():
        print(f"| {name} | landed → served | {summary(result['latencies'])} |")
        print(f"| {name} | run launch (STARTING → START) | {summary(result['launch'])} |")


def print_compose(containers: dict) -> None:
    print("| compose | seconds |\n|---|---:|")
    print(f"| `up` on empty databases, until every service is healthy | {containers['up']:.0f} |")
    print(
        f"| ... until the API serves v1 (the pinned baseline) | {containers['first_served']:.0f} |"
    )
    print(f"| `down`, then `up` again, until healthy | {containers['up_again']:.0f} |\n")


if __name__ == "__main__":
    main()
