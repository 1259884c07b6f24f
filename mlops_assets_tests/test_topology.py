"""The production topology (see ``topology.py``) end to end: 20 contributions put into the
landing bucket at once are each processed exactly once within the run queue's concurrency
limit, and the version trained on them becomes the champion the API serves."""

import json
from collections import Counter
from pathlib import Path

import pytest

from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.core.registry.client import mlflow_client
from mlops_assets_testing.data import distinct_sample
from mlops_assets_testing.processes import wait_for
from mlops_assets_testing.topology import MODEL, production_topology, write_stump

# Real processes: left out of `make test-fast`.
pytestmark = pytest.mark.e2e


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an end and a start at the same instant do not
    overlap)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    open_now = peak = 0
    for _, change in events:
        open_now += change
        peak = max(peak, open_now)
    return peak


@pytest.mark.timeout(900)
def test_production_topology_end_to_end(tmp_path: Path, s3_endpoint: str, s3_bucket: str):
    stump = write_stump(tmp_path / "trusted" / "stump.joblib")
    with production_topology(
        tmp_path,
        s3_endpoint,
        s3_bucket,
        MLOPS_SENSOR_INTERVAL="2",
        MLOPS_API_POLL_SECONDS="1",
        # 20 contributions are valued by sampling, which runs to its time budget: what this
        # test proves (each file once, within the queue's limit, served) does not need 60 s.
        MLOPS_VALUATION_BUDGET_SECONDS="10",
        MLOPS_BASELINE_SOURCE=str(stump),
        MLOPS_TRUSTED_MODEL_DIR=str(stump.parent),
    ) as topology:
        client = mlflow_client(topology.tracking_uri)
        limit = int(topology.env["DAGSTER_MAX_CONCURRENT_RUNS"])

        # 20 contributions at once, landing while automation is still on its cold start (the
        # stump imported as v1, a first candidate trained on iris): each must be ingested
        # exactly once, within the queue's limit, and reach a version that becomes champion.
        paths = [f"crowd/part-{i:02d}.csv" for i in range(20)]
        for i, path in enumerate(paths):
            topology.put(f"landing/{path}", distinct_sample(i).encode())
        batch = {contribution_key(path) for path in paths}

        def newest_version_has_the_batch() -> bool:
            topology.processes.check()
            versions = client.search_model_versions(f"name='{MODEL}'")
            newest = max(versions, key=lambda v: int(v.version), default=None)
            return newest and batch <= set(json.loads(newest.tags.get("contributions", "[]")))

        wait_for(newest_version_has_the_batch, timeout=600, what="a version on all 20", poll=3)
        statuses = wait_for(
            lambda: (
                (rows := dict(topology.query("SELECT status, count(*) FROM runs GROUP BY 1")))
                and set(rows) <= {"SUCCESS", "FAILURE", "CANCELED"}
                and rows
            ),
            timeout=120,
            what="every run to finish",
            poll=1,
        )
        assert set(statuses) == {"SUCCESS"}, statuses  # all recorded in PostgreSQL
        # Every candidate beats the stump, so the newest version is the champion, and served.
        newest = max(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
        assert topology.champion() == str(newest)
        wait_for(
            lambda: topology.served_version() == str(newest), timeout=60, what="it served", poll=1
        )
        intake = Counter(partition for (partition,) in topology.query("SELECT partition FROM runs"))
        assert {key: intake[key] for key in batch} == dict.fromkeys(batch, 1)
        spans = topology.query("SELECT start_time, end_time FROM runs")
        # The cold start (one run), 20 intakes, at least one retrain.
        assert len(spans) >= 22 and max_overlap(spans) <= limit

        # MLflow: runs FINISHED in PostgreSQL, models in the bucket; datasets in the bucket.
        experiment = client.get_experiment_by_name("iris-continuous-training")
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        assert runs and {r.info.status for r in runs} == {"FINISHED"}
        models = topology.keys("mlflow/")
        assert any(k.endswith(".skops") for k in models), models[:20]
        assert any(k.endswith(f"attestations/iris-classifier/v{newest}.json") for k in models)
        stored = topology.keys("storage/")
        assert {f"storage/contributions/{key}/report.json" for key in batch} <= set(stored)
        assert "storage/reference/benchmark.parquet" in stored
