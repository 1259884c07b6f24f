"""What valuing the new contributions adds to a retrain.

1. **Real retrains** on a real Dagster instance and MLflow store (the test harness's
   ``Pipeline``): a cold start, then N contributions of 9 new flowers each taken in through
   the intake, then one retrain run (the ``retrain`` job's assets). Reported: the retrain
   run's wall time, the valuation's own seconds inside it, the method (exact up to
   ``MLOPS_VALUATION_EXACT_MAX``, sampled permutations beyond) and the models it trained.
2. **A 1 M-row integrated dataset**: the valuation of 4 new contributions of 10,000 rows
   each (every coalition trained on one seeded sample of ``MLOPS_VALUATION_MAX_ROWS`` rows)
   next to training the candidate itself on all rows.

3. **Valuation at scale** (issue 29, ``--scale``): N new contributions of 9 new flowers each
   from N contributors, integrated with the iris train part and valued by the core with the
   default settings (a 60 s budget). Reported: wall time, the game's players (batches beyond
   ``MLOPS_VALUATION_MAX_PLAYERS``), sampled orders, models trained, the median standard
   error over the median |value|, the share of values whose 95 % interval excludes 0, and
   the largest gap between the values' sum and v(all). The same with the retrains of 1.
   Runs on the code before issue 29 as well (run it with that checkout's interpreter).

    python benchmarks/valuation_timing.py --players 1 4 8 16 64
    python benchmarks/valuation_timing.py --players 16 64 256 --scale 16 64 256 1024
"""

import argparse
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg

from mlops_assets.settings import Settings
from mlops_assets_testing.data import new_flowers
from mlops_assets_testing.pipeline import Pipeline
from mlops_assets_testing.processes import env_for


def precision(values: list[dict]) -> dict:
    """Median standard error over median |value|, and the share of intervals excluding 0."""
    import numpy as np

    valued = [v for v in values if v["status"] != "nothing_new"]
    errors = np.array([v["standard_error"] for v in valued])
    gains = np.array([v["value"] for v in valued])
    bounds = np.array([v["value_interval"] for v in valued])
    return {
        "relative_se": float(np.median(errors) / np.median(np.abs(gains))),
        "excluding_0": float(np.mean((bounds[:, 0] > 0) | (bounds[:, 1] < 0))),
    }


