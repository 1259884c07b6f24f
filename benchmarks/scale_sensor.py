"""``contribution_sensor`` at scale (issue 29): one tick over a local landing zone holding 1k,
10k and 100k files already taken plus 10 new ones, the cursor it leaves, and how much the
embedded SQLite instance grows per day from the ticks the daemon stores.

Steady state: every old file has been taken (its partition exists), it and its folder were
last modified a day ago, and the cursor is the one a tick over them leaves, as in a zone that
grew over months. The timed ticks come at the daemon's interval (``--interval``, 5 s) for
about a minute and a half, so the contributor folders' kept listings expire and are listed
again as in a running code server; the first tick (every folder listed, as after a restart)
is shown apart. The tick is the sensor invoked on
a real Dagster instance on disk (``docker/dagster.embedded.yaml``), exactly as the daemon
would. Storage: the instance's files (``schedules/``, with its WAL), or with ``--postgres`` the
database's size (vacuumed every ten ticks, as autovacuum keeps up), measured before and after
``--ticks`` skipped ticks written as the daemon writes each one (a STARTED tick, the same
tick SKIPPED with its reason and cursor, the sensor's state with the cursor), extrapolated to
a day at the default interval (``MLOPS_SENSOR_INTERVAL`` 5 s: 17,280 ticks).

    python benchmarks/scale_sensor.py --files 1000 10000 100000 [--postgres]

Run it against another checkout's code with ``PYTHONPATH=<checkout>`` (the "before" numbers).
"""

import argparse
import contextlib
import logging
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg
from dagster._core.definitions.sensor_definition import SensorType
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    SensorInstigatorData,
    TickData,
    TickStatus,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

import mlops_assets
from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.definitions import build_definitions
from mlops_assets.resources import LocalLandingZone, intake_settings
from mlops_assets.settings import Settings
from mlops_assets_testing.topology import postgres_databases

REPO = Path(__file__).resolve().parent.parent
NEW_FILES = 10
TICKS_PER_DAY = 24 * 3600 // 5
BODY = b"sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n"


def relative_paths(count: int, prefix: str = "batch") -> list[str]:
    return [f"contributor{i % 100:03d}/{prefix}-{i:06d}.csv" for i in range(count)]


def write(root: Path, paths: list[str], mtime: float) -> None:
    for relative in paths:
        path = root / relative
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(BODY + relative.encode() + b"\n")  # distinct bytes, distinct runs
        os.utime(path, (mtime, mtime))


def tick(sensor, defs, instance, resources, cursor):
    with dg.build_sensor_context(
        instance=instance, resources=resources, cursor=cursor, definitions=defs
    ) as context:
        start, cpu = time.perf_counter(), time.process_time()
        result = sensor(context)
        return (time.perf_counter() - start, time.process_time() - cpu), result


def write_skipped_ticks(
    instance, ticks: int, cursor: str, reason: str, every_ten: Callable[[], object]
) -> None:
    """What the daemon writes for each skipped tick of ``contribution_sensor``, calling
    ``every_ten`` after each ten."""
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="mlops_assets.definitions"), location_name="bench"
    )
    origin = RemoteInstigatorOrigin(
        RemoteRepositoryOrigin(location, "__repository__"), "contribution_sensor"
    )
    selector_id = "bench-selector"
    state = InstigatorState(
        origin,
        InstigatorType.SENSOR,
        InstigatorStatus.RUNNING,
        SensorInstigatorData(min_interval=5, cursor=None, sensor_type=SensorType.STANDARD),
    )
    instance.add_instigator_state(state)
    for written in range(1, ticks + 1):
        now = time.time()
        started = instance.create_tick(
            TickData(
                instigator_origin_id=origin.get_id(),
                instigator_name="contribution_sensor",
                instigator_type=InstigatorType.SENSOR,
                status=TickStatus.STARTED,
                timestamp=now,
                selector_id=selector_id,
            )
        )
        instance.update_tick(
            started.with_status(TickStatus.SKIPPED).with_reason(reason).with_cursor(cursor)
        )
        state = state.with_data(
            SensorInstigatorData(
                last_tick_timestamp=now,
                min_interval=5,
                cursor=cursor,
                last_tick_start_timestamp=now,
                sensor_type=SensorType.STANDARD,
                last_tick_success_timestamp=now,
            )
        )
        instance.update_instigator_state(state)
        if written % 10 == 0:
            every_ten()


