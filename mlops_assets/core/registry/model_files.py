"""Model files, loaded safely wherever a model comes from; whether one fits the task is
``core.modeling.model_checks``'s question.

Sources are the registry (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``) or a local
file: skops (``.skops``), an MLflow model directory, or pickle/joblib (``.pkl``, ``.pickle``,
``.joblib``). Unpickling runs arbitrary code, so pickle and joblib (and MLflow directories
that hold a pickle) are loaded only from the configured trusted directory, optionally pinned
to one sha256; skops files are loaded with our own type allow-list wherever they are.
"""

from __future__ import annotations

import contextlib
import re
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_assets.core.common.hashing import directory_digests, file_sha256
from mlops_assets.errors import (
    ConfigurationError,
    ModelCorruptError,
    ModelIncompatibleError,
    ModelNotFoundError,
    UntrustedModelError,
)

# Types outside skops' built-in safe set that our estimators contain (a forest's trees, and
# the one-hot encoder's output dtype). Models are loaded with exactly this allow-list (never
# one read from the model file), so a tampered artifact that smuggles in another type is
# refused instead of executed.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree", "numpy.dtype", "sklearn.utils._bunch.Bunch"]

_REGISTRY_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a registry version or alias, or a local file."""

    model_name: str | None = None
    alias: str | None = None
    version: str | None = None
    path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSource:
        """``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a local path."""
        text = text.strip()
        if text.startswith("models:/"):
            match = _REGISTRY_URI.fullmatch(text)
            if match is None:
                raise ConfigurationError(
                    f"baseline source {text!r} is not a registry model URI",
                    hint="use models:/NAME@ALIAS (e.g. models:/iris-classifier@champion) or "
                    "models:/NAME/VERSION",
                )
            return cls(match["name"], alias=match["alias"], version=match["version"])
        if not text:
            raise ConfigurationError(
                "the baseline source is empty", hint="use models:/NAME@ALIAS or a file path"
            )
        return cls(path=Path(text).expanduser())

    @property
    def in_registry(self) -> bool:
        return self.path is None

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"models:/{self.model_name}" + (
            f"@{self.alias}" if self.alias else f"/{self.version}"
        )


@dataclass(frozen=True)
class FileTrust:
    """Pickle/joblib files load only from under ``directory``; with ``sha256`` set, only the
    file (or MLflow directory) with that hash loads, whatever its format."""

    directory: Path | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class LoadStats:
    """How long a load took and what it cost in memory."""

    seconds: float
    peak_rss_mb: float
    size_mb: float


@dataclass(frozen=True)
class LoadedFile:
    model: Any
    format: str
    sha256: str
    stats: LoadStats


def timed_load(load: Callable[[], tuple[Any, int]]) -> tuple[Any, LoadStats]:
    """Run ``load`` (which returns a model and its size in bytes); return the model with the
    time it took and the process's peak RSS while it ran."""
    _reset_peak_rss()
    start = time.perf_counter()
    model, size = load()
    stats = LoadStats(
        seconds=round(time.perf_counter() - start, 3),
        peak_rss_mb=round(_peak_rss_bytes() / 2**20, 1),
        size_mb=round(size / 2**20, 3),
    )
    return model, stats


