"""MLflow: the registry and the tracking of one MLflow run per Dagster run.

mlflow is imported inside methods: every run process imports this code location, and most
steps never touch MLflow.
"""

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

from mlops_assets.process import apply_process_defaults
from mlops_assets.resources.policies import SettingsResource

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_assets.core.modeling.candidate import AlreadyTrained


class ModelRegistry(SettingsResource):
    """The MLflow Model Registry holding `model_name`, and links into an MLflow UI."""

    tracking_uri: str
    model_name: str
    experiment: str
    mlflow_ui_url: str | None

    def client(self) -> "MlflowClient":
        apply_process_defaults()
        from mlops_assets.core.registry.client import mlflow_client

        return mlflow_client(self.tracking_uri)

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        if not self.mlflow_ui_url:
            return None
        return f"{self.mlflow_ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_url(self, version: str) -> str | None:
        if not self.mlflow_ui_url:
            return None
        return f"{self.mlflow_ui_url.rstrip('/')}/#/models/{self.model_name}/versions/{version}"

    def trained_alike(self, fingerprint: str) -> "AlreadyTrained | None":
        """A version of this model trained on the same data the same way, if any."""
        from mlops_assets.core.modeling.candidate import AlreadyTrained
        from mlops_assets.core.registry.client import get_version_by_fingerprint

        version = get_version_by_fingerprint(self.client(), self.model_name, fingerprint)
        if version is None:
            return None
        return AlreadyTrained(self.model_name, str(version.version), fingerprint)


class MlflowTracking(SettingsResource):
    """dagster-mlflow's tracking as a resource: one MLflow run per Dagster run, tagged with
    the Dagster run id, reopened by every step of that run (`step`) and always ended.

    Its start (getting or creating the experiment where its artifacts belong, then finding or
    starting the run) waits out a tracking server that is down for a little while (attempts
    after 1, 2, 4, 8 ... s, for 30 s: a restarting server takes ten seconds on a busy small
    machine), then fails the run with a clear error, which `retrain_sensor` retries.
    """

    tracking_uri: str
    experiment: str
    mlflow_artifacts: str | None
    _mlflow: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        apply_process_defaults()
        from dagster_mlflow.resources import MlFlow

        from mlops_assets.core.registry.client import (
            RetryPolicy,
            ensure_experiment,
            mlflow_client,
            registry_errors,
            with_retries,
        )

        config = {"experiment_name": self.experiment, "mlflow_tracking_uri": self.tracking_uri}

        def start() -> Any:
            ensure_experiment(
                mlflow_client(self.tracking_uri), self.experiment, self.mlflow_artifacts
            )
            return MlFlow(_ConfiguredContext(context, config))

        def log_retry(attempt: int, wait: float, exc: BaseException) -> None:
            context.log.warning(
                f"MLflow not reachable (attempt {attempt}), retrying in {wait:.0f} s"
            )

        # Repeating the start is safe: MlFlow finds the Dagster run's MLflow run by its tag
        # before it starts one.
        with registry_errors(self.tracking_uri):
            mlf = with_retries(start, RetryPolicy(attempts=8, max_seconds=30), on_retry=log_retry)
        # MlFlow leaves `mlflow_run_id` unset when it started a fresh run; record it so every
        # step of this Dagster run reopens that run rather than starting another.
        mlf.mlflow_run_id = mlf.mlflow_run_id or mlf.active_run().info.run_id
        mlf.set_tag("mlflow.runName", f"dagster-{context.run_id[:8]}")
        self._mlflow = mlf

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._mlflow is not None:
            self._mlflow.cleanup_on_error()  # `step` has already ended the run

    @contextlib.contextmanager
    def step(self) -> Iterator[str]:
        """Make the Dagster run's MLflow run active for one step and always end it; yields
        its id.

        `end_mlflow_on_run_finished` only hooks op jobs; asset runs launched from the UI,
        the CLI, a sensor or automation would leave the MLflow run RUNNING. Ending it after
        every step (FINISHED, or FAILED on an exception) covers every launch path; the next
        step of the same Dagster run reopens the same MLflow run.
        """
        import mlflow

        run_id = self._mlflow.mlflow_run_id
        active = mlflow.active_run()
        if active is None or active.info.run_id != run_id:
            if active is not None:
                mlflow.end_run()
            mlflow.start_run(run_id=run_id)
        try:
            yield run_id
        except BaseException as exc:
            mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        mlflow.end_run(status="FINISHED")


class _ConfiguredContext:
    """The init context as dagster-mlflow's legacy resource expects it: with a config dict."""

    def __init__(self, context: dg.InitResourceContext, config: dict[str, Any]) -> None:
        self.log, self.run_id, self.resource_config = context.log, context.run_id, config
        self.dagster_run = context.dagster_run
