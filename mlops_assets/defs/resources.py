"""Resources: one per outside system (Parquet storage, landing zone, MLflow tracking, registry).

Heavy libraries (mlflow, dagster-mlflow) are imported inside functions: every run process
imports this code location, and most steps never touch MLflow.
"""

import contextlib
import os
import shutil
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import dagster as dg
from pydantic import Field

from mlops_assets.core.common.names import safe_text
from mlops_assets.core.intake.landing import (
    LandingFile,
    Listing,
    RefusedEntry,
    entry_problem,
    is_waiting,
    refused,
)
from mlops_assets.settings import apply_process_defaults

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from mlops_assets.core.modeling.baseline import BaselinePolicy
    from mlops_assets.core.registry.client.promotion import PromotionGate
    from mlops_assets.core.registry.webhooks import DeliveryPolicy


class DatasetStore(dg.ConfigurableResource):
    """Where datasets live as Parquet (and contribution reports as JSON), under ``root``.

    Everything is addressed by a key relative to ``root`` (``reference/train.parquet``). Code
    reads and writes local files: ``fetch`` gives the local path of a stored file,
    ``fetch_tree`` of a stored folder, ``local_path`` where to write one and ``publish``
    stores what was written there. Here ``root`` is a local folder, so all of them are that
    folder and ``publish`` has nothing left to do; the S3 flavour mirrors keys into a
    scratch folder.
    """

    REFERENCE_TRAIN: ClassVar[str] = "reference/train.parquet"
    BENCHMARK: ClassVar[str] = "reference/benchmark.parquet"
    CONTRIBUTIONS: ClassVar[str] = "contributions"
    # The bytes of accepted contributions, as ingested: <sha256[:16]>/<file name>.
    ORIGINALS: ClassVar[str] = "originals"

    root: str

    @classmethod
    def contribution(cls, contribution_id: str, file: str = "") -> str:
        """The key of a contribution's folder, or of ``file`` in it."""
        return "/".join(filter(None, (cls.CONTRIBUTIONS, contribution_id, file)))

    @staticmethod
    def integrated(sha256: str) -> str:
        # Versioned by content hash, so the exact data any model was trained on stays readable.
        return f"integrated/{sha256[:16]}.parquet"

    def uri(self, key: str) -> str:
        """Where ``key`` is stored, for metadata and messages."""
        return str(self.local_path(key))

    def local_path(self, key: str) -> Path:
        return Path(self.root).joinpath(*key.split("/"))

    def exists(self, key: str) -> bool:
        return self.local_path(key).exists()

    def fetch(self, key: str) -> Path:
        """A local path holding the stored file ``key``."""
        return self.local_path(key)

    def fetch_tree(self, key: str, ending: str | tuple[str, ...] = "") -> Path:
        """A local folder holding the stored files under ``key`` (those whose names end in
        ``ending``, when given)."""
        return self.local_path(key)

    def publish(self, key: str) -> None:
        """Store what was written at ``local_path(key)``: a file, or a folder replacing the
        stored one. Files are written in place here, atomically, so nothing is left to do."""

    def read_frame(self, key: str) -> "pd.DataFrame":
        import pandas as pd

        return pd.read_parquet(self.fetch(key))

    def write_frame(self, frame: "pd.DataFrame", key: str) -> None:
        """Store ``frame`` (without its index) as Parquet; readers never see half of it."""
        from mlops_assets.core.common.storage import write_parquet

        write_parquet(frame, self.local_path(key))
        self.publish(key)


