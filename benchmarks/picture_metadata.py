"""What the pictures cost: bytes in Dagster's event log per materialization, and drawing time.

Builds a small home (the cold-start champion, three contributions valued in one retrain, a
rejected one), then reads the latest ``trained_model`` materialization and each
``contributed_data`` one as Dagster stores them (the serialized event), and prints the bytes
of the whole event, of its pictures and of each picture; then times drawing the two
pictures that come from metadata alone, in a process that has drawn before and in a fresh one
(matplotlib's import included).

    python benchmarks/picture_metadata.py
"""

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg


def main() -> None:
    from dagster._serdes import serialize_value

    from mlops_assets.process import apply_process_defaults
    from mlops_assets_testing.pipeline import deployment, small_home

    apply_process_defaults()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores. Date: {date.today()}.\n")
    print("| materialization | event bytes | pictures | picture bytes (PNG + base64) | each PNG |")
    print("|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp, deployment(Path(tmp)) as pipeline:
        small_home(pipeline)
        events = [
            (
                "trained_model",
                pipeline.instance.get_latest_materialization_event(dg.AssetKey("trained_model")),
            )
        ]
        for record in pipeline.instance.fetch_materializations(
            dg.AssetKey("contributed_data"), limit=10
        ).records:
            events.append(
                (f"contributed_data {record.partition_key[:22]}…", record.event_log_entry)
            )
        for name, event in events:
            metadata = event.asset_materialization.metadata
            pictures = {k: v.value for k, v in metadata.items() if k.endswith("_plot")}
            sizes = [len(m) for m in pictures.values()]
            png = [round(len(m) * 3 / 4 / 1000, 1) for m in pictures.values()]
            print(
                f"| {name} | {len(serialize_value(event)):,} | {len(pictures)} | {sum(sizes):,} "
                f"| {', '.join(f'{p} KB' for p in png)} |"
            )
        trained = {
            k: v.value
            for k, v in pipeline.instance.get_latest_materialization_event(
                dg.AssetKey("trained_model")
            ).asset_materialization.metadata.items()
        }
    warm = []
    for _ in range(5):
        started = time.perf_counter()
        draw(trained)
        warm.append(time.perf_counter() - started)
    cold = subprocess.run(
        [sys.executable, "-c", COLD],
        input=repr(trained["delta_intervals"]),
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    print(
        f"\nDrawing metric_deltas + contribution_values: {statistics.median(warm):.2f} s in a "
        f"process that has drawn before (median of 5), {cold} s in a fresh one (matplotlib's "
        "import included)."
    )


def draw(trained: dict) -> None:
    from mlops_assets.core.modeling.evaluation import LOWER_IS_BETTER
    from mlops_assets.core.reporting import plots

    plots.metric_deltas(trained["delta_intervals"], lower_is_better=LOWER_IS_BETTER)
    plots.contribution_values(trained["valuation"]["values"], metric="log_loss")


COLD = """
import ast, sys, time
started = time.perf_counter()
from mlops_assets.core.modeling.evaluation import LOWER_IS_BETTER
from mlops_assets.core.reporting import plots
plots.metric_deltas(ast.literal_eval(sys.stdin.read()), lower_is_better=LOWER_IS_BETTER)
print(f"{time.perf_counter() - started:.2f}")
"""


if __name__ == "__main__":
    main()
