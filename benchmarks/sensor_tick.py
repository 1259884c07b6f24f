"""Time of one ``contribution_sensor`` tick over a landing zone holding 10,000 files.

Steady state: every file but the last few has been taken already (its partition exists), as
in a zone that grew over months. Measured for a local folder and for S3 (a moto server on
127.0.0.1), each tick invoked on a real Dagster instance exactly as the daemon would.

    python benchmarks/sensor_tick.py --files 10000
"""

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg

from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.definitions import build_definitions
from mlops_assets.resources import LandingZone, LocalLandingZone, intake_settings
from mlops_assets.settings import Settings

NEW_FILES = 5  # files not taken yet when the ticks are timed
BODY = b"sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n"


def relative_paths(count: int) -> list[str]:
    return [f"contributor{i % 100:03d}/batch-{i:05d}.csv" for i in range(count)]


def time_ticks(zone: LandingZone, instance: dg.DagsterInstance, repeats: int) -> list[float]:
    settings = Settings.from_env({"MLOPS_HOME": tempfile.gettempdir()})
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("contribution_sensor")
    resources = {"landing": zone, "intake_policy": intake_settings(settings)}
    seconds = []
    for _ in range(repeats):
        with dg.build_sensor_context(
            instance=instance, resources=resources, definitions=defs
        ) as context:
            start = time.perf_counter()
            result = sensor(context)
            seconds.append(time.perf_counter() - start)
        assert len(result.run_requests) == NEW_FILES, result
    return seconds


def take_all_but_the_newest(instance: dg.DagsterInstance, paths: list[str]) -> None:
    # The sensor waits for the iris data contributions are judged against.
    instance.report_runless_asset_event(dg.AssetMaterialization("iris_dataset"))
    instance.add_dynamic_partitions("contributions", [contribution_key(p) for p in paths])


def local(count: int, repeats: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        paths = relative_paths(count)
        old = time.time() - 3600
        for relative in paths:
            path = Path(tmp) / relative
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(BODY + relative.encode() + b"\n")
            os.utime(path, (old, old))
        take_all_but_the_newest(instance, paths[:-NEW_FILES])
        return time_ticks(LocalLandingZone(root=tmp), instance, repeats)


def s3(count: int, repeats: int) -> list[float]:
    import boto3
    from dagster_aws.s3 import S3Resource
    from moto.server import ThreadedMotoServer

    from mlops_assets.resources.s3 import S3LandingZone

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="landing")
        paths = relative_paths(count)
        for relative in paths:
            client.put_object(Bucket="landing", Key=f"in/{relative}", Body=BODY)
        zone = S3LandingZone(bucket="landing", prefix="in", s3=S3Resource(endpoint_url=endpoint))
        with dg.instance_for_test() as instance:
            take_all_but_the_newest(instance, paths[:-NEW_FILES])
            # Same bytes in every object: only the newest is "new" content; give the others
            # distinct ETags by writing distinct bodies.
            for relative in paths[-NEW_FILES:]:
                client.put_object(
                    Bucket="landing", Key=f"in/{relative}", Body=BODY + relative.encode()
                )
            return time_ticks(zone, instance, repeats)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    print("| landing zone | files | ticks | median (s) | max (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, measure in (("local folder", local), ("S3 (moto on 127.0.0.1)", s3)):
        seconds = measure(args.files, args.repeats)
        print(
            f"| {name} | {args.files} | {len(seconds)} | "
            f"{statistics.median(seconds):.3f} | {max(seconds):.3f} |"
        )


if __name__ == "__main__":
    main()