@contextlib.contextmanager
def instance_storage(dagster_home: Path, postgres: str | None) -> Iterator[Callable[[], int]]:
    """The embedded instance's ``dagster.yaml`` in ``dagster_home`` (SQLite), or one whose
    storage is the fresh PostgreSQL database ``postgres``; yields how to measure its size."""
    shutil.copy(REPO / "docker" / "dagster.embedded.yaml", dagster_home / "dagster.yaml")
    if postgres is None:
        yield lambda: sum(p.stat().st_size for p in dagster_home.rglob("*") if p.is_file())
        return
    import psycopg2

    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{postgres}"
    with (dagster_home / "dagster.yaml").open("a") as config:
        config.write(f"storage:\n  postgres:\n    postgres_url: {url}\n")
    with postgres_databases(postgres):
        connection = psycopg2.connect(host="127.0.0.1", dbname=postgres, user="postgres")
        connection.autocommit = True

        def size() -> int:
            with connection.cursor() as cursor:
                # What autovacuum does: dead row versions (each tick's STARTED row, each
                # previous sensor state) made reusable, so only live rows count as growth.
                cursor.execute("VACUUM")
                cursor.execute("SELECT pg_database_size(current_database())")
                return cursor.fetchone()[0]

        try:
            yield size
        finally:
            connection.close()


def measure(
    count: int, repeats: int, interval: float, ticks: int, max_bytes: int, postgres: bool
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        landing, dagster_home = Path(tmp) / "landing", Path(tmp) / "dagster"
        landing.mkdir()
        dagster_home.mkdir()
        database = f"sensor_bench_{count}_{os.getpid()}" if postgres else None
        storage_bytes = stack.enter_context(instance_storage(dagster_home, database))
        settings = Settings.from_env({"MLOPS_HOME": tmp, "MLOPS_LANDING_URI": str(landing)})
        defs = build_definitions(settings)
        sensor = defs.resolve_sensor_def("contribution_sensor")
        resources = {
            "landing": LocalLandingZone(root=str(landing)),
            "intake_policy": intake_settings(settings),
        }
        old = relative_paths(count)
        long_ago = time.time() - 86_400
        write(landing, old, long_ago)  # taken long ago
        for folder in landing.iterdir():  # and nothing added to their folders since
            os.utime(folder, (long_ago, long_ago))
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            instance.report_runless_asset_event(dg.AssetMaterialization("iris_dataset"))
            keys = [contribution_key(p) for p in old]
            for start in range(0, len(keys), 5000):  # SQLite's variable limit
                instance.add_dynamic_partitions("contributions", keys[start : start + 5000])
            # The cursor a tick over the taken files leaves: the steady state. This first
            # tick lists every folder (as after a restart of the code server).
            (first, _), steady = tick(sensor, defs, instance, resources, None)
            write(landing, relative_paths(NEW_FILES, "new"), time.time() - 60)
            seconds, cpu = [], []
            for _ in range(repeats):
                # At the daemon's interval, so the folders' kept listings expire and are
                # listed again as they would (every 30-60 s each).
                time.sleep(max(0.0, interval - sum(seconds[-1:])))
                (elapsed, used), result = tick(sensor, defs, instance, resources, steady.cursor)
                assert len(result.run_requests) == NEW_FILES, result
                seconds.append(elapsed)
                cpu.append(used)
            instance.add_dynamic_partitions(
                "contributions", [r.partition_key for r in result.run_requests]
            )
            _, skipped = tick(sensor, defs, instance, resources, result.cursor)
            assert not skipped.run_requests, skipped
            reason = skipped.skip_reason.skip_message
            # Fewer ticks when a large cursor would write more than ``max_bytes``.
            ticks = min(ticks, max(10, max_bytes // (2 * len(skipped.cursor))))
            before = storage_bytes()
            write_skipped_ticks(instance, ticks, skipped.cursor, reason, storage_bytes)
            grown = storage_bytes() - before
        return {
            "first": first,
            "median": statistics.median(seconds),
            "max": max(seconds),
            "cpu": statistics.median(cpu),
            "cursor": len(skipped.cursor),
            "ticks": ticks,
            "per_tick": grown / ticks,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=19, help="timed ticks")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between timed ticks (the daemon's)"
    )
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=2_000_000_000,
        help="write fewer skipped ticks when they would write more than this many bytes",
    )
    parser.add_argument(
        "--postgres", action="store_true", help="the instance's storage on PostgreSQL"
    )
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)  # the sensor's log of new files
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print(f"code: {Path(mlops_assets.__file__).parent.parent}")
    print(f"instance storage: {'PostgreSQL' if args.postgres else 'SQLite'}")
    print(
        "| files taken | new | first tick (s) | tick median (s) | tick max (s) | tick CPU (s) "
        "| cursor (bytes) | ticks written | bytes per tick | growth per day (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in args.files:
        row = measure(count, args.repeats, args.interval, args.ticks, args.max_bytes, args.postgres)
        print(
            f"| {count} | {NEW_FILES} | {row['first']:.3f} | {row['median']:.3f} | "
            f"{row['max']:.3f} | {row['cpu']:.3f} | {row['cursor']} | {row['ticks']} | "
            f"{row['per_tick']:.0f} | "
            f"{row['per_tick'] * TICKS_PER_DAY / 1e6:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