def _reset_peak_rss() -> None:
    """Start the kernel's high-water mark afresh, so the peak is this load's (Linux ≥ 4.0)."""
    # Elsewhere the peak is the process's since it started.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_bytes() -> int:
    """Peak RSS of this process: VmHWM on Linux (getrusage's maxrss survives exec, so a
    process started by a big one would report its parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def directory_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_model_file(path: Path, trust: FileTrust) -> LoadedFile:
    """Load a model from a local skops file, MLflow model directory, pickle or joblib file.

    The file is hashed before anything is deserialized, so a pinned sha256 is checked first.
    """
    if not path.exists():
        raise ModelNotFoundError(
            f"no model file at {path}", hint="check the path in MLOPS_BASELINE_SOURCE"
        )
    kind = file_format(path)
    sha256 = file_sha256(path) if path.is_file() else directory_sha256(path)
    if trust.sha256 and sha256 != trust.sha256.lower():
        raise UntrustedModelError(
            f"{path.name} has sha256 {sha256}, not the pinned {trust.sha256}",
            hint="the file changed since it was pinned: check where it came from, then "
            "update MLOPS_BASELINE_SHA256",
        )

    def load() -> Any:
        if kind == "skops":
            return load_skops_file(path, str(path))
        if kind == "mlflow":
            return load_mlflow_directory(path, str(path), trust=trust)
        _require_trusted_directory(path, trust, kind)
        return _unpickle(path, kind)

    model, stats = timed_load(lambda: (load(), directory_size(path)))
    return LoadedFile(model, kind, sha256, stats)


def file_format(path: Path) -> str:
    if path.is_dir():
        if not (path / "MLmodel").is_file():
            raise ModelIncompatibleError(
                f"{path} is a directory without an MLmodel file",
                hint="point at an MLflow model directory or a single model file",
            )
        return "mlflow"
    suffix = path.suffix.lower()
    if suffix == ".skops":
        return "skops"
    if suffix in (".pkl", ".pickle"):
        return "pickle"
    if suffix == ".joblib":
        return "joblib"
    raise ModelIncompatibleError(
        f"{path.name}: unknown model format {suffix or '(no suffix)'!r}",
        hint="use a .skops, .pkl, .pickle or .joblib file or an MLflow model directory",
    )


def directory_sha256(path: Path) -> str:
    """One sha256 over every file of a directory, by relative path and content."""
    import hashlib

    listing = "".join(f"{name}\0{digest}\n" for name, digest in directory_digests(path).items())
    return hashlib.sha256(listing.encode()).hexdigest()


def _require_trusted_directory(path: Path, trust: FileTrust, kind: str) -> None:
    """Refuse to unpickle anything outside the trusted directory."""
    if trust.directory is None:
        raise UntrustedModelError(
            f"{path.name} is a {kind} file and no trusted model directory is configured",
            hint="unpickling runs code: put the file in a directory you control and set "
            "MLOPS_TRUSTED_MODEL_DIR to it, or convert the model to skops",
        )
    resolved, trusted = path.resolve(), trust.directory.resolve()
    if not resolved.is_relative_to(trusted):
        raise UntrustedModelError(
            f"{path} is outside the trusted model directory {trusted}",
            hint="unpickling runs code: only files under MLOPS_TRUSTED_MODEL_DIR are loaded",
        )


def _unpickle(path: Path, kind: str) -> Any:
    """Deserialize a pickle or joblib file; callers check the trusted directory first."""
    import pickle

    try:
        if kind == "joblib":
            import joblib

            return joblib.load(path)  # trusted directory checked by the caller
        with open(path, "rb") as handle:
            return pickle.load(handle)  # trusted directory checked by the caller
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        ModuleNotFoundError,
    ) as exc:
        raise _corrupt(path, kind, exc) from None


def load_skops_file(path: Path, name: str) -> Any:
    """Load a skops file with our allow-list, never one read from the file."""
    import zipfile

    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)
    except UntrustedTypesFoundException as exc:
        raise UntrustedModelError(
            f"{name} contains types outside the allow-list: {exc}",
            hint="only scikit-learn estimators of the kinds this pipeline trains are loaded",
        ) from None
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError) as exc:
        raise _corrupt(path, "skops", exc) from None


def load_mlflow_directory(local: Path, name: str, *, trust: FileTrust | None = None) -> Any:
    """Load the scikit-learn model of an MLflow model directory.

    skops-serialized models load anywhere; pickled ones only under ``trust``'s directory.
    """
    import yaml

    try:
        mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise _corrupt(local / "MLmodel", "MLmodel", exc) from None
    flavor = (mlmodel or {}).get("flavors", {}).get("sklearn")
    if flavor is None:
        raise ModelIncompatibleError(
            f"{name} is not a scikit-learn model",
            hint="register models logged with mlflow.sklearn.log_model",
        )
    serialization = flavor.get("serialization_format")
    model_file = local / flavor["pickled_model"]
    if serialization == "skops":
        return load_skops_file(model_file, name)
    if trust is None:
        raise UntrustedModelError(
            f"{name} is serialized as {serialization!r}, not skops",
            hint="re-log the model with serialization_format='skops'; pickles in the registry "
            "are never loaded",
        )
    _require_trusted_directory(local, trust, serialization or "pickle")
    return _unpickle(model_file, "pickle")


def _corrupt(path: Path, kind: str, exc: BaseException) -> ModelCorruptError:
    return ModelCorruptError(
        f"{path.name} cannot be read as {kind}: {type(exc).__name__}: {exc}"[:500],
        hint="the file is damaged or not what its name says; export the model again",
    )


def skops_untrusted_types(model: Any) -> list[str]:
    """Types in ``model`` that skops would not load back with our allow-list."""
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return sorted(set(found) - set(SKOPS_TRUSTED_TYPES))
