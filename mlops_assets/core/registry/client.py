"""MLflow: logging, safe loading and registering models, and moving aliases.

Aliases, not the deprecated stages, say what a version is: ``champion`` is served and is the
model to beat, ``challenger`` is the newest candidate, ``previous-champion`` makes a rollback
one command.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlops_assets.core.modeling.training import SKOPS_TRUSTED_TYPES
from mlops_assets.core.registry import tags as tag
from mlops_assets.core.registry.tags import CHAMPION, PREVIOUS_CHAMPION
from mlops_assets.errors import RegistryAccessDeniedError, RegistryUnavailableError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

    from mlops_assets.core.registry.webhooks import VersionEvent
    from mlops_assets.core.reporting.plots import Plot
    from mlops_assets.task import TaskSchema

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


def log_sklearn_model(
    model: Any,
    *,
    name: str,
    input_example: Any = None,
    signature: bool = True,
    code_paths: list[str] | None = None,
    task: TaskSchema | None = None,
) -> ModelInfo:
    """Log ``model`` to the active MLflow run in the skops format.

    With an ``input_example`` it is stored with the model and, unless ``signature`` is False,
    the signature is inferred from it and the model's predictions on it; with ``task``, the
    inputs are the task's features (numbers as doubles, categories as strings), every one
    required, whatever the example happens to hold. ``code_paths`` are files or directories
    the model needs at load time, copied next to it.
    """
    import mlflow
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    inferred = None
    if input_example is not None and signature:
        inferred = infer_signature(input_example, model.predict(input_example))
        if task is not None:
            columns = [
                ColSpec("string" if f.categorical else "double", f.name) for f in task.features
            ]
            inferred = ModelSignature(inputs=Schema(columns), outputs=inferred.outputs)
    return mlflow.sklearn.log_model(
        model,
        name=name,
        signature=inferred,
        input_example=input_example,
        code_paths=code_paths,
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        # Stating the requirements skips MLflow's inference, which re-imports the model in a
        # subprocess and costs ~10 s per logged model.
        pip_requirements=model_requirements(),
    )


def model_signature(model_uri: str, tracking_uri: str) -> Any:
    """The input/output signature ``model_uri`` was logged with, or None."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.models.get_model_info(model_uri).signature


def model_requirements() -> list[str]:
    """Pinned packages needed to load and run a logged model."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "numpy", "pandas")]


def load_sklearn_model(model_uri: str, tracking_uri: str | None = None) -> Any:
    """Load a scikit-learn model logged by :func:`log_sklearn_model`, safely.

    Only the skops format is accepted, and it is loaded with our own allow-list of types
    (``SKOPS_TRUSTED_TYPES``), never with one read from the model's files: a tampered artifact
    cannot widen what gets deserialized. ``tracking_uri`` resolves ``models:/`` URIs against
    that registry rather than the process-wide one.
    """
    return load_with_size(model_uri, tracking_uri)[0]


def load_with_size(model_uri: str, tracking_uri: str | None = None) -> tuple[Any, int]:
    """:func:`load_sklearn_model`, and the size in bytes of the model's files."""
    from mlops_assets.core.modeling.model_loading import directory_size, load_mlflow_directory

    with local_model_files(model_uri, tracking_uri) as local:
        return load_mlflow_directory(local, model_uri), directory_size(local)


@contextlib.contextmanager
def local_model_files(model_uri: str, tracking_uri: str | None = None) -> Iterator[Path]:
    """A local directory holding the model's files: in place for a local artifact store,
    else a temporary download removed on exit."""
    import tempfile
    from urllib.parse import unquote, urlparse

    import mlflow

    source = _download_uri(model_uri, tracking_uri)
    parsed = urlparse(source)
    if parsed.scheme == "file" and Path(unquote(parsed.path)).is_dir():
        yield Path(unquote(parsed.path))
        return
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        yield Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=tmp, tracking_uri=tracking_uri
            )
        )


def _download_uri(model_uri: str, tracking_uri: str | None) -> str:
    """Where a ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` URI's files are."""
    from mlops_assets.core.modeling.model_loading import ModelSource

    if tracking_uri is None or not model_uri.startswith("models:/"):
        return model_uri
    source = ModelSource.parse(model_uri)
    client = mlflow_client(tracking_uri)
    version = (
        source.version or client.get_model_version_by_alias(source.model_name, source.alias).version
    )
    return client.get_model_version_download_uri(source.model_name, str(version))


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


def promote_to_champion(client: MlflowClient, model_name: str, version: str) -> str | None:
    """Point ``champion`` at ``version``; the old champion keeps ``previous-champion``.

    Returns the previous champion's version, if any.
    """
    previous = get_version_by_alias(client, model_name, CHAMPION)
    if previous is not None and str(previous.version) != str(version):
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, previous.version)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    return str(previous.version) if previous is not None else None


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


