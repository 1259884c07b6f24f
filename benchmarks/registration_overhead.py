"""What the attestation adds to registering a model version.

For a small logistic regression and a larger random forest, on a fresh MLflow SQLite store:
log the model (skops, signature, input example) and register it as a version, then the
attestation's own work (hash every file of the candidate and of a baseline version, write the
document as an artifact, tag the version). Median of several repetitions.

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

    from mlops_assets.core.attestation import ARTIFACT_PATH, seal
    from mlops_assets.core.reference_data import sklearn_iris
    from mlops_assets.core.registry import (
        log_sklearn_model,
        mlflow_client,
        model_file_digests,
        register_model_version,
    )
    from mlops_assets.settings import apply_process_defaults
    from mlops_assets.task import IRIS

    apply_process_defaults()
    frame = sklearn_iris(IRIS)
    x, y = frame[IRIS.feature_names], frame[IRIS.label]
    models = {
        "logistic regression": LogisticRegression(max_iter=500).fit(x, y),
        "random forest, 500 trees": RandomForestClassifier(500, random_state=0).fit(x, y),
    }
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    print("| model | model files (MB) | log + register (s) | attestation (s) | overhead |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        client = mlflow_client(uri)
        # Artifacts under the temporary folder, not ./mlruns.
        client.create_experiment("bench", artifact_location=f"file://{tmp}/artifacts")
        mlflow.set_experiment("bench")
        for label, model in models.items():
            register_seconds, attest_seconds = [], []
            name = label.split(",")[0].replace(" ", "-")
            for _ in range(args.repeats):
                start = time.perf_counter()
                with mlflow.start_run():
                    info = log_sklearn_model(model, name="model", input_example=x.head(3))
                version = register_model_version(client, info, model_name=name, tags={})
                register_seconds.append(time.perf_counter() - start)

                start = time.perf_counter()
                candidate = model_file_digests(uri, name, version.version)
                baseline = model_file_digests(uri, name, "1")
                document = seal({"candidate": candidate, "baseline": baseline})
                client.log_dict(version.run_id, document, ARTIFACT_PATH)
                client.set_model_version_tag(
                    name, version.version, "attestation_sha256", document["document_sha256"]
                )
                attest_seconds.append(time.perf_counter() - start)
            size = sum(candidate_sizes(tmp, info.model_uri)) / 1e6
            registering = statistics.median(register_seconds)
            attesting = statistics.median(attest_seconds)
            print(
                f"| {label} | {size:.1f} | {registering:.2f} | {attesting:.2f} | "
                f"{100 * attesting / registering:.0f} % |"
            )


if __name__ == "__main__":
    main()