class LandingZone(dg.ConfigurableResource, ABC):
    """Where contributors drop files, as ``<contributor>/<file>``: a local folder or S3."""

    # Whether a listed file is always complete. An S3 object appears whole when its upload
    # ends; a local file can be listed while it is still being written.
    writes_are_atomic: ClassVar[bool] = False

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the zone is, for messages (never with credentials)."""

    @abstractmethod
    def scan(self) -> Listing:
        """Every candidate contribution, oldest first, and every entry that is refused with
        the reason (symbolic links, devices, FIFOs, paths outside the zone or not at
        ``<contributor>/<file>``, unsafe names); files still being written and sidecars are
        left out of both."""

    def list_files(self) -> list[LandingFile]:
        return self.scan().files

    @abstractmethod
    def content_version(self, file: LandingFile) -> str:
        """An identifier of the file's bytes: the same bytes, under any name, give the same one.

        The sensor asks only for files it has not seen, so hashing stays off the hot path.
        """

    @abstractmethod
    def local_copy(self, relative_path: str) -> AbstractContextManager[Path]:
        """A local path holding the file's bytes for as long as the context is open."""

    @abstractmethod
    def put(self, source: Path, relative_path: str) -> None:
        """Place ``source`` at ``relative_path`` (how ``mlops submit`` delivers a file)."""


