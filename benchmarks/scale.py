"""What one more contribution costs at 1k, 10k and 100k accepted contributions (issue 29).

Fills a contribution catalog (SQLite in an embedded home, or PostgreSQL with ``--postgres``)
with N accepted contributions of 20 rows each, new iris-like flowers measured to 0.1 cm (so
rows spread over the cells as real measurements do), their reports, and a landing zone with
their files: two minutes apart, each taken in within seconds, but the last 256 together (a
retrain's batch, whose intakes could not see each other); then measures:

- one more intake (``process_contribution`` of a 21-row file: wall and CPU seconds);
- the retrain's data side (``load_accepted`` + ``integrate``), time and peak RSS, in a
  fresh process: the first (no copy of the accepted rows yet), and one as every later is
  (the copy the retrain before the last batch wrote, that batch read beside it);
- ``mlops contributions --limit 50 --json`` (the first page), in a fresh process.

Every size is built first; then each measure is taken in turns over the sizes, ``ROUNDS``
times (medians), so that load from elsewhere on the machine falls on every size alike.

    python benchmarks/scale.py --sizes 1000 10000 100000 [--postgres]
"""

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mlops_assets.core.catalog.catalog import _IMPORTED, DONE, ContributionCatalog
from mlops_assets.core.common.row_matching import RowMatching
from mlops_assets.core.data.reference_data import benchmark_split, load_reference_data
from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.core.intake.processing import process_contribution
from mlops_assets.core.intake.report import ContributionReport, IntakePolicy
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV, new_flowers
from mlops_assets_testing.topology import postgres_databases

ROWS_PER_CONTRIBUTION = 20
BATCH = 256  # contributions that land together before a retrain
ROUNDS = 5  # turns over the sizes for each measure (medians)