def retrain_with(players: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        home = Path(tmp) / "var"
        pipeline = Pipeline(home, Settings.from_env(env_for(home)), instance)
        pipeline.materialize()
        for i in range(players):
            pipeline.drop(
                f"c{i:02d}", "flowers.csv", new_flowers(3, seed=100 + i).to_csv(index=False)
            )
            pipeline.ingest(f"c{i:02d}/flowers.csv")
        start = time.perf_counter()
        pipeline.retrain()
        wall = time.perf_counter() - start
        event = instance.get_latest_materialization_event(dg.AssetKey("trained_model"))
        valuation = event.asset_materialization.metadata["valuation"].value
        return {
            "players": len(valuation["values"]),
            "batches": valuation.get("batches", len(valuation["values"])),
            **precision(valuation["values"]),
            "retrain_s": wall,
            "valuation_s": valuation["seconds"],
            "method": valuation["method"],
            "permutations": valuation["permutations"],
            "models": valuation["coalitions_trained"],
        }


def million_rows() -> dict:
    from mlops_assets.core.data.integration import Contribution, integrate
    from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark
    from mlops_assets.core.modeling.training import TrainingSpec, train_model
    from mlops_assets.core.modeling.valuation import value_contributions
    from mlops_assets.resources import build_resources
    from mlops_assets.task import IRIS
    from mlops_assets_testing.data import IRIS_CSV

    settings = Settings.from_env({"MLOPS_HOME": tempfile.gettempdir()})
    split = split_benchmark(load_reference_data(IRIS_CSV, IRIS).frame, IRIS, fraction=0.3, seed=42)
    # Measured to 0.01 cm so that a million rows are distinct (integration drops duplicates).
    base = new_flowers(320_000, seed=1, decimals=2)
    contributions = [
        Contribution(
            f"c{i}",
            f"p{i}",
            new_flowers(3_334, seed=10 + i, decimals=2).assign(row_index=range(10_002)),
        )
        for i in range(4)
    ]
    frame = integrate(base, contributions, split.benchmark, IRIS, seed=42).frame
    spec = TrainingSpec("logistic_regression", {"C": 1.0, "max_iter": 1000}, seed=42)
    policy = build_resources(settings)["valuation"].policy(settings.primary_metric, seed=42)
    start = time.perf_counter()
    train_model(
        frame, IRIS, estimator=spec.estimator, hyperparameters=spec.hyperparameters, seed=42
    )
    training = time.perf_counter() - start
    valuation = value_contributions(
        frame, split.benchmark, IRIS, spec=spec, known=[], policy=policy
    )
    return {
        "rows": len(frame),
        "train_s": training,
        "valuation_s": valuation.seconds,
        "models": valuation.coalitions_trained,
        "sample": valuation.training_rows_cap,
    }


def at_scale(players: int) -> dict:
    """N contributions of 9 new flowers valued by the core, default settings."""
    from mlops_assets.core.data.integration import Contribution, integrate
    from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark
    from mlops_assets.core.modeling.training import TrainingSpec
    from mlops_assets.core.modeling.valuation import value_contributions
    from mlops_assets.resources import build_resources
    from mlops_assets.task import IRIS
    from mlops_assets_testing.data import IRIS_CSV

    settings = Settings.from_env({"MLOPS_HOME": tempfile.gettempdir(), **os.environ})
    split = split_benchmark(load_reference_data(IRIS_CSV, IRIS).frame, IRIS, fraction=0.3, seed=42)
    contributions = [
        Contribution(
            f"c{i:04d}",
            f"p{i:04d}",
            new_flowers(3, seed=100 + i).assign(row_index=range(9)),
            landed_at=float(i),
        )
        for i in range(players)
    ]
    data = integrate(split.train, contributions, split.benchmark, IRIS, seed=42)
    given = {
        cid: {"rows": g.rows, "of": g.of, "sentence": g.sentence, "contributor": g.contributor}
        for cid, g in data.already_given.items()
    }
    spec = TrainingSpec("logistic_regression", {"C": 1.0, "max_iter": 1000}, seed=42)
    policy = build_resources(settings)["valuation"].policy(settings.primary_metric, seed=42)
    start = time.perf_counter()
    valuation = value_contributions(
        data.frame, split.benchmark, IRIS, spec=spec, known=[], policy=policy, already_given=given
    ).to_dict()
    wall = time.perf_counter() - start
    valued = [v for v in valuation["values"] if v["status"] != "nothing_new"]
    return {
        "players": len(valued),
        "batches": valuation.get("batches", len(valued)),
        "wall_s": wall,
        "method": valuation["method"],
        "orders": valuation["permutations"],
        "models": valuation["coalitions_trained"],
        "sum_gap": abs(sum(v["value"] for v in valued) - valuation["improvement"]),
        **precision(valuation["values"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--players", type=int, nargs="*", default=[1, 4, 8, 16, 64])
    parser.add_argument("--scale", type=int, nargs="*", default=[])
    parser.add_argument("--no-million", action="store_true")
    args = parser.parse_args()
    print(f"# {date.today()}, {platform.node()}, {platform.processor() or platform.machine()}")
    if args.players:
        print(
            "| new contributions | method | players | models trained | valuation | retrain run "
            "| valuation share | median SE / median abs value | intervals excluding 0 |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.players:
        r = retrain_with(n)
        how = r["method"] + (f", {r['permutations']} permutations" if r["permutations"] else "")
        print(
            f"| {r['players']} | {how} | {r['batches']} | {r['models']} "
            f"| {r['valuation_s']:.2f} s | {r['retrain_s']:.2f} s "
            f"| {r['valuation_s'] / r['retrain_s']:.0%} | {r['relative_se']:.1%} "
            f"| {r['excluding_0']:.0%} |",
            flush=True,
        )
    if args.scale:
        print(
            "\n| new contributions | players | method | orders | models | wall "
            "| median SE / median abs value | intervals excluding 0 | sum - v(all) |"
        )
        print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in args.scale:
        r = at_scale(n)
        print(
            f"| {r['players']} | {r['batches']} | {r['method']} | {r['orders']} | {r['models']} "
            f"| {r['wall_s']:.1f} s | {r['relative_se']:.1%} | {r['excluding_0']:.0%} "
            f"| {r['sum_gap']:.1e} |",
            flush=True,
        )
    if args.no_million:
        return
    m = million_rows()
    print(
        f"\n1 M rows ({m['rows']:,} integrated, 4 new contributions): candidate training "
        f"{m['train_s']:.1f} s; valuation {m['valuation_s']:.1f} s ({m['models']} models on a "
        f"{m['sample']:,}-row sample)"
    )


if __name__ == "__main__":
    main()
