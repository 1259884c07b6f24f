"""Which benchmark metric separates a real improvement from noise on the iris benchmark?

Each trial splits iris as ``iris_dataset`` does (a stratified 30 % benchmark, seeded by the
trial), trains a champion on half of the train part and two candidates:

- **real**: the champion's rows plus the other half of the train part (new flowers);
- **null**: the other half alone: as many rows, other flowers, no more information than
  the champion had. Either model may score better by chance.

For every metric it counts how often the candidate is strictly better (the gate with
``MLOPS_SIGNIFICANCE=0``) and how often the paired bootstrap says it is better at the 5 %
level (``MLOPS_SIGNIFICANCE=0.05``); for accuracy also the exact McNemar test. A good decision
metric detects the real improvement often and the null one rarely.

    python benchmarks/primary_metric.py --trials 200
"""

import argparse
import platform
from datetime import date

import numpy as np
import pandas as pd

from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark
from mlops_assets.core.modeling.evaluation import SUMMARY_METRICS, evaluate, paired_outcome
from mlops_assets.core.modeling.scoring import delta_intervals
from mlops_assets.core.modeling.training import train_model
from mlops_assets.core.promotion.gate import PairedOutcome
from mlops_assets.settings import current_settings
from mlops_assets.task import IRIS as TASK

METRICS = ("accuracy", "log_loss", "brier", "roc_auc_ovr", "f1_macro")


def trial(iris: pd.DataFrame, seed: int, estimator: str, hyperparameters: dict) -> dict:
    split = split_benchmark(iris, TASK, fraction=0.3, seed=seed)
    train = split.train.sample(frac=1.0, random_state=seed)
    half = len(train) // 2
    base, new = train.iloc[:half], train.iloc[half:]

    def fit(frame: pd.DataFrame):
        return evaluate(
            train_model(
                frame, TASK, estimator=estimator, hyperparameters=hyperparameters, seed=seed
            ),
            split.benchmark,
            TASK,
        )

    champion = fit(base)
    outcome = {}
    for name, data in (("real", pd.concat([base, new])), ("null", new.iloc[: len(base)])):
        candidate = fit(data)
        intervals = delta_intervals(candidate, champion, seed=seed, metrics=METRICS)
        mcnemar = PairedOutcome(**paired_outcome(candidate, champion)).mcnemar_p_value
        outcome[name] = {
            "strict": {
                m: intervals[m].p_value < 1 and _better(m, intervals[m].delta) for m in METRICS
            },
            # As the gate decides: significant (two-sided) and in the better direction.
            "bootstrap": {
                m: intervals[m].p_value < 0.05 and _better(m, intervals[m].delta) for m in METRICS
            },
            "mcnemar": mcnemar < 0.05 and intervals["accuracy"].delta > 0,
        }
    return outcome


def _better(metric: str, delta: float) -> bool:
    return delta < 0 if metric in ("log_loss", "brier") else delta > 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    iris = load_reference_data(current_settings().reference, TASK).frame
    assert set(METRICS) <= set(SUMMARY_METRICS)
    print(f"# {date.today()}, {platform.node()}, {args.trials} trials per estimator")
    for estimator, hyperparameters in (
        ("logistic_regression", {"C": 1.0, "max_iter": 1000}),
        ("random_forest", {"n_estimators": 100}),
    ):
        results = [trial(iris, seed, estimator, hyperparameters) for seed in range(args.trials)]
        print(f"\n{estimator}: share of trials in which the candidate counts as better")
        print(
            "| metric | real, strictly better | null, strictly better "
            "| real, bootstrap p<0.05 | null, bootstrap p<0.05 |"
        )
        print("|---|---:|---:|---:|---:|")
        for m in METRICS:
            rate = {
                (s, t): np.mean([r[s][t][m] for r in results])
                for s in ("real", "null")
                for t in ("strict", "bootstrap")
            }
            print(
                f"| {m} | {rate['real', 'strict']:.0%} | {rate['null', 'strict']:.0%} "
                f"| {rate['real', 'bootstrap']:.0%} | {rate['null', 'bootstrap']:.0%} |"
            )
        real = np.mean([r["real"]["mcnemar"] for r in results])
        null = np.mean([r["null"]["mcnemar"] for r in results])
        print(f"| accuracy, McNemar p<0.05 | | | {real:.0%} | {null:.0%} |")


if __name__ == "__main__":
    main()
