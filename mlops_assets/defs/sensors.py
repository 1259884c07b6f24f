"""Sensors: the landing zone watcher, and declarative automation for everything downstream."""

import json

import dagster as dg

from mlops_assets.defs.data_assets import contributed_data
from mlops_assets.defs.partitions import contribution_key, contributions_partitions
from mlops_assets.defs.resources import LandingZone, ModelRegistry
from mlops_assets.settings import current_settings

_settings = current_settings()


@dg.sensor(
    target=[contributed_data],
    minimum_interval_seconds=_settings.sensor_interval,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def contribution_sensor(
    context: dg.SensorEvaluationContext, landing: LandingZone
) -> dg.SensorResult:
    """Register each new landing-zone file as a ``contributions`` partition and request its run.

    The cursor keeps the newest modification time seen and the files seen at exactly that time,
    so a file sharing the cursor's timestamp is neither skipped nor requested twice.
    """
    cursor = json.loads(context.cursor) if context.cursor else {"mtime": 0.0, "seen": []}
    last_mtime, seen_at_last = cursor["mtime"], set(cursor["seen"])
    new_files = [
        f
        for f in landing.list_files()
        if f.mtime > last_mtime or (f.mtime == last_mtime and f.relative_path not in seen_at_last)
    ]
    if not new_files:
        return dg.SensorResult(skip_reason=f"no new files in {landing.location}")

    keys = [contribution_key(f.relative_path) for f in new_files]
    requests = [
        dg.RunRequest(
            # Content hash as run key: the same bytes never launch a second run.
            run_key=landing.content_version(f),
            partition_key=key,
            tags={"mlops/landing_path": f.relative_path, "mlops/contributor": f.contributor},
        )
        for f, key in zip(new_files, keys, strict=True)
    ]
    newest = max(f.mtime for f in new_files)
    seen = {f.relative_path for f in new_files if f.mtime == newest}
    if newest == last_mtime:
        seen |= seen_at_last
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[contributions_partitions.build_add_request(keys)],
        cursor=json.dumps({"mtime": newest, "seen": sorted(seen)}),
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=_settings.sensor_interval,
)


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def mlflow_run_cleanup_sensor(context: dg.RunFailureSensorContext, registry: ModelRegistry) -> None:
    """End as FAILED any MLflow run a failed Dagster run left RUNNING (its process died)."""
    from mlops_assets.core.registry import fail_unfinished_runs, registry_errors

    with registry_errors(registry.tracking_uri):
        ended = fail_unfinished_runs(
            registry.client(), registry.experiment_name, context.dagster_run.run_id
        )
    if ended:
        context.log.info(f"Marked MLflow run(s) {', '.join(ended)} FAILED")