@dataclass(frozen=True)
class ChampionChange:
    """Who moved ``champion`` from one version to another, how, why and when."""

    model_name: str
    from_version: str | None
    to_version: str
    how: str  # "rollback" or "manual"
    actor: str
    reason: str
    at: str

    def version_event(self) -> VersionEvent:
        from mlops_assets.core.registry.webhooks import VersionEvent

        return VersionEvent(
            model_name=self.model_name,
            version=self.to_version,
            aliases=[CHAMPION],
            promoted=True,
            reason=self.reason,
            how=self.how,
            by=self.actor,
            previous_version=self.from_version,
        )


def set_champion_by_hand(
    client: MlflowClient, model_name: str, version: str, *, actor: str, reason: str, how: str
) -> ChampionChange:
    """Point ``champion`` at ``version`` outside the promotion gate, and audit it as tags on
    the version (``champion_set_by``, ``champion_set_how``, ``champion_set_reason``,
    ``champion_set_at``). The old champion keeps ``previous-champion``."""
    from datetime import UTC, datetime

    from mlflow.exceptions import MlflowException

    from mlops_assets.errors import ConfigurationError, ModelNotFoundError

    if not reason.strip():
        raise ConfigurationError(
            "a manual change of the champion needs a reason", hint="pass --reason '...'"
        )
    try:
        client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise ModelNotFoundError(
            f"{model_name} has no version {version}",
            hint="`mlops model show --json` lists the current versions' tags and aliases",
        ) from None
    change = ChampionChange(
        model_name=model_name,
        from_version=promote_to_champion(client, model_name, str(version)),
        to_version=str(version),
        how=how,
        actor=actor,
        reason=reason.strip(),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    audit = {"by": change.actor, "how": change.how, "reason": change.reason, "at": change.at}
    for key, value in {**audit, "from": change.from_version or "none"}.items():
        client.set_model_version_tag(
            model_name, str(version), f"{tag.CHAMPION_SET_PREFIX}{key}", value
        )
    return change


def rollback_champion(
    client: MlflowClient, model_name: str, *, actor: str, reason: str
) -> ChampionChange:
    """Move ``champion`` back to ``previous-champion``; the version rolled back from becomes
    ``previous-champion``, so a second rollback undoes the first."""
    from mlops_assets.errors import ModelNotFoundError

    previous = get_version_by_alias(client, model_name, PREVIOUS_CHAMPION)
    if previous is None:
        raise ModelNotFoundError(
            f"{model_name} has no {PREVIOUS_CHAMPION!r} version to roll back to",
            hint="a rollback needs an earlier champion; promote a version by hand instead",
        )
    return set_champion_by_hand(
        client, model_name, str(previous.version), actor=actor, reason=reason, how="rollback"
    )


def model_file_digests(tracking_uri: str, model_name: str, version: str) -> dict[str, str]:
    """sha256 of every file of a registered version's model (its weights, not just metadata)."""
    from mlops_assets.core.registry.attestation import directory_digests

    with local_model_files(f"models:/{model_name}/{version}", tracking_uri) as local:
        return directory_digests(local)


def record_attestation(
    client: MlflowClient, model_name: str, version: str, run_id: str, document: dict[str, Any]
) -> str:
    """Store ``document`` as ``version``'s attestation (an artifact of its MLflow run, at a
    path named by the version) and tag the version with its path and sha256; returns its URI."""
    from mlops_assets.core.registry.attestation import artifact_path

    path = artifact_path(model_name, version)
    client.log_dict(run_id, document, path)
    client.set_model_version_tag(model_name, version, tag.ATTESTATION_PATH, path)
    client.set_model_version_tag(
        model_name, version, tag.ATTESTATION_SHA256, document["document_sha256"]
    )
    return f"runs:/{run_id}/{path}"


def log_plots(plots: list[Plot], folder: str) -> None:
    """``plots`` as PNG artifacts of the active MLflow run, under ``folder`` (the same bytes
    the Dagster UI shows)."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        for plot in plots:
            (Path(tmp) / plot.file_name).write_bytes(plot.png)
        mlflow.log_artifacts(tmp, artifact_path=folder)


def read_attestation(client: MlflowClient, version: ModelVersion) -> dict[str, Any] | None:
    """``version``'s attestation, or None when it has none (registered before attestations,
    or before they were kept per version and not the one its run's record is about)."""
    import json
    import tempfile

    from mlflow.exceptions import MlflowException

    from mlops_assets.core.registry.attestation import LEGACY_ARTIFACT_PATH

    path = version.tags.get(tag.ATTESTATION_PATH, LEGACY_ARTIFACT_PATH)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            document = json.loads(
                Path(client.download_artifacts(version.run_id, path, tmp)).read_text()
            )
    except (MlflowException, OSError, ValueError):
        return None
    if str(document.get("version")) != str(version.version):
        return None  # a shared record of the run, about another version
    return document


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
