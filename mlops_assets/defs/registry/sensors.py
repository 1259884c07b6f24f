"""The clean-up of what a dead process left in MLflow, and the redelivery of webhook events
a receiver missed."""

import dagster as dg

from mlops_assets.resources import ModelRegistry, Webhooks


def build_registry_sensors(interval_seconds: int) -> list[dg.SensorDefinition]:
    @dg.sensor(
        name="mlflow_run_cleanup_sensor",
        minimum_interval_seconds=max(20, interval_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def mlflow_run_cleanup_sensor(
        context: dg.SensorEvaluationContext, registry: ModelRegistry
    ) -> dg.SkipReason:
        """End every MLflow run still RUNNING whose Dagster run is over (its process died):
        FAILED, or FINISHED for a run that succeeded. It compares both sides on every tick, so
        a tick that could not reach MLflow is simply made up by the next one."""
        from mlops_assets.core.registry.client import end_orphaned_runs, registry_errors

        with registry_errors(registry.tracking_uri):
            ended = end_orphaned_runs(
                registry.client(),
                registry.experiment,
                lambda run_id: _mlflow_status_of(context.instance, run_id),
            )
        for run_id, status in ended.items():
            context.log.info(f"Ended MLflow run {run_id} as {status}: its Dagster run is over")
        return dg.SkipReason(
            f"{len(ended)} MLflow run(s) ended" if ended else "no MLflow run left open"
        )

    @dg.sensor(
        name="webhook_redelivery_sensor",
        minimum_interval_seconds=min(30, interval_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def webhook_redelivery_sensor(
        context: dg.SensorEvaluationContext, webhooks: Webhooks
    ) -> dg.SkipReason:
        """Deliver the webhook events waiting in the outbox whose next attempt is due."""
        counts = webhooks.deliver_due()
        if counts is None:
            return dg.SkipReason("webhooks are off: MLOPS_WEBHOOK_URL is not set")
        return dg.SkipReason(
            f"{counts['delivered']} event(s) delivered, {counts['waiting']} still waiting, "
            f"{counts['dead']} given up (in the outbox's dead/), {counts['not_due']} not due yet"
        )

    return [mlflow_run_cleanup_sensor, webhook_redelivery_sensor]


def _mlflow_status_of(instance: dg.DagsterInstance, dagster_run_id: str) -> str | None:
    """How an MLflow run of `dagster_run_id` ends: None while the Dagster run goes on."""
    run = instance.get_run_by_id(dagster_run_id)
    if run is None:
        return "FAILED"
    if not run.is_finished:
        return None
    return "FINISHED" if run.status == dg.DagsterRunStatus.SUCCESS else "FAILED"