class LocalLandingZone(LandingZone):
    """A landing zone in a local folder. Only regular files are read: a symbolic link (to a
    file or a folder), a device or a FIFO is refused, never followed."""

    root: str

    @property
    def location(self) -> str:
        return self.root

    def scan(self) -> Listing:
        root = Path(self.root)
        if not root.is_dir():
            return Listing()
        files: list[LandingFile] = []
        refusals: list[RefusedEntry] = []
        for top in os.scandir(root):
            if is_waiting(top.name):
                continue
            if top.is_symlink():
                refusals.append(refused(top.name, "a symbolic link: it is never followed"))
            elif not top.is_dir(follow_symlinks=False):
                problem = entry_problem([top.name]) if top.is_file(follow_symlinks=False) else None
                refusals.append(refused(top.name, problem or "not a regular file or folder"))
            elif problem := entry_problem([top.name, "file"]):
                refusals.append(refused(f"{top.name}/", problem))
            else:
                self._scan_folder(top, files, refusals)
        return Listing(
            sorted(files, key=lambda f: (f.mtime, f.relative_path)),
            sorted(refusals, key=lambda r: r.relative_path),
        )

    @staticmethod
    def _scan_folder(
        folder: os.DirEntry, files: list[LandingFile], refusals: list[RefusedEntry]
    ) -> None:
        for entry in os.scandir(folder.path):
            relative = f"{folder.name}/{entry.name}"
            if is_waiting(entry.name):
                continue
            if entry.is_symlink():
                refusals.append(refused(relative, "a symbolic link: it is never followed"))
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                problem = entry_problem([folder.name, entry.name, "file"])
            elif not stat.S_ISREG(info.st_mode):
                problem = "not a regular file (a device, FIFO or socket)"
            else:
                problem = entry_problem([folder.name, entry.name])
            if problem:
                refusals.append(refused(relative, problem))
                continue
            files.append(
                LandingFile(
                    relative_path=relative,
                    contributor=folder.name,
                    name=entry.name,
                    size=info.st_size,
                    mtime=info.st_mtime,
                )
            )

    def _path(self, relative_path: str) -> Path:
        """The file at ``relative_path``, refused unless it is a regular file inside the zone
        reached without a symbolic link."""
        from mlops_assets.errors import LandingEntryRefusedError

        root = Path(self.root).resolve()
        parts = relative_path.split("/")
        path = root.joinpath(*parts)
        problem = entry_problem(parts)
        if problem is None and (path.is_symlink() or path.parent.is_symlink()):
            problem = "a symbolic link: it is never followed"
        if problem is None and not path.resolve().is_relative_to(root):
            problem = "outside the landing zone"
        if problem is None and path.exists() and not path.is_file():
            problem = "not a regular file"
        if problem:
            raise LandingEntryRefusedError(
                f"{safe_text(relative_path, limit=200)} in the landing zone is refused: {problem}",
                hint="put a regular file at <contributor>/<file>",
            )
        return path

    def content_version(self, file: LandingFile) -> str:
        from mlops_assets.core.common.hashing import file_sha256

        return f"sha256:{file_sha256(self._path(file.relative_path))}"

    @contextlib.contextmanager
    def local_copy(self, relative_path: str) -> Iterator[Path]:
        yield self._path(relative_path)  # already local: read in place, never modified

    def put(self, source: Path, relative_path: str) -> None:
        target = self._path(relative_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")  # ignored until renamed
        shutil.copyfile(source, partial)
        os.replace(partial, target)


class ModelRegistry(dg.ConfigurableResource):
    """The MLflow Model Registry holding ``model_name``, and links into an MLflow UI."""

    tracking_uri: str
    model_name: str
    experiment_name: str
    ui_url: str | None = None

    def client(self) -> "MlflowClient":
        apply_process_defaults()
        from mlops_assets.core.registry.client import mlflow_client

        return mlflow_client(self.tracking_uri)

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        if not self.ui_url:
            return None
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_url(self, version: str) -> str | None:
        if not self.ui_url:
            return None
        return f"{self.ui_url.rstrip('/')}/#/models/{self.model_name}/versions/{version}"


class TrainingDataPolicy(dg.ConfigurableResource):
    """What the training set must look like before a model is trained on it."""

    min_class_share: float = 0.15
    min_training_rows: int = 30


class PromotionPolicy(dg.ConfigurableResource):
    """When a candidate may be registered and when it replaces the champion."""

    primary_metric: str = "accuracy"
    min_improvement: float = 0.0
    significance: float = 0.0  # 0: no McNemar test
    min_benchmark_rows: int = 30
    accuracy_floor: float = 0.9

    def gate(self) -> "PromotionGate":
        from mlops_assets.core.registry.client.promotion import PromotionGate

        return PromotionGate(
            metric=self.primary_metric,
            min_improvement=self.min_improvement,
            significance=self.significance,
            min_benchmark_rows=self.min_benchmark_rows,
        )


class BaselineLoader(dg.ConfigurableResource):
    """Where the baseline comes from and what it must pass: see ``resolve_baseline``.

    Pickle and joblib files load only from ``trusted_model_dir`` (unpickling runs code), and
    with ``sha256`` set only the file with that hash loads.
    """

    source: str
    trusted_model_dir: str | None = None
    sha256: str | None = None
    validators: list[str] = Field(default_factory=list)
    registry_retries: int = 6
    registry_retry_seconds: float = 60.0

    def policy(self) -> "BaselinePolicy":  # quoted: resources cannot use __future__ annotations
        from mlops_assets.core.modeling.baseline import BaselinePolicy
        from mlops_assets.core.modeling.model_loading import FileTrust, ModelSource
        from mlops_assets.core.registry.client import RetryPolicy

        trusted = Path(self.trusted_model_dir).expanduser() if self.trusted_model_dir else None
        return BaselinePolicy(
            source=ModelSource.parse(self.source),
            trust=FileTrust(trusted, self.sha256),
            validators=tuple(self.validators),
            retry=RetryPolicy(
                attempts=self.registry_retries, max_seconds=self.registry_retry_seconds
            ),
        )


class Webhooks(dg.ConfigurableResource):
    """Standard Webhooks for registry events to ``url`` (off when unset), signed with
    ``secret`` (``MLOPS_WEBHOOK_SECRET``: one or more space-separated ``whsec_`` secrets, given
    as an ``EnvVar`` so the UI never shows it). Every event waits in ``outbox`` until a
    receiver takes it; see :mod:`mlops_assets.core.registry.webhooks`."""

    url: str | None = None
    secret: str | None = None
    outbox: str
    timeout_seconds: float = 5.0
    max_age_seconds: float = 24 * 3600.0

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.secret)

    def _policy(self, timeout: float | None = None) -> "DeliveryPolicy":
        from mlops_assets.core.registry.webhooks import DeliveryPolicy

        return DeliveryPolicy(timeout=timeout or self.timeout_seconds, max_age=self.max_age_seconds)

    def send(self, event_type: str, data: dict[str, Any], *, timeout: float = 2.0) -> str | None:
        """Queue the event, then try it once within ``timeout`` seconds (a slow receiver does
        not hold up the caller); a line for the log, None when webhooks are off."""
        if not self.enabled:
            return None
        from mlops_assets.core.registry.webhooks import Outbox, WebhookEvent, parse_secrets, send

        assert self.url is not None and self.secret is not None
        return send(
            Outbox(Path(self.outbox)),
            self.url,
            parse_secrets(self.secret),
            WebhookEvent.new(event_type, data),
            self._policy(timeout),
        )

    def deliver_due(self) -> dict[str, int] | None:
        """Try every queued event whose next attempt is due; None when webhooks are off."""
        if not self.enabled:
            return None
        from mlops_assets.core.registry.webhooks import Outbox, deliver_due, parse_secrets

        assert self.url is not None and self.secret is not None
        return deliver_due(
            Outbox(Path(self.outbox)), self.url, parse_secrets(self.secret), self._policy()
        )


