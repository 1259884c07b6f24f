"""What the optional parts of a registration cost: signature, input example, tags, attestation.

For a small logistic regression and a larger random forest, on a fresh MLflow SQLite store,
four ways to register a model version, each adding one part to the one before:

- bare: log the model (skops) and register it, no signature, no example, no tags;
- + signature and input example (the signature inferred from the example);
- + tags: the ten version tags a pipeline registration sets;
- + attestation: hash every file of the candidate and a baseline version, write the document
  as a run artifact, tag the version.

Median of several repetitions; overhead relative to bare.

    python benchmarks/registration_overhead.py --repeats 5
"""

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path


def candidate_sizes(tmp: str, model_uri: str) -> list[int]:
    import mlflow

    with tempfile.TemporaryDirectory(dir=tmp) as target:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=target))
        return [p.stat().st_size for p in local.rglob("*") if p.is_file()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import mlflow
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from mlops_assets.core.data.reference_data import sklearn_iris
    from mlops_assets.core.promotion.attestation import seal
    from mlops_assets.core.registry.attestations import record_attestation
    from mlops_assets.core.registry.client import mlflow_client, register_model_version
    from mlops_assets.core.registry.models import log_sklearn_model, model_file_digests
    from mlops_assets.process import apply_process_defaults
    from mlops_assets.task import IRIS

    apply_process_defaults()
    frame = sklearn_iris(IRIS)
    x, y = frame[IRIS.feature_names], frame[IRIS.label]
    models = {
        "logistic regression": LogisticRegression(max_iter=500).fit(x, y),
        "random forest, 500 trees": RandomForestClassifier(500, random_state=0).fit(x, y),
    }
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    tags = {
        "data_sha256": "0" * 64,
        "contributions": '["alice/a.csv@0123456789ab"]',
        "baseline_version": "1",
        "deltas": '{"accuracy": 0.0}',
        "dagster_run_id": "0" * 36,
        "mlflow_run_id": "0" * 32,
        "benchmark_accuracy": "0.91",
        "benchmark_f1_macro": "0.91",
        "promoted": "false",
        "promotion_reason": "accuracy 0.9111 vs 0.9111: not better, champion stays v1",
    }
    variants = ("bare", "+ signature, input example", "+ tags", "+ attestation")
    print(f"| model | model files (MB) | {' | '.join(variants)} |")
    print("|---|---:|" + "---:|" * len(variants))
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        client = mlflow_client(uri)
        # Artifacts under the temporary folder, not ./mlruns.
        client.create_experiment("bench", artifact_location=f"file://{tmp}/artifacts")
        mlflow.set_experiment("bench")
        for label, model in models.items():
            name = label.split(",")[0].replace(" ", "-")
            seconds: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.repeats):
                for i, variant in enumerate(variants):
                    start = time.perf_counter()
                    with mlflow.start_run():
                        info = log_sklearn_model(
                            model, name="model", input_example=x.head(3) if i >= 1 else None
                        )
                    version = register_model_version(
                        client, info, model_name=name, tags=tags if i >= 2 else {}
                    )
                    if i == 3:
                        document = seal(
                            {
                                "candidate": model_file_digests(uri, name, version.version),
                                "baseline": model_file_digests(uri, name, "1"),
                            }
                        )
                        record_attestation(client, name, version.version, version.run_id, document)
                    seconds[variant].append(time.perf_counter() - start)
            size = sum(candidate_sizes(tmp, info.model_uri)) / 1e6
            bare = statistics.median(seconds["bare"])
            cells = [f"{bare:.2f} s"] + [
                f"{statistics.median(seconds[v]):.2f} s "
                f"({100 * (statistics.median(seconds[v]) / bare - 1):+.0f} %)"
                for v in variants[1:]
            ]
            print(f"| {label} | {size:.1f} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
