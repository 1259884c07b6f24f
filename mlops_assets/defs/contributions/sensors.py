"""The landing-zone watcher: each new file becomes a `contributions` partition and an
intake run in the same tick."""

import time

import dagster as dg

from mlops_assets.core.common.names import safe_text
from mlops_assets.core.intake.ticks import PlannedIntake, TickCursor, plan_tick
from mlops_assets.defs.contributions.assets import CONTRIBUTED_DATA
from mlops_assets.defs.contributions.partition_keys import known_partitions
from mlops_assets.defs.contributions.partitions import (
    CONTENT_VERSION_TAG,
    CONTRIBUTOR_TAG,
    LANDED_AT_TAG,
    LANDING_PATH_TAG,
    STAGE_TAG,
    contributions_partitions,
)
from mlops_assets.resources import IntakeSettings, LandingZone

ingest_job = dg.define_asset_job(
    "ingest_contribution",
    selection=dg.AssetSelection.assets(CONTRIBUTED_DATA),
    partitions_def=contributions_partitions,
    description="Intake of one landed file: read, clean, judge, and the blocking checks.",
)


# Paths named in the log line of one tick; the rest are counted.
_NAMED_IN_LOG = 20


def build_contribution_sensor(
    interval_seconds: int, reference_asset: str, max_files_per_tick: int = 500
) -> dg.SensorDefinition:
    """The sensor, which waits for the task's reference data asset `reference_asset` and
    takes at most `max_files_per_tick` files a tick: one tick's partitions are one
    `add_dynamic_partitions` call (SQLite limits its variables) and its runs one queue batch."""

    @dg.sensor(
        name="contribution_sensor",
        job=ingest_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def contribution_sensor(
        context: dg.SensorEvaluationContext, landing: LandingZone, intake_policy: IntakeSettings
    ) -> dg.SensorResult | dg.SkipReason:
        """Register each new, complete landing-zone file as a `contributions` partition and
        request its intake run in the same tick (see `plan_tick`).

        A file is new when its partition does not exist yet: Dagster's own partition list is
        the record of what was taken, so no timestamp can make the sensor skip a file. The
        run key is the content version, so the same bytes never launch a second run. Refused
        entries (symbolic links, devices, unsafe names) are logged once and never read. A
        backlog over the per-tick cap is taken oldest first over the next ticks.
        """
        if context.instance.get_latest_materialization_event(dg.AssetKey(reference_asset)) is None:
            # Contributions are judged against the reference data; the automation sensor
            # builds it.
            return dg.SkipReason(
                f"waiting for {reference_asset}: contributions are judged against it"
            )
        now = time.time()
        plan = plan_tick(
            landing.scan(),
            known=known_partitions(context.instance, contributions_partitions.name, now),
            cursor=TickCursor.parse(context.cursor),
            now=now,
            writes_are_atomic=landing.writes_are_atomic,
            content_version=landing.content_version,
            already_taken=lambda version: _already_run(context.instance, version),
            max_intakes=max_files_per_tick,
        )
        for line in plan.news:
            context.log.info(line)
        if not plan.intakes:
            return dg.SensorResult(
                skip_reason=plan.skip_reason(landing.location), cursor=plan.cursor.dump()
            )
        requests = [_intake_request(i, intake_policy.intake_timeout) for i in plan.intakes]
        _log_taken(context, requests, plan.deferred, max_files_per_tick)
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[
                contributions_partitions.build_add_request([r.partition_key for r in requests])
            ],
            cursor=plan.cursor.dump(),
        )

    return contribution_sensor


def _log_taken(
    context: dg.SensorEvaluationContext,
    requests: list[dg.RunRequest],
    deferred: int,
    max_files_per_tick: int,
) -> None:
    """The files taken this tick (the first few by name) and how many wait for the next."""
    named = [r.tags[LANDING_PATH_TAG] for r in requests[:_NAMED_IN_LOG]]
    more = len(requests) - len(named)
    context.log.info(
        f"New contributions ({len(requests)}): "
        + ", ".join(named)
        + (f" and {more} more" if more else "")
    )
    if deferred:
        context.log.info(
            f"{deferred} more file(s) wait for the next tick: at most "
            f"{max_files_per_tick} a tick (MLOPS_SENSOR_MAX_FILES_PER_TICK), oldest first"
        )


def _intake_request(intake: PlannedIntake, timeout_seconds: float) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=intake.version,
        partition_key=intake.key,
        tags={
            STAGE_TAG: "ingest",
            # Whole (the intake reads its file by it): names with control characters are
            # refused before, and S3 keys are at most 1,024 bytes.
            LANDING_PATH_TAG: safe_text(intake.file.relative_path, limit=1100),
            CONTENT_VERSION_TAG: intake.version,
            CONTRIBUTOR_TAG: safe_text(intake.file.contributor),
            LANDED_AT_TAG: f"{intake.landed_at:.6f}",
            # A crashed intake (killed worker) is launched again twice; a failing step or
            # check is not (run_retries.retry_on_asset_or_op_failure: false).
            "dagster/max_retries": "2",
            "dagster/max_runtime": str(int(timeout_seconds) + 600),
        },
    )


def _already_run(instance: dg.DagsterInstance, run_key: str) -> bool:
    runs = instance.get_run_records(
        dg.RunsFilter(tags={"dagster/run_key": run_key, STAGE_TAG: "ingest"}), limit=1
    )
    return bool(runs)
