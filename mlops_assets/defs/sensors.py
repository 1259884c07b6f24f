"""Sensors: the landing-zone watcher, the retrain trigger, declarative automation, and the
clean-up and redelivery of what failed.

A file landing becomes a ``contributed_data`` partition and an intake run
(``contribution_sensor``); once no intake is still running, the accepted contributions among
them trigger one retrain (``retrain_sensor``); everything else downstream of the iris data
follows ``AutomationCondition.eager()`` (``automation_sensor``). ``mlflow_run_cleanup_sensor``
ends MLflow runs a dead process left open; ``webhook_redelivery_sensor`` resends webhook
events a receiver missed.
"""

import json
import time

import dagster as dg

from mlops_assets.defs.data_assets import contributed_data, integrated_dataset, iris_dataset
from mlops_assets.defs.model_assets import baseline_model, registered_model_version, trained_model
from mlops_assets.defs.partitions import contribution_key, contributions_partitions
from mlops_assets.defs.resources import LandingFile, LandingZone, ModelRegistry, Webhooks
from mlops_assets.settings import current_settings

_settings = current_settings()

# A local file whose modification time is at least this old is complete; a younger one is
# taken once a second tick sees the same size and time (it may still be being written).
SETTLE_SECONDS = 2.0
STAGE_TAG = "mlops/stage"  # "ingest" or "retrain": what the sensors wait for
RUN_KEY_TAG = "dagster/run_key"
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _stamp(file: LandingFile) -> list[float]:
    return [file.size, file.mtime]


ingest_job = dg.define_asset_job(
    "ingest_contribution",
    selection=dg.AssetSelection.assets(contributed_data),
    partitions_def=contributions_partitions,
    description="Intake of one landed file: read, clean, judge, and the blocking checks.",
)


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=_settings.sensor_interval,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def contribution_sensor(
    context: dg.SensorEvaluationContext, landing: LandingZone
) -> dg.SensorResult | dg.SkipReason:
    """Register each new, complete landing-zone file as a ``contributions`` partition and
    request its intake run in the same tick.

    A file is new when its partition does not exist yet: Dagster's own partition list is the
    record of what was taken, so no timestamp can make the sensor skip a file (a file copied
    with an old modification time, or sharing one with another). The cursor only holds files
    on probation: ``pending`` ones seen once while possibly still being written, and
    ``resubmitted`` ones whose bytes an earlier run already took under another name (the run
    key is the content version, so the same bytes never launch a second run).
    """
    if context.instance.get_latest_materialization_event(iris_dataset.key) is None:
        # Contributions are judged against the iris data; the automation sensor builds it.
        return dg.SkipReason("waiting for iris_dataset: contributions are judged against it")
    cursor = json.loads(context.cursor) if context.cursor else {}
    pending, resubmitted = cursor.get("pending", {}), cursor.get("resubmitted", {})
    known = set(context.instance.get_dynamic_partitions(contributions_partitions.name))
    now = time.time()
    next_pending, next_resubmitted, requests = {}, {}, []
    versions_this_tick: set[str] = set()
    for file in landing.list_files():
        key = contribution_key(file.relative_path)
        if key in known:
            continue
        stamp = _stamp(file)
        if resubmitted.get(file.relative_path) == stamp:
            next_resubmitted[file.relative_path] = stamp
            continue
        complete = (
            landing.writes_are_atomic
            or now - file.mtime >= SETTLE_SECONDS
            or pending.get(file.relative_path) == stamp
        )
        if not complete:
            next_pending[file.relative_path] = stamp
            continue
        version = landing.content_version(file)
        if version in versions_this_tick or _already_run(context.instance, version):
            context.log.info(f"{file.relative_path}: same bytes as an earlier file, not taken")
            next_resubmitted[file.relative_path] = stamp
            continue
        versions_this_tick.add(version)
        requests.append(
            dg.RunRequest(
                run_key=version,
                partition_key=key,
                tags={
                    STAGE_TAG: "ingest",
                    "mlops/landing_path": file.relative_path,
                    "mlops/contributor": file.contributor,
                },
            )
        )
    new_cursor = json.dumps({"pending": next_pending, "resubmitted": next_resubmitted})
    if not requests:
        reason = f"no new files in {landing.location}"
        if next_pending:
            reason += (
                f"; {len(next_pending)} still being written, taken once their size stops changing"
            )
        return dg.SensorResult(skip_reason=reason, cursor=new_cursor)
    context.log.info(
        "New contributions: " + ", ".join(r.tags["mlops/landing_path"] for r in requests)
    )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[
            contributions_partitions.build_add_request([r.partition_key for r in requests])
        ],
        cursor=new_cursor,
    )


def _already_run(instance: dg.DagsterInstance, run_key: str) -> bool:
    runs = instance.get_run_records(
        dg.RunsFilter(tags={RUN_KEY_TAG: run_key, STAGE_TAG: "ingest"}), limit=1
    )
    return bool(runs)


retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets(
        baseline_model, integrated_dataset, trained_model, registered_model_version
    ),
    description="Rebuild the training set, train a candidate, compare it with the champion "
    "(re-read from the registry) and register it: what an accepted contribution triggers.",
)


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=_settings.sensor_interval,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Request one retrain for all contributions accepted since the last one, once no intake
    or retrain is running.

    A rejected contribution triggers nothing. Waiting for running intakes batches files that
    land together into one retrain, and no retrain starts while contributions are still being
    ingested. The cursor is the event-log id of the last ``contributed_data`` materialization
    taken into account.
    """
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=contributed_data.key, after_storage_id=after),
        limit=1000,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no contribution ingested since the last retrain")
    busy = {
        stage: context.instance.get_runs_count(
            dg.RunsFilter(statuses=UNFINISHED, tags={STAGE_TAG: stage})
        )
        for stage in ("ingest", "retrain")
    }
    if busy["ingest"] or busy["retrain"]:
        return dg.SkipReason(
            f"waiting: {busy['ingest']} intake run(s) and {busy['retrain']} retrain(s) unfinished"
        )
    accepted = [
        r.partition_key
        for r in records
        if (flag := r.asset_materialization.metadata.get("accepted")) is not None and flag.value
    ]
    newest = str(records[-1].storage_id)
    if not accepted:
        return dg.SensorResult(
            skip_reason=f"{len(records)} contribution(s) ingested, none accepted: no retrain",
            cursor=newest,
        )
    shown = ", ".join(accepted[:5]) + (
        f" and {len(accepted) - 5} more" if len(accepted) > 5 else ""
    )
    context.log.info(f"Retraining for accepted contribution(s): {shown}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"retrain-after-{newest}",
                tags={STAGE_TAG: "retrain", "mlops/accepted_contributions": shown},
            )
        ],
        cursor=newest,
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


@dg.sensor(
    minimum_interval_seconds=min(30, _settings.sensor_interval),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def webhook_redelivery_sensor(context: dg.SensorEvaluationContext, webhooks: Webhooks):
    """Deliver the webhook events waiting in the outbox whose next attempt is due."""
    counts = webhooks.deliver_due()
    if counts is None:
        return dg.SkipReason("webhooks are off: MLOPS_WEBHOOK_URL is not set")
    return dg.SkipReason(
        f"{counts['delivered']} event(s) delivered, {counts['waiting']} still waiting, "
        f"{counts['dead']} given up (in the outbox's dead/), {counts['not_due']} not due yet"
    )