def flowers(n: int, seed: int) -> pd.DataFrame:
    """``n`` iris-like flowers (each species' mean and covariance, rounded to 0.1 cm)."""
    iris = pd.read_csv(IRIS_CSV)
    rng = np.random.default_rng(seed)
    parts = []
    for species, rows in iris.groupby("species"):
        measured = rows[IRIS.feature_names].to_numpy()
        drawn = rng.multivariate_normal(measured.mean(0), np.cov(measured.T), size=n // 3 + 1)
        frame = pd.DataFrame(np.round(np.clip(drawn, 0.1, None), 1), columns=IRIS.feature_names)
        parts.append(frame.assign(species=species))
    return pd.concat(parts, ignore_index=True).sample(frac=1, random_state=seed).iloc[:n]


def fill(url: str, home: Path, n: int, split) -> None:
    """N accepted contributions in the catalog (bulk: what N intakes would have recorded),
    and their files in the landing zone."""
    catalog = ContributionCatalog(url, IRIS)
    matching = RowMatching.for_intake(IRIS, split.train, split.benchmark)
    rows = flowers(n * ROWS_PER_CONTRIBUTION, seed=n)
    ids = [contribution_key(f"c{i}/flowers.csv") for i in range(n)]
    rows["row_index"] = np.tile(np.arange(ROWS_PER_CONTRIBUTION), n)
    cells = catalog._with_cells(rows, matching)
    cells["contribution_id"] = np.repeat(ids, ROWS_PER_CONTRIBUTION)
    # Files land two minutes apart, each taken in within seconds; the last BATCH together,
    # in one tick, as a retrain's batch does (their intakes cannot see each other).
    landed = np.arange(n, dtype=float) * 120
    landed[-BATCH:] = landed[-BATCH] + np.arange(min(BATCH, n)) * 1e-6
    recorded = landed + 6 + np.concatenate([np.zeros(max(0, n - BATCH)), np.arange(min(BATCH, n))])
    cells["landed_at"] = np.repeat(landed, ROWS_PER_CONTRIBUTION)
    template = ContributionReport("x", "x", "flowers.csv", "0" * 64, rows_in=20, rows_clean=20)
    template.accepted, template.quality_score, template.decision = True, 90.0, "accepted"
    reports = []
    for i, cid in enumerate(ids):
        template.contribution_id, template.contributor = cid, f"c{i}"
        template.landed_at, template.landing_path = float(landed[i]), f"c{i}/flowers.csv"
        template.sha256 = f"{i:064x}"
        reports.append(
            {
                "contribution_id": cid,
                "task": IRIS.name,
                "contributor": f"c{i}",
                "landing_path": f"c{i}/flowers.csv",
                "sha256": template.sha256,
                "landed_at": float(landed[i]),
                "looked_up_at": float(landed[i]) + 5,
                "recorded_at": float(recorded[i]),
                "state": DONE,
                "accepted": True,
                "quality_score": 90.0,
                "report": json.dumps(template.to_dict()),
                "updated_at": time.time(),
            }
        )
    with catalog._engine.begin() as db:
        db.execute(catalog.meta.insert().values(key=_IMPORTED))
        for start in range(0, n, 20_000):
            db.execute(catalog.contributions.insert(), reports[start : start + 20_000])
        records = cells.to_dict("records")
        for start in range(0, len(records), 100_000):
            db.execute(catalog.rows.insert(), records[start : start + 100_000])
    # Statistics and (PostgreSQL) a visibility map, as a long-lived database has them from
    # autovacuum: without the map every index entry is checked against the table.
    maintenance = "VACUUM ANALYZE" if url.startswith("postgresql") else "ANALYZE"
    with catalog._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
        db.execute(sa.text(maintenance))
    landing = home / "landing"
    text = "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n"
    for i in range(n):
        (landing / f"c{i}").mkdir(parents=True)
        (landing / f"c{i}" / "flowers.csv").write_text(text)


def one_more_intake(url: str, home: Path, n: int, split, attempt: int) -> tuple[float, float]:
    """One intake of a new 21-row file through the catalog: wall and CPU seconds."""
    path = home / f"new-{attempt}.csv"
    new_flowers(per_class=7, seed=1000 + attempt).to_csv(path, index=False)
    start, cpu = time.perf_counter(), time.process_time()
    report = process_contribution(
        path,
        IRIS,
        reference=split.train,
        benchmark=split.benchmark,
        contributions_root=home / "storage" / "contributions",
        contribution_id=f"new-{attempt}",
        contributor="newcomer",
        policy=IntakePolicy(min_quality=0),
        landing_path=f"newcomer/new-{attempt}.csv",
        landed_at=float(n * 120 + attempt),
        records=ContributionCatalog(url, IRIS),
    )
    assert report.rows_in == 21, report.decision
    return time.perf_counter() - start, time.process_time() - cpu


RETRAIN_DATA_SIDE = """
import json, sys, time
from pathlib import Path
import pandas as pd
from mlops_assets.core.catalog.catalog import ContributionCatalog, load_accepted
from mlops_assets.core.data.integration import integrate
from mlops_assets.core.data.reference_data import benchmark_split, load_reference_data
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV

def peak_rss_mb():
    # This process's own peak (VmHWM): ru_maxrss carries the parent's peak across fork and exec.
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM")).split()[1]) / 1024

class Snapshot:  # the dataset store's copy of the accepted rows, as a local Parquet file
    def read(self):
        return pd.read_parquet(sys.argv[2]) if Path(sys.argv[2]).exists() else None
    def write(self, frame):
        frame.to_parquet(sys.argv[2], index=False)

split = benchmark_split(load_reference_data(IRIS_CSV, IRIS), IRIS, fraction=0.3, seed=42)
start = time.perf_counter()
catalog = ContributionCatalog(sys.argv[1], IRIS)
contributions = load_accepted(catalog, max_rows=0, seed=1, snapshot=Snapshot())
loaded = time.perf_counter() - start
dataset = integrate(split.train, contributions, split.benchmark, IRIS, seed=1)
print(json.dumps({"seconds": time.perf_counter() - start, "load_seconds": loaded,
  "rows": len(dataset.frame), "rss_mb": peak_rss_mb()}))
"""


def first_retrain(url: str, home: Path) -> dict:
    """The first retrain: no copy of the accepted rows yet, so it reads the catalog whole and
    writes the copy. What it leaves is then cut back to the copy the retrain before the last
    batch would have written (:func:`steady_retrain` starts from it)."""
    snapshot = home / "accepted_rows.parquet"
    first = _retrain(url, snapshot)
    rows = pd.read_parquet(snapshot)
    last_batch = rows["contribution_id"].isin(rows["contribution_id"].unique()[-BATCH:])
    rows.loc[~last_batch].to_parquet(home / "before_last_batch.parquet", index=False)
    return first


def steady_retrain(url: str, home: Path) -> dict:
    """A retrain as every later one is: the copy written before the last batch landed, the
    batch read from the catalog beside it."""
    snapshot = home / "accepted_rows.parquet"
    shutil.copy(home / "before_last_batch.parquet", snapshot)
    return _retrain(url, snapshot)


def _retrain(url: str, snapshot: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", RETRAIN_DATA_SIDE, url, str(snapshot)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_page(url: str, home: Path) -> float:
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_CATALOG_URL": url}
    start = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), "contributions", "--limit", "50", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 50
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--postgres", action="store_true", help="the catalog on PostgreSQL")
    args = parser.parse_args()
    split = benchmark_split(load_reference_data(IRIS_CSV, IRIS), IRIS, fraction=0.3, seed=42)
    print(f"# {platform.node()}, {os.cpu_count()} cores, {date.today()}")
    print(
        "| contributions | catalog | fill s | one more intake s (CPU s) | first retrain's data "
        "side s (RSS MB) | retrain data side s (RSS MB) | `mlops contributions` first page s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    # Every size is built first, then each measure taken in turns over the sizes, so that
    # load from elsewhere on the machine falls on all of them alike.
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        homes, urls, filled = {}, {}, {}
        for n in args.sizes:
            home = homes[n] = Path(tmp) / f"var{n}"
            (home / "storage" / "reference").mkdir(parents=True)
            split.train.to_parquet(home / "storage" / "reference" / "train.parquet")
            split.benchmark.to_parquet(home / "storage" / "reference" / "benchmark.parquet")
            if args.postgres:
                name = f"scale_{uuid.uuid4().hex[:10]}"
                stack.enter_context(postgres_databases(name))
                urls[n] = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
            else:
                urls[n] = f"sqlite:///{home}/catalog.sqlite"
            start = time.perf_counter()
            fill(urls[n], home, n, split)
            filled[n] = time.perf_counter() - start
        first = {n: first_retrain(urls[n], homes[n]) for n in args.sizes}
        steady: dict[int, list[dict]] = {n: [] for n in args.sizes}
        pages: dict[int, list[float]] = {n: [] for n in args.sizes}
        intakes: dict[int, list[tuple[float, float]]] = {n: [] for n in args.sizes}
        for attempt in range(ROUNDS):
            for n in args.sizes:
                steady[n].append(steady_retrain(urls[n], homes[n]))
                pages[n].append(first_page(urls[n], homes[n]))
                intakes[n].append(one_more_intake(urls[n], homes[n], n, split, attempt))
        kind = "PostgreSQL" if args.postgres else "SQLite"
        for n in args.sizes:
            wall = statistics.median(t for t, _ in intakes[n])
            cpu = statistics.median(c for _, c in intakes[n])
            retrain = min(steady[n], key=lambda r: r["seconds"])
            print(
                f"| {n:,} | {kind} | {filled[n]:.0f} | {wall:.2f} ({cpu:.2f}) "
                f"| {first[n]['seconds']:.1f} ({first[n]['rss_mb']:.0f}) "
                f"| {statistics.median(r['seconds'] for r in steady[n]):.1f} "
                f"({retrain['rss_mb']:.0f}; load {retrain['load_seconds']:.1f}) "
                f"| {statistics.median(pages[n]):.2f} |",
                flush=True,
            )
    print(
        f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB"
    )


if __name__ == "__main__":
    main()
