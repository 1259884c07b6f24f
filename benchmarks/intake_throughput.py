"""Intake throughput and peak memory on generated iris-shaped CSVs, next to polars and pandas.

For each size, a CSV is generated (by DuckDB, quickly), then subprocesses run on it in
turn: ``mlops_assets`` intake (independent record count, dialect sniffing, read, map, PII scan,
validate, dedupe, outliers, score, write clean and rejected Parquet), the fastest peer pipeline
we know, polars streaming (``scan_csv`` -> cast -> range/label filter -> ``unique`` ->
``sink_parquet``, no quarantine, no reasons), the same peer made to keep what we keep
(``polars-quarantine``: every rejected row with its original text and reason, rows equal at
the task's resolution as duplicates; still less than we do: no neighbouring cells, reference,
benchmark, outliers, personal data or record count), and a naive pandas one (``read_csv`` +
``drop_duplicates`` + ``to_parquet``). Wall time and peak RSS are measured per process; the
intake's own per-step timings (``report.timings``) show where its time goes.

    python benchmarks/intake_throughput.py --sizes-mb 400 1000 4000 \
        --engines mlops polars polars-quarantine [--memory-cap-gb 2]

``--memory-cap-gb`` runs every process in a memory cgroup of that size (as root): a process
that needs more is killed, and its line says so. The last lines printed are the ratios of our
throughput to each peer's per size (same run).
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

# Polars keeping what the intake keeps: the rows rejected by value, and the rows after the
# first of their cell at the task's resolution (0.1 cm), go to a quarantine with their original
# text and reason; both files written by one streaming query.
POLARS_QUARANTINE = """
import sys
import polars as pl
features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ranges = [(0.1, 15.0), (0.1, 10.0), (0.1, 12.0), (0.01, 5.0)]
text = pl.scan_csv(sys.argv[1], infer_schema=False).with_row_index("row_index")
typed = text.with_columns(
    [pl.col(f).str.strip_chars().cast(pl.Float64, strict=False).alias("_" + f) for f in features]
    + [pl.col("species").str.strip_chars().str.to_lowercase().alias("_species")]
)
reasons = [
    pl.when(pl.col("_" + f).is_null()).then(pl.lit("not_numeric:" + f))
    .when(~pl.col("_" + f).is_between(lo, hi)).then(pl.lit("out_of_range:" + f))
    for f, (lo, hi) in zip(features, ranges)
] + [pl.when(~pl.col("_species").is_in(["setosa", "versicolor", "virginica"]))
     .then(pl.lit("unknown_label"))]
judged = typed.with_columns(pl.concat_str(reasons, separator=";", ignore_nulls=True).alias("why"))
cells = [(pl.col("_" + f) / 0.1).round().cast(pl.Int32).alias("c_" + f) for f in features]
firsts = (
    judged.filter(pl.col("why") == "").with_columns(cells)
    .group_by(["c_" + f for f in features] + ["_species"]).agg(pl.col("row_index").min())
    .select("row_index", pl.lit(True).alias("_clean"))
)
out = judged.join(firsts, on="row_index", how="left").with_columns(
    pl.col("_clean").fill_null(False)
).with_columns(
    pl.when(pl.col("why") == "").then(pl.lit("duplicate_in_contribution"))
    .otherwise(pl.col("why")).alias("why")
)
clean = out.filter("_clean").select(
    ["row_index"]
    + [pl.col("_" + f).alias(f) for f in features]
    + [pl.col("_species").alias("species")]
)
rejected = out.filter(~pl.col("_clean")).select(
    ["row_index"] + features + ["species", pl.col("why").alias("rejection_reasons")]
)
pl.collect_all([
    clean.sink_parquet(sys.argv[2] + "/clean.parquet", lazy=True),
    rejected.sink_parquet(sys.argv[2] + "/rejected.parquet", lazy=True),
], engine="streaming")
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


ENGINES = {  # name on the command line: (name in the table, code)
    "mlops": ("mlops_assets (DuckDB)", OURS),
    "polars": ("polars streaming", POLARS),
    "polars-quarantine": ("polars with a quarantine", POLARS_QUARANTINE),
    "naive": ("naive pandas", PANDAS),
}
KILLED = -9  # the return code of a process the kernel killed for exceeding its memory cap


def memory_cgroup(gigabytes: float) -> Path:
    """A memory cgroup (v1 or v2) capping its processes at ``gigabytes``; root only."""
    name = f"intake_throughput_{os.getpid()}"
    for root, limit in (
        ("/sys/fs/cgroup/memory", "memory.limit_in_bytes"),
        ("/sys/fs/cgroup", "memory.max"),
    ):
        if Path(root, limit).exists() or Path(root, "cgroup.controllers").exists():
            group = Path(root, name)
            group.mkdir(exist_ok=True)
            (group / limit).write_text(str(int(gigabytes * 2**30)))
            return group
    raise SystemExit("--memory-cap-gb needs a memory cgroup (cgroup v1 or v2) and root")


def run(
    code: str, source: Path, out: Path, cgroup: Path | None = None
) -> tuple[float, float | None, str]:
    """(seconds, peak RSS in MB or None when killed over the memory cap, what it printed) of
    ``code`` run in a fresh Python process (GNU time -f %M), in ``cgroup`` if given."""
    out.mkdir()

    def enter_cgroup() -> None:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    start = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-c", code, str(source), str(out)],
        capture_output=True,
        text=True,
        preexec_fn=enter_cgroup,
    )
    if cgroup is not None and (result.returncode == KILLED or "signal 9" in result.stderr):
        return time.perf_counter() - start, None, ""
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
        choices=list(ENGINES),
        default=["mlops", "polars", "naive"],
        help="naive pandas needs 4x the file in memory",
    )
    parser.add_argument("--memory-cap-gb", type=float, help="run every process under this cap")
    args = parser.parse_args()
    cgroup = memory_cgroup(args.memory_cap_gb) if args.memory_cap_gb else None
    cap = f"; every process capped at {args.memory_cap_gb:g} GB" if cgroup else ""
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}{cap}")
    print("| file | engine | seconds | MB/s | peak RSS (MB) |")
    print("|---|---|---:|---:|---:|")
    results, steps = [], []
    for megabytes in args.sizes_mb:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "contribution.csv"
            generate(source, megabytes)
            size = source.stat().st_size / 1e6
            for key in args.engines:
                engine, code = ENGINES[key]
                seconds, rss, printed = run(code, source, Path(tmp) / key, cgroup)
                if rss is None:
                    print(f"| {size:.0f} MB | {engine} | killed after {seconds:.1f} | - | > cap |")
                    continue
                results.append((megabytes, key, seconds, size / seconds, rss))
                rate = size / seconds
                print(f"| {size:.0f} MB | {engine} | {seconds:.1f} | {rate:.1f} | {rss:.0f} |")
                if key == "mlops":
                    steps.append((size, json.loads(printed)))
    for size, timings in steps:
        shown = ", ".join(f"{step} {seconds}" for step, seconds in timings.items())
        print(f"intake steps at {size:.0f} MB (s): {shown}")
    print(json.dumps(results))
    if cgroup is not None:
        cgroup.rmdir()
    seconds = {(size, key): s for size, key, s, *_ in results}
    for peer in ("polars", "polars-quarantine", "naive"):
        ratios = {
            size: round(seconds[size, peer] / seconds[size, "mlops"], 2)
            for size, key in seconds
            if key == peer and (size, "mlops") in seconds
        }
        if ratios:
            print(f"throughput ratio mlops_assets / {ENGINES[peer][0]}, per MB size:", ratios)


if __name__ == "__main__":
    main()