@dg.resource(
    config_schema={
        "experiment_name": dg.Field(str),
        "mlflow_tracking_uri": dg.Field(str),
        "artifact_location": dg.Field(dg.Noneable(str), default_value=None, is_required=False),
    },
    description="dagster-mlflow's mlflow_tracking: one MLflow run per Dagster run.",
)
def mlflow_tracking(init_context: dg.InitResourceContext) -> Iterator[Any]:
    """dagster-mlflow's ``mlflow_tracking``, imported lazily and with the experiment created
    where its artifacts belong; a tracking server that is down is waited for a little (4
    attempts within 30 s), then fails the run with a clear error (the retrain is tried again
    by ``retrain_sensor``)."""
    apply_process_defaults()
    from dagster_mlflow import mlflow_tracking as dagster_mlflow_tracking

    from mlops_assets.core.registry.client import (
        RetryPolicy,
        ensure_experiment,
        mlflow_client,
        registry_errors,
        with_retries,
    )

    config = init_context.resource_config
    uri = config["mlflow_tracking_uri"]

    def start() -> tuple[Iterator[Any], Any]:
        ensure_experiment(
            mlflow_client(uri), config["experiment_name"], config["artifact_location"]
        )
        resource = dagster_mlflow_tracking.resource_fn(init_context)
        return resource, next(resource)

    def log_retry(attempt: int, wait: float, exc: BaseException) -> None:
        init_context.log.warning(
            f"MLflow not reachable (attempt {attempt}), retrying in {wait:.0f} s"
        )

    # Getting or creating the experiment and the run is safe to repeat: dagster-mlflow finds
    # the Dagster run's MLflow run by its tag before it starts one.
    with registry_errors(uri):
        resource, mlf = with_retries(
            start, RetryPolicy(attempts=4, max_seconds=30), on_retry=log_retry
        )
    # dagster-mlflow leaves ``mlflow_run_id`` unset when it started a fresh run; record it so
    # every step of this Dagster run reopens that run rather than starting another.
    mlf.mlflow_run_id = mlf.mlflow_run_id or mlf.active_run().info.run_id
    mlf.set_tag("mlflow.runName", f"dagster-{init_context.run_id[:8]}")
    try:
        yield mlf
    finally:
        resource.close()  # mlflow_step has already ended the run with the right status


@contextlib.contextmanager
def mlflow_step(mlf: Any) -> Iterator[str]:
    """Make the Dagster run's MLflow run active for one step and always end it.

    ``end_mlflow_on_run_finished`` only hooks op jobs; asset runs launched from the UI, the CLI,
    a sensor or automation would leave the MLflow run RUNNING. Ending it after every step
    (FINISHED, or FAILED on an exception) covers every launch path; the next step of the same
    Dagster run reopens the same MLflow run, found by its ``dagster_run_id`` tag.
    """
    import mlflow

    active = mlflow.active_run()
    if active is None or active.info.run_id != mlf.mlflow_run_id:
        if active is not None:
            mlflow.end_run()
        mlflow.start_run(run_id=mlf.mlflow_run_id)
    try:
        yield mlf.mlflow_run_id
    except BaseException as exc:
        mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    mlflow.end_run(status="FINISHED")
