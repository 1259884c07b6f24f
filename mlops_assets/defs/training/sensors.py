"""What starts a retrain: accepted contributions (`retrain_sensor`), and declarative
automation for everything downstream of the reference data (`automation_sensor`)."""

import time

import dagster as dg

from mlops_assets.core.modeling.retraining import Ingested, RetrainCursor, plan_retrain
from mlops_assets.defs.contributions.assets import CONTRIBUTED_DATA
from mlops_assets.defs.contributions.partitions import STAGE_TAG
from mlops_assets.defs.data.assets import INTEGRATED_DATASET
from mlops_assets.defs.registry.assets import contributor_scoreboard, registered_model_version
from mlops_assets.defs.training.assets import BASELINE_MODEL, trained_model

THROUGH_TAG = "mlops/retrain_through"  # the materialization id a retrain was asked to cover
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets(
        BASELINE_MODEL,
        INTEGRATED_DATASET,
        trained_model,
        registered_model_version,
        contributor_scoreboard,
    ),
    description="Rebuild the training set, value the new contributions, train a candidate, "
    "compare it with the champion (re-read from the registry), register it and update the "
    "contributor scoreboard: what an accepted contribution triggers.",
)


def build_retrain_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="retrain_sensor",
        job=retrain_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Request one retrain for all contributions accepted since the last successful one,
        once no intake is still deciding and no retrain is running; after a failed retrain,
        again with backoff.

        A rejected contribution triggers nothing. Waiting for intakes still deciding batches
        files that land together into one retrain; an intake has decided once its
        `contributed_data` is materialized, so its checks (the Great Expectations suite)
        run beside the retrain instead of before it. The cursor (`RetrainCursor`) moves past
        contributions only when a retrain that covered them succeeded, so none is left
        untrained because its retrain failed (a killed worker, MLflow down).
        """
        instance = context.instance
        cursor = RetrainCursor.parse(context.cursor)
        if cursor.launched is not None and _retrain_succeeded(instance, cursor.launched):
            cursor = cursor.succeeded()
        failures, last_failure = _failures_since_success(instance)
        plan = plan_retrain(
            cursor,
            _ingested_since(instance, cursor.through),
            busy_intakes=_intakes_deciding(instance),
            busy_retrains=_unfinished(instance, "retrain"),
            failures=failures,
            seconds_since_failure=time.time() - last_failure,
        )
        if plan.through is None:
            return dg.SensorResult(skip_reason=plan.skip_reason, cursor=plan.cursor.dump())
        context.log.info(f"Retraining for accepted contribution(s): {plan.shown}")
        request = dg.RunRequest(
            run_key=f"retrain-through-{plan.through}-attempt-{plan.attempt}",
            tags={
                STAGE_TAG: "retrain",
                THROUGH_TAG: str(plan.through),
                "mlops/accepted_contributions": plan.shown,
            },
        )
        return dg.SensorResult(run_requests=[request], cursor=plan.cursor.dump())

    return retrain_sensor


def _ingested_since(instance: dg.DagsterInstance, storage_id: int | None) -> list[Ingested]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CONTRIBUTED_DATA, after_storage_id=storage_id),
        limit=1000,
        ascending=True,
    ).records
    return [
        Ingested(r.storage_id, r.partition_key or "", _accepted(r.asset_materialization))
        for r in records
    ]


def _accepted(materialization: dg.AssetMaterialization | None) -> bool:
    flag = materialization.metadata.get("accepted") if materialization else None
    return flag is not None and bool(flag.value)


def _unfinished(instance: dg.DagsterInstance, stage: str) -> int:
    return instance.get_runs_count(dg.RunsFilter(statuses=UNFINISHED, tags={STAGE_TAG: stage}))


def _intakes_deciding(instance: dg.DagsterInstance) -> int:
    """Unfinished intake runs that have not materialized their contribution yet."""
    runs = instance.get_run_records(
        dg.RunsFilter(statuses=UNFINISHED, tags={STAGE_TAG: "ingest"}), limit=1000
    )
    return sum(
        not instance.get_records_for_run(
            r.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1
        ).records
        for r in runs
    )


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


def build_automation_sensor(interval_seconds: int) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "automation_sensor",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=interval_seconds,
    )
