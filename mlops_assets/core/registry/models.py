"""Model files in MLflow: logging a scikit-learn model (skops, with its signature and
pinned requirements), loading one back safely, hashing its files, and logging plots."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlops_assets.core.registry.model_files import SKOPS_TRUSTED_TYPES

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

    from mlops_assets.task import TaskSchema


class PngFile(Protocol):
    """A picture to store: ``reporting.plots.Plot`` is one."""

    file_name: str
    png: bytes


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
    from mlops_assets.core.registry.model_files import directory_size, load_mlflow_directory

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
    from mlops_assets.core.registry.client import mlflow_client
    from mlops_assets.core.registry.model_files import ModelSource

    if tracking_uri is None or not model_uri.startswith("models:/"):
        return model_uri
    source = ModelSource.parse(model_uri)
    client = mlflow_client(tracking_uri)
    version = (
        source.version or client.get_model_version_by_alias(source.model_name, source.alias).version
    )
    return client.get_model_version_download_uri(source.model_name, str(version))


def model_file_digests(tracking_uri: str, model_name: str, version: str) -> dict[str, str]:
    """sha256 of every file of a registered version's model (its weights, not just metadata)."""
    from mlops_assets.core.common.hashing import directory_digests

    with local_model_files(f"models:/{model_name}/{version}", tracking_uri) as local:
        return directory_digests(local)


def log_plots(plots: Iterable[PngFile], folder: str) -> None:
    """``plots`` as PNG artifacts of the active MLflow run, under ``folder`` (the same bytes
    the Dagster UI shows)."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        for plot in plots:
            (Path(tmp) / plot.file_name).write_bytes(plot.png)
        mlflow.log_artifacts(tmp, artifact_path=folder)


def version_file_digests(tracking_uri: str, model_name: str, version: str) -> dict[str, str] | None:
    """:func:`model_file_digests`, hashed in place when the files are local (no MLflow
    import); None when the version or its files cannot be found."""
    from mlops_assets.core.common.hashing import directory_digests
    from mlops_assets.core.registry.reader import find_version

    found = find_version(tracking_uri, model_name, version=version)
    if found is not None and (local := found.local_files()) is not None:
        return directory_digests(local)
    from mlflow.exceptions import MlflowException

    try:
        return model_file_digests(tracking_uri, model_name, version)
    except MlflowException:
        return None
