"""The MLflow adapter: connecting (credentials, transient failures, retries), experiments,
finding and registering versions, and the task a registered model holds.

Nothing here decides anything: which version becomes ``champion``, and why, is
``core.promotion``'s. Aliases, not the deprecated stages, say what a version is (``tags``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlops_assets.core.registry import tags as tag
from mlops_assets.errors import RegistryAccessDeniedError, RegistryUnavailableError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

T = TypeVar("T")


@dataclass(frozen=True)
class RegisteredVersion:
    """MLflow's ``ModelInfo`` (what was logged) merged with the ``ModelVersion`` (where it sits
    in the registry)."""

    name: str
    version: str
    model_id: str
    model_uuid: str
    model_uri: str
    run_id: str
    signature: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def redact_uri(uri: str) -> str:
    """``http://user:secret@host`` -> ``http://***@host``: URIs may carry credentials."""
    return re.sub(r"//[^/@]+@", "//***@", uri)


@contextlib.contextmanager
def registry_errors(tracking_uri: str) -> Iterator[None]:
    """Turn "cannot reach the tracking server" failures into :class:`RegistryUnavailableError`
    and 401/403 answers into :class:`RegistryAccessDeniedError`."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise _unavailable(tracking_uri, _short(exc)) from exc
        if _http_status(exc) in (401, 403):
            raise RegistryAccessDeniedError(
                f"the MLflow server at {redact_uri(tracking_uri)} refused the credentials "
                f"(HTTP {_http_status(exc)})",
                hint="set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or "
                "MLFLOW_TRACKING_TOKEN to an account with access to the registry",
            ) from exc
        raise


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: no connection, a timeout, or a 5xx/429 from the server.

    "Not found", bad credentials and anything about the model itself are not transient.
    """
    import requests

    if isinstance(exc, requests.exceptions.RequestException):
        return True
    status = _http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    text = str(exc)
    return any(
        marker in text
        for marker in ("Max retries exceeded", "Connection refused", "timed out", "Read timed")
    )


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of an error the server answered with (None for local failures)."""
    from mlflow.exceptions import MlflowException, RestException

    if isinstance(exc, RestException) or (
        isinstance(exc, MlflowException) and "failed with error code" in str(exc)
    ):
        return exc.get_http_status_code()
    return None


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {redact_uri(str(exc))}"[:300]


def _unavailable(tracking_uri: str, what: str) -> RegistryUnavailableError:
    return RegistryUnavailableError(
        f"cannot reach the MLflow tracking server at {redact_uri(tracking_uri)} ({what})",
        hint="start the server or fix MLFLOW_TRACKING_URI; nothing was registered or promoted",
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying registry reads: at most ``attempts`` tries within ``max_seconds``,
    waiting 1, 2, 4 ... (at most ``max_wait``) seconds between them."""

    attempts: int
    max_seconds: float
    max_wait: float = 8.0


def with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> T:
    """``call()``, retried with exponential backoff while it fails transiently
    (:func:`is_transient`); other failures are raised at once.

    Only for reads: retrying a write such as creating a version could do it twice.
    """
    import backoff

    def report(details: dict[str, Any]) -> None:
        if on_retry is not None:
            on_retry(details["tries"], details["wait"], details["exception"])

    retrying = backoff.on_exception(
        backoff.expo,
        Exception,
        max_tries=policy.attempts,
        max_time=policy.max_seconds,
        max_value=policy.max_wait,
        jitter=None,  # one client per run: no herd to spread, and the bound stays exact
        giveup=lambda exc: not is_transient(exc),
        on_backoff=report,
        raise_on_giveup=True,
    )(call)
    return retrying()


