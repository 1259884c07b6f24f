"""The whole code location wired to temporary state, run in this process."""

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.definitions import build_definitions
from mlops_assets.defs.contributions.partitions import LANDING_PATH_TAG, STAGE_TAG
from mlops_assets.resources import build_resources
from mlops_assets.settings import Settings

# What the sensors use; mlflow_tracking cannot start outside a run.
SENSOR_RESOURCES = ("landing", "intake_policy", "webhooks", "registry")
# A training config that trains the same model as the cold start's (lbfgs converges long
# before 1,000 iterations) without being the same config, so a candidate is trained: on a
# fresh home, one run registers the cold start's champion (v1) and an equal challenger (v2).
SAME_MODEL_NEW_CONFIG = {"ops": {"trained_model": {"config": {"max_iter": 2000}}}}


@dataclass
class Pipeline:
    """The code location for ``settings`` on a persistent Dagster ``instance``; the settings
    may be replaced between runs (the definitions are built from them each time)."""

    home: Path
    settings: Settings
    instance: dg.DagsterInstance

    @property
    def landing(self) -> Path:
        return Path(self.settings.landing_uri)

    @property
    def definitions(self) -> dg.Definitions:
        return build_definitions(self.settings)

    def resources(self) -> dict[str, Any]:
        return build_resources(self.settings)

    def materialize(
        self,
        selection: str | None = None,
        *,
        run_config: dict | None = None,
        partition_key: str | None = None,
        raise_on_error: bool = True,
        tags: dict[str, str] | None = None,
    ) -> dg.ExecuteInProcessResult:
        """Materialize ``selection`` (by default the reference data asset and everything
        downstream of it but the partitioned ``contributed_data``) in this process."""
        definitions = self.definitions
        return dg.materialize(
            [*(definitions.assets or []), *(definitions.asset_checks or [])],
            selection=selection
            or f"key:{self.settings.task.dataset_asset}+ and not key:contributed_data",
            resources=self.resources(),
            instance=self.instance,
            run_config=run_config,
            partition_key=partition_key,
            raise_on_error=raise_on_error,
            tags=tags,
        )

    def retrain(self) -> dg.ExecuteInProcessResult:
        """What ``retrain_sensor`` launches: the ``retrain`` job's assets, in this process."""
        job = self.definitions.resolve_job_def("retrain")
        keys = job.asset_layer.executable_asset_keys
        return self.materialize([key.to_user_string() for key in keys])

    def ingest(
        self, relative_path: str, *, raise_on_error: bool = True
    ) -> dg.ExecuteInProcessResult:
        """The intake of a landing-zone file, as the sensor would launch it."""
        key = contribution_key(relative_path)
        self.instance.add_dynamic_partitions("contributions", [key])
        return self.materialize(
            "contributed_data",
            partition_key=key,
            tags={LANDING_PATH_TAG: relative_path, STAGE_TAG: "ingest"},
            raise_on_error=raise_on_error,
        )

    def launch(self, request: dg.RunRequest, *, raise_on_error: bool = True):
        """Run an intake the sensor asked for, as the daemon would (its partition added)."""
        self.instance.add_dynamic_partitions("contributions", [request.partition_key])
        return self.materialize(
            "contributed_data",
            partition_key=request.partition_key,
            tags=dict(request.tags),
            raise_on_error=raise_on_error,
        )

    def tick(self, sensor_name: str = "contribution_sensor", cursor: str | None = None) -> Any:
        """One evaluation of a sensor over the instance and resources.

        Invoked directly: ``evaluate_tick`` validates partition keys before applying the
        tick's own request to add them (the daemon applies it first).
        """
        definitions = self.definitions
        with dg.build_sensor_context(
            instance=self.instance,
            resources={k: v for k, v in self.resources().items() if k in SENSOR_RESOURCES},
            cursor=cursor,
            definitions=definitions,
        ) as context:
            return definitions.resolve_sensor_def(sensor_name)(context)

    def record_run(
        self, tags: dict[str, str], status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTED
    ) -> dg.DagsterRun:
        """A run as the daemon would have launched it, in ``status``, without running it: what
        the sensors see of runs under way, failed or done."""
        import uuid

        return self.instance.add_run(
            dg.DagsterRun(job_name="recorded", run_id=str(uuid.uuid4()), status=status, tags=tags)
        )

    def record_materialization(self, run: dg.DagsterRun, asset: str, partition: str) -> None:
        """A materialization of ``asset`` made by ``run``, as its worker would record it (the
        run may still be under way: its checks still running)."""
        from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
        from dagster._core.events.log import EventLogEntry

        event = DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name=run.job_name,
            event_specific_data=StepMaterializationData(
                dg.AssetMaterialization(asset, partition=partition)
            ),
        )
        self.instance.store_event(
            EventLogEntry(
                error_info=None,
                level="debug",
                user_message="",
                run_id=run.run_id,
                timestamp=time.time(),
                dagster_event=event,
            )
        )

    def client(self):
        from mlops_assets.core.registry.client import mlflow_client

        return mlflow_client(self.settings.tracking_uri)

    def drop(self, contributor: str, name: str, text: str, *, age: float = 60.0) -> Path:
        """Write a file into the landing zone, last modified ``age`` seconds ago (by default
        long enough for the sensor to take it as complete; 0 for a file still being written)."""
        path = self.landing / contributor / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
        return path


@contextlib.contextmanager
def deployment(root: Path) -> Iterator[Pipeline]:
    """The code location on a home at ``root/var`` whose Dagster instance is on disk
    (``root/var/dagster``, the embedded default's ``dagster.yaml``), so that real processes
    (the webserver, the CLI) open the same state once this one is done with it."""
    from mlops_assets.settings import REPO_ROOT

    home = root / "var"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "docker" / "dagster.embedded.yaml", dagster_home / "dagster.yaml")
    settings = Settings.from_env({"MLOPS_HOME": str(home), "DAGSTER_HOME": str(dagster_home)})
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield Pipeline(home=home, settings=settings, instance=instance)


def small_home(pipeline: Pipeline) -> str:
    """What a newcomer has after ``make run`` and a few files: the cold-start champion v1,
    then three contributions valued in one retrain and a rejected one; returns the latest
    version."""
    from mlops_assets_testing.data import new_flowers

    pipeline.materialize()
    clean = new_flowers(per_class=20, seed=11)
    near = clean.sample(n=8, random_state=0)
    for who, frame in (
        ("alice", clean),
        ("bob", near.assign(sepal_length=near.sepal_length + 0.05)),
        ("carol", new_flowers(per_class=5, seed=3)),
    ):
        pipeline.drop(who, "flowers.csv", frame.to_csv(index=False))
    pipeline.drop("dave", "notes.csv", "name,comment\nx,y\n")
    for request in pipeline.tick().run_requests:
        pipeline.launch(request)
    pipeline.retrain()
    versions = pipeline.client().search_model_versions(f"name = '{pipeline.settings.model_name}'")
    return str(max(int(v.version) for v in versions))
