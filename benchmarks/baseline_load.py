"""Load time and peak RSS of a large (≥ 1 GB) baseline model from the registry.

A random forest grown to full depth on noisy 4-feature data with the iris class names (so it
passes the baseline validation) is logged with skops, registered, and then loaded in a fresh
process exactly as ``baseline_model`` does: look up the alias, download, skops-load with the
allow-list, validate. The same model is also loaded from a local skops file and a joblib file
for comparison. Each load runs in its own process so peak RSS is that load's alone.

    python benchmarks/baseline_load.py --target-mb 1100
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

LOAD = """
import json, sys, time
from pathlib import Path

start = time.perf_counter()
import mlflow, pandas, skops.io, sklearn.ensemble  # what a baseline_model step has loaded anyway
from mlops_assets.core.modeling.model_checks import validate_model
from mlops_assets.core.registry.model_files import (
    FileTrust, ModelSource, load_model_file, timed_load,
)
from mlops_assets.core.registry.models import load_with_size
from mlops_assets.task import IRIS
imports = time.perf_counter() - start

source, tracking_uri, probe = sys.argv[1], sys.argv[2], pandas.read_parquet(sys.argv[3])
rss = lambda: int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
before = rss()
parsed = ModelSource.parse(source)
if parsed.in_registry:
    mlflow.MlflowClient(tracking_uri).get_model_version_by_alias("big", "champion")  # as a run
    model, stats = timed_load(lambda: load_with_size(source, tracking_uri))
else:
    loaded = load_model_file(parsed.path, FileTrust(parsed.path.parent))
    model, stats = loaded.model, loaded.stats
start = time.perf_counter()
validate_model(model, probe, IRIS)
validate = time.perf_counter() - start
print(json.dumps({"imports": imports, "load": stats.seconds, "validate": validate,
                  "size_mb": stats.size_mb, "rss_before_mb": before,
                  "peak_rss_mb": stats.peak_rss_mb}))
"""


def grow_forest(target_mb: float):
    """A forest of about ``target_mb`` (full-depth trees on labels that are mostly noise)."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    from mlops_assets.task import IRIS

    rng = np.random.default_rng(0)
    rows = 400_000
    x = pd.DataFrame(rng.uniform(0.1, 8.0, size=(rows, 4)), columns=IRIS.feature_names)
    y = np.array(IRIS.classes)[rng.integers(0, 3, rows)]
    # Measured: ~20 MB of skops file per tree at 400k rows (~0.63 nodes per row, ~85 B each).
    per_tree_mb = 0.632 * rows * 85 / 2**20
    trees = max(1, round(target_mb / per_tree_mb))
    model = RandomForestClassifier(n_estimators=trees, n_jobs=os.cpu_count(), random_state=0)
    return model.fit(x, y), x.head(20)


def run_load(source: str, tracking_uri: str, probe: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", LOAD, source, tracking_uri, str(probe)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-mb", type=float, default=1100)
    args = parser.parse_args()

    import joblib
    import mlflow
    import skops.io

    from mlops_assets.core.registry.client import mlflow_client, register_model_version
    from mlops_assets.core.registry.models import log_sklearn_model
    from mlops_assets.core.registry.tags import CHAMPION

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model, probe = grow_forest(args.target_mb)
        print(f"trained {model.n_estimators} trees in {time.perf_counter() - start:.0f} s")
        probe_path = Path(tmp) / "probe.parquet"
        probe.assign(species="setosa").to_parquet(probe_path)

        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        client = mlflow_client(uri)
        client.create_experiment("bench", artifact_location=f"file://{tmp}/artifacts")
        mlflow.set_experiment("bench")
        start = time.perf_counter()
        with mlflow.start_run():
            info = log_sklearn_model(model, name="model", input_example=probe.head(3))
        version = register_model_version(client, info, model_name="big", tags={})
        client.set_registered_model_alias("big", CHAMPION, version.version)
        print(f"logged and registered in {time.perf_counter() - start:.0f} s")

        skops_file = Path(tmp) / "model.skops"
        skops.io.dump(model, skops_file)
        joblib_file = Path(tmp) / "model.joblib"
        joblib.dump(model, joblib_file)
        del model

        print(
            "| source | model files (MB) | imports (s) | load (s) | validate (s) "
            "| RSS before (MB) | peak RSS during load (MB) | (peak - before) / size |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for label, source in (
            ("registry (models:/big@champion, skops)", "models:/big@champion"),
            ("local skops file", str(skops_file)),
            ("local joblib file (trusted dir)", str(joblib_file)),
        ):
            r = run_load(source, uri, probe_path)
            growth = (r["peak_rss_mb"] - r["rss_before_mb"]) / r["size_mb"]
            print(
                f"| {label} | {r['size_mb']:.0f} | {r['imports']:.1f} | {r['load']:.2f} | "
                f"{r['validate']:.2f} | {r['rss_before_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
                f"{growth:.2f} |"
            )


if __name__ == "__main__":
    main()