def mlflow_client(tracking_uri: str) -> MlflowClient:
    """A client of the store at ``tracking_uri``; a new SQLite store starts as a copy of an
    empty one (``store``), instead of MLflow migrating a fresh file for seconds."""
    from mlflow import MlflowClient

    from mlops_assets.core.registry.store import prepare_sqlite_store

    prepare_sqlite_store(tracking_uri)

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """Return the id of experiment ``name``, creating it with ``artifact_location`` if needed.

    Creating it ourselves keeps artifacts where configured (under ``MLOPS_HOME`` by default)
    rather than in a ``mlruns`` folder of whatever directory a process happened to start in.
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = artifact_location
    if location and "://" not in location:
        Path(location).mkdir(parents=True, exist_ok=True)
        location = Path(location).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        # Another process created it between our lookup and create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def end_orphaned_runs(
    client: MlflowClient,
    experiment_name: str,
    finished_as: Callable[[str], str | None],
) -> dict[str, str]:
    """End the experiment's RUNNING MLflow runs whose Dagster run is over.

    ``finished_as`` maps a ``dagster_run_id`` to the status its MLflow run should end with
    (``FINISHED`` or ``FAILED``), or None while that Dagster run goes on. A step ends its
    MLflow run itself; this covers a process that died (killed, out of memory) before it
    could. Returns the ids of the runs it ended, with their status.
    """
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return {}
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'"
    )
    ended = {}
    for run in runs:
        dagster_run_id = run.data.tags.get(tag.DAGSTER_RUN_ID)
        status = finished_as(dagster_run_id) if dagster_run_id else None
        if status is not None:
            client.set_terminated(run.info.run_id, status=status)
            ended[run.info.run_id] = status
    return ended


def get_version_by_alias(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """The version carrying ``alias``, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def register_model_version(
    client: MlflowClient, model_info: ModelInfo, *, model_name: str, tags: dict[str, str]
) -> RegisteredVersion:
    """Register ``model_info`` as a new version of ``model_name`` with ``tags``.

    ``model_uuid`` and ``model_id`` become version tags so a version can be found from either.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    all_tags = {tag.MODEL_UUID: model_info.model_uuid, tag.MODEL_ID: model_info.model_id, **tags}
    version = client.create_model_version(
        name=model_name,
        source=model_info.model_uri,
        run_id=model_info.run_id,
        tags={k: str(v) for k, v in all_tags.items()},
        model_id=model_info.model_id,
    )
    return RegisteredVersion(
        name=model_name,
        version=str(version.version),
        model_id=model_info.model_id,
        model_uuid=model_info.model_uuid,
        model_uri=model_info.model_uri,
        run_id=model_info.run_id,
        signature=str(model_info.signature) if model_info.signature else None,
    )


def get_version_by_model_uuid(
    client: MlflowClient, model_name: str, model_uuid: str
) -> ModelVersion | None:
    """The version whose logged model has ``model_uuid`` (stored as a searchable tag)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", model_uuid):
        return None  # never part of a filter string: model ids are m-<hex>
    versions = client.search_model_versions(
        f"name = '{model_name}' AND tags.model_uuid = '{model_uuid}'"
    )
    return versions[0] if versions else None


def get_version_by_fingerprint(
    client: MlflowClient, model_name: str, fingerprint: str
) -> ModelVersion | None:
    """The first version of ``model_name`` trained on the same data the same way
    (``TrainingSpec.fingerprint``), unless its registration was abandoned."""
    if not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
        return None  # never part of a filter string: fingerprints are sha256 hex digests
    versions = client.search_model_versions(
        f"name = '{model_name}' AND tags.{tag.TRAINING_FINGERPRINT} = '{fingerprint}'"
    )
    usable = [v for v in versions if v.tags.get(tag.REGISTRATION) != "abandoned"]
    return min(usable, key=lambda v: int(v.version)) if usable else None


def claim_model_for_task(client: MlflowClient, model_name: str, task_name: str) -> None:
    """Tag ``model_name`` with the task its versions predict (creating it when new), and
    refuse a model that belongs to another task: a registry of iris models must not receive
    a wine candidate, nor a wine baseline be compared with iris ones."""
    from mlflow.exceptions import MlflowException

    from mlops_assets.errors import ConfigurationError

    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(model_name, tags={tag.TASK: task_name})
        return
    held = model.tags.get(tag.TASK)
    if held is None:  # registered before models were tagged with their task
        client.set_registered_model_tag(model_name, tag.TASK, task_name)
    elif held != task_name:
        raise ConfigurationError(
            f"the registered model {model_name} holds {held!r} models, and MLOPS_TASK names "
            f"the {task_name!r} task",
            hint=f"set MLOPS_MODEL_NAME to a model of the {task_name} task (the default is "
            f"{task_name}-classifier), or MLOPS_TASK back to the {held!r} task file",
        )
