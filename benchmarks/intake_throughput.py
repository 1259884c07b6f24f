"""Intake throughput and peak memory on generated iris-shaped CSVs, next to polars and pandas.

For each size, a CSV is generated (by DuckDB, quickly), then three subprocesses run on it in
turn: ``mlops_assets`` intake (independent record count, dialect sniffing, read, map, PII scan,
validate, dedupe, outliers, score, write clean and rejected Parquet), the fastest peer pipeline
we know, polars streaming (``scan_csv`` -> cast -> range/label filter -> ``unique`` ->
``sink_parquet``, no quarantine, no reasons), and a naive pandas one (``read_csv`` +
``drop_duplicates`` + ``to_parquet``). Wall time and peak RSS are measured per process; the
intake's own per-step timings (``report.timings``) show where its time goes.

    python benchmarks/intake_throughput.py --sizes-mb 400 1000 4000 --engines mlops polars

The last line printed is the ratio of our throughput to polars' per size (same run).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from mlops_assets.settings import REPO_ROOT

BYTES_PER_ROW = 29  # "6.12,3.04,4.57,1.41,versicolor\n" on average

OURS = """
import json
import sys
from pathlib import Path
from mlops_assets.core.intake.intake import intake_contribution
from mlops_assets.core.intake.report import IntakePolicy
from mlops_assets.core.data.reference_data import load_reference_data
from mlops_assets.settings import REPO_ROOT
from mlops_assets.task import IRIS
reference = load_reference_data(REPO_ROOT / "data" / "iris.csv", IRIS).frame
report = intake_contribution(Path(sys.argv[1]), IRIS, reference=reference, contribution_id="b",
    contributor="bench", policy=IntakePolicy(), output_dir=Path(sys.argv[2]))
print(json.dumps(report.timings))
"""

POLARS = """
import sys
import polars as pl
features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ranges = [(0.1, 15.0), (0.1, 10.0), (0.1, 12.0), (0.01, 5.0)]
frame = pl.scan_csv(sys.argv[1], infer_schema=False).with_columns(
    [pl.col(f).cast(pl.Float64, strict=False) for f in features]
)
valid = pl.all_horizontal([pl.col(f).is_between(lo, hi) for f, (lo, hi) in zip(features, ranges)])
frame = frame.filter(valid & pl.col("species").is_in(["setosa", "versicolor", "virginica"]))
frame.unique().sink_parquet(sys.argv[2] + "/clean.parquet")
"""

PANDAS = """
import sys
import pandas as pd
frame = pd.read_csv(sys.argv[1]).drop_duplicates()
frame.to_parquet(sys.argv[2] + "/clean.parquet", index=False)
print(len(frame))
"""


def generate(path: Path, megabytes: int) -> None:
    """Iris-shaped rows: each class's features drawn from a normal distribution with that
    class's mean and standard deviation in data/iris.csv, at two decimals (so few rows repeat
    by chance), and one row in 10,000 with an unreadable value."""
    import duckdb

    rows = megabytes * 1_000_000 // BYTES_PER_ROW
    iris = REPO_ROOT / "data" / "iris.csv"
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    stats = ", ".join(f"avg({f}) AS m_{f}, stddev_samp({f}) AS s_{f}" for f in features)
    # Box-Muller: a standard normal draw from two uniform ones.
    drawn = ", ".join(
        f"round(greatest(0.1, m_{f} + s_{f} * sqrt(-2 * ln(1 - random())) "
        f"* cos(2 * pi() * random())), 2) AS {f}"
        for f in features
    )
    duckdb.sql(f"""
        COPY (
            WITH classes AS (
                SELECT species, row_number() OVER (ORDER BY species) - 1 AS c, {stats}
                FROM read_csv('{iris}') GROUP BY species
            ),
            drawn AS (
                SELECT i, {drawn}, species
                FROM range({rows}) AS t(i) JOIN classes ON classes.c = i % 3
            )
            SELECT sepal_length,
                CASE WHEN i % 10000 = 7 THEN 'n/a' ELSE sepal_width::VARCHAR END AS sepal_width,
                petal_length, petal_width, species
            FROM drawn ORDER BY i
        ) TO '{path}' (HEADER, DELIMITER ',')
    """)


def run(code: str, source: Path, out: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, what it printed) of ``code`` run in a fresh Python process
    (GNU time -f %M)."""
    out.mkdir()
    start = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-c", code, str(source), str(out)],
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"failed on {source}:\n{result.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    return seconds, int(result.stderr.strip().splitlines()[-1]) / 1024, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[200, 1000])
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["mlops", "polars", "naive"],
        help="which of mlops, polars, naive (naive pandas needs 4x the file in memory)",
    )
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    print("| file | engine | seconds | MB/s | peak RSS (MB) |")
    print("|---|---|---:|---:|---:|")
    results, steps = [], []
    for megabytes in args.sizes_mb:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "contribution.csv"
            generate(source, megabytes)
            size = source.stat().st_size / 1e6
            engines = (
                ("mlops_assets (DuckDB)", OURS),
                ("polars streaming", POLARS),
                ("naive pandas", PANDAS),
            )
            for engine, code in engines:
                if not engine.startswith(tuple(args.engines)):
                    continue
                seconds, rss, printed = run(code, source, Path(tmp) / engine.split()[0])
                results.append((megabytes, engine, seconds, size / seconds, rss))
                rate = size / seconds
                print(f"| {size:.0f} MB | {engine} | {seconds:.1f} | {rate:.1f} | {rss:.0f} |")
                if engine.startswith("mlops"):
                    steps.append((size, json.loads(printed)))
    for size, timings in steps:
        shown = ", ".join(f"{step} {seconds}" for step, seconds in timings.items())
        print(f"intake steps at {size:.0f} MB (s): {shown}")
    print(json.dumps(results))
    seconds = {(size, engine.split()[0]): s for size, engine, s, *_ in results}
    ratios = {
        size: round(seconds[size, "polars"] / seconds[size, "mlops_assets"], 2)
        for size, engine in seconds
        if engine == "polars" and (size, "mlops_assets") in seconds
    }
    print("throughput ratio mlops_assets / polars streaming, per MB size:", ratios)


if __name__ == "__main__":
    main()
