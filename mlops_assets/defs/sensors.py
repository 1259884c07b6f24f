"""Sensors: the landing-zone watcher, the retrain trigger, declarative automation, and the
clean-up and redelivery of what failed.

A file landing becomes a ``contributed_data`` partition and an intake run
(``contribution_sensor``); once no intake is still running, the accepted contributions among
them trigger one retrain (``retrain_sensor``); everything else downstream of the iris data
follows ``AutomationCondition.eager()`` (``automation_sensor``). ``mlflow_run_cleanup_sensor``
ends MLflow runs a dead process left open; ``webhook_redelivery_sensor`` resends webhook
events a receiver missed.
"""

import time

import dagster as dg

from mlops_assets.core.common.names import safe_text
from mlops_assets.core.intake.landing import TickCursor, plan_tick
from mlops_assets.core.modeling.retraining import RetrainCursor, retry_wait
from mlops_assets.defs.data_assets import contributed_data, integrated_dataset, iris_dataset
from mlops_assets.defs.model_assets import baseline_model, registered_model_version, trained_model
from mlops_assets.defs.partitions import contributions_partitions
from mlops_assets.defs.resources import LandingZone, ModelRegistry, Webhooks
from mlops_assets.settings import current_settings

_settings = current_settings()

STAGE_TAG = "mlops/stage"  # "ingest" or "retrain": what the sensors wait for
RUN_KEY_TAG = "dagster/run_key"
THROUGH_TAG = "mlops/retrain_through"  # the materialization id a retrain was asked to cover
FINISHED = [
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
]
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


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
    request its intake run in the same tick (see ``plan_tick``).

    A file is new when its partition does not exist yet: Dagster's own partition list is the
    record of what was taken, so no timestamp can make the sensor skip a file. The run key is
    the content version, so the same bytes never launch a second run. Refused entries
    (symbolic links, devices, unsafe names) are logged once and never read.
    """
    if context.instance.get_latest_materialization_event(iris_dataset.key) is None:
        # Contributions are judged against the iris data; the automation sensor builds it.
        return dg.SkipReason("waiting for iris_dataset: contributions are judged against it")
    plan = plan_tick(
        landing.scan(),
        known=set(context.instance.get_dynamic_partitions(contributions_partitions.name)),
        cursor=TickCursor.parse(context.cursor),
        now=time.time(),
        writes_are_atomic=landing.writes_are_atomic,
        content_version=landing.content_version,
        already_taken=lambda version: _already_run(context.instance, version),
    )
    for line in plan.news:
        context.log.info(line)
    requests = [
        dg.RunRequest(
            run_key=intake.version,
            partition_key=intake.key,
            tags={
                STAGE_TAG: "ingest",
                # Whole (the intake finds its file by it): names with control characters are
                # refused before, and S3 keys are at most 1,024 bytes.
                "mlops/landing_path": safe_text(intake.file.relative_path, limit=1100),
                "mlops/contributor": safe_text(intake.file.contributor),
                # A crashed intake (killed worker) is launched again twice; a failing step
                # or check is not (run_retries.retry_on_asset_or_op_failure: false).
                "dagster/max_retries": "2",
                "dagster/max_runtime": str(int(_settings.intake_timeout) + 600),
            },
        )
        for intake in plan.intakes
    ]
    if not requests:
        reason = f"no new files in {landing.location}"
        if plan.waiting:
            reason += f"; {plan.waiting} still being written, taken once their size stops changing"
        if plan.cursor.reported:
            reason += f"; {len(plan.cursor.reported)} refused (see `mlops contributions`)"
        return dg.SensorResult(skip_reason=reason, cursor=plan.cursor.dump())
    context.log.info(
        "New contributions: " + ", ".join(r.tags["mlops/landing_path"] for r in requests)
    )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[
            contributions_partitions.build_add_request([r.partition_key for r in requests])
        ],
        cursor=plan.cursor.dump(),
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
    """Request one retrain for all contributions accepted since the last successful one,
    once no intake or retrain is running; after a failed retrain, again with backoff.

    A rejected contribution triggers nothing. Waiting for running intakes batches files that
    land together into one retrain. The cursor (``RetrainCursor``) moves past contributions
    only when a retrain that covered them succeeded, so none is left untrained because its
    retrain failed (a killed worker, MLflow down).
    """
    instance = context.instance
    cursor = RetrainCursor.parse(context.cursor)
    if cursor.launched is not None and _retrain_succeeded(instance, cursor.launched):
        cursor = cursor.succeeded()
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=contributed_data.key, after_storage_id=cursor.through),
        limit=1000,
        ascending=True,
    ).records
    if not records:
        return dg.SensorResult(skip_reason="no contribution to train on", cursor=cursor.dump())
    busy = {
        stage: instance.get_runs_count(dg.RunsFilter(statuses=UNFINISHED, tags={STAGE_TAG: stage}))
        for stage in ("ingest", "retrain")
    }
    if busy["ingest"] or busy["retrain"]:
        return dg.SensorResult(
            skip_reason=f"waiting: {busy['ingest']} intake run(s) and {busy['retrain']} "
            "retrain(s) unfinished",
            cursor=cursor.dump(),
        )
    accepted = [r.partition_key for r in records if _accepted(r)]
    newest = records[-1].storage_id
    if not accepted:
        return dg.SensorResult(
            skip_reason=f"{len(records)} contribution(s) ingested, none accepted: no retrain",
            cursor=cursor.skipping(newest).dump(),
        )
    failures, last_failure = _failures_since_success(instance)
    wait = retry_wait(failures) - (time.time() - last_failure)
    if wait > 0:
        return dg.SensorResult(
            skip_reason=f"{failures} retrain(s) failed in a row: trying again in {wait:.0f} s",
            cursor=cursor.dump(),
        )
    shown = ", ".join(accepted[:5]) + (
        f" and {len(accepted) - 5} more" if len(accepted) > 5 else ""
    )
    context.log.info(f"Retraining for accepted contribution(s): {shown}")
    request = dg.RunRequest(
        run_key=f"retrain-through-{newest}-attempt-{failures + 1}",
        tags={
            STAGE_TAG: "retrain",
            THROUGH_TAG: str(newest),
            "mlops/accepted_contributions": shown,
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor.launching(newest).dump())


def _accepted(record: "dg.EventLogRecord") -> bool:
    flag = record.asset_materialization.metadata.get("accepted")
    return flag is not None and bool(flag.value)


def _retrain_succeeded(instance: dg.DagsterInstance, through: int) -> bool:
    return bool(
        instance.get_run_records(
            dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.SUCCESS],
                tags={STAGE_TAG: "retrain", THROUGH_TAG: str(through)},
            ),
            limit=1,
        )
    )


def _failures_since_success(instance: dg.DagsterInstance) -> tuple[int, float]:
    """How many retrains in a row failed, newest first, and when the newest of them ended."""
    records = instance.get_run_records(
        dg.RunsFilter(statuses=FINISHED, tags={STAGE_TAG: "retrain"}), limit=20
    )
    failures, last = 0, 0.0
    for record in records:
        if record.dagster_run.status == dg.DagsterRunStatus.SUCCESS:
            break
        failures += 1
        last = max(last, record.end_time or record.create_timestamp.timestamp())
    return failures, last


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=_settings.sensor_interval,
)


@dg.sensor(
    minimum_interval_seconds=max(20, _settings.sensor_interval),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def mlflow_run_cleanup_sensor(
    context: dg.SensorEvaluationContext, registry: ModelRegistry
) -> dg.SkipReason:
    """End every MLflow run still RUNNING whose Dagster run is over (its process died): FAILED,
    or FINISHED for a run that succeeded. It compares both sides on every tick, so a tick that
    could not reach MLflow is simply made up by the next one."""
    from mlops_assets.core.registry.client import end_orphaned_runs, registry_errors

    def finished_as(dagster_run_id: str) -> str | None:
        run = context.instance.get_run_by_id(dagster_run_id)
        if run is None or run.status not in FINISHED:
            return None if run is not None else "FAILED"
        return "FINISHED" if run.status == dg.DagsterRunStatus.SUCCESS else "FAILED"

    with registry_errors(registry.tracking_uri):
        ended = end_orphaned_runs(registry.client(), registry.experiment_name, finished_as)
    for run_id, status in ended.items():
        context.log.info(f"Ended MLflow run {run_id} as {status}: its Dagster run is over")
    return dg.SkipReason(
        f"{len(ended)} MLflow run(s) ended" if ended else "no MLflow run left open"
    )


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
