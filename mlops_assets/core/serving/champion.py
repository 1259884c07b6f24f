"""Serving the champion: a loaded model, predictions from it, and following the alias.

No web framework here: the API (``mlops_assets.serving.api``) is a thin shell over
:class:`ModelSlot`.
A request reads ``slot.current`` once and uses that object throughout, and a new champion is
loaded and validated completely before one reference assignment swaps it in, so no request
ever sees a half-loaded model.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_assets.core.registry import tags as tag
from mlops_assets.errors import ModelIncompatibleError, ModelNotFoundError
from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

log = logging.getLogger("mlops_assets.serving")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ServedModel:
    """A registry version loaded, validated and ready to predict."""

    model: Any
    name: str
    version: str
    aliases: list[str]
    model_uuid: str
    metrics: dict[str, float]
    loaded_at: str = field(default_factory=_now)
    # Column order of predict_proba mapped to the task's class order, computed once.
    class_order: list[int] = field(default_factory=list)

    def predict(self, features: Any, task: TaskSchema) -> list[dict[str, Any]]:
        """Label, class index and per-class probabilities for each row of ``features``
        (:func:`model_rows`: columns in the task's feature order, checked against the model
        at load)."""
        proba = np.asarray(self.model.predict_proba(features))[:, self.class_order]
        best = proba.argmax(axis=1)
        return [
            {
                "label": task.classes[i],
                "index": int(i),
                "probabilities": dict(zip(task.classes, map(float, p), strict=True)),
            }
            for i, p in zip(best, proba, strict=True)
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "aliases": self.aliases,
            "model_uuid": self.model_uuid,
            "metrics": self.metrics,
            "loaded_at": self.loaded_at,
        }


def model_rows(values: list[list[Any]], task: TaskSchema) -> Any:
    """Rows of raw feature values, in the task's feature order, as the model takes them: a
    float array when every feature is a number that is never missing (a DataFrame per
    request costs 3-4x the prediction itself), else a frame with numbers as floats (NaN
    where missing) and categories as strings."""
    if not task.needs_preparation:
        return np.array(values, dtype=float)
    import pandas as pd

    frame = pd.DataFrame(values, columns=task.feature_names)
    return frame.astype({f.name: float for f in task.numeric_features})


def load_version(
    client: MlflowClient,
    tracking_uri: str,
    model_name: str,
    version: str,
    task: TaskSchema,
    probe: pd.DataFrame,
) -> ServedModel:
    """Load ``version`` of ``model_name`` safely (skops, allow-list) and validate it."""
    from mlops_assets.core.modeling.model_checks import validate_model
    from mlops_assets.core.registry.models import load_sklearn_model

    details = client.get_model_version(model_name, version)
    model = load_sklearn_model(f"models:/{model_name}/{version}", tracking_uri)
    validate_model(model, probe, task)
    names = getattr(model, "feature_names_in_", None)
    if names is not None and list(names) != task.feature_names:
        raise ModelIncompatibleError(
            f"the model's features {list(names)} are not the task's, in its order",
            hint="train the model on columns named and ordered as the task's features",
        )
    # Rows reach the model as a plain array in that checked order: a DataFrame per request
    # costs 3-4x the prediction itself, and scikit-learn would warn that it has no names.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    classes = list(map(str, model.classes_))
    return ServedModel(
        model=model,
        name=model_name,
        version=str(version),
        aliases=sorted(details.aliases),
        model_uuid=details.tags.get(tag.MODEL_UUID, ""),
        metrics={
            key.removeprefix(tag.BENCHMARK_PREFIX): float(value)
            for key, value in details.tags.items()
            if key.startswith(tag.BENCHMARK_PREFIX)
        },
        class_order=[classes.index(name) for name in task.classes],
    )


@dataclass
class ModelSlot:
    """The served model, swapped atomically when the followed alias moves.

    ``find_version`` names the version the alias points at now (None when it points nowhere);
    ``load`` turns a version into a :class:`ServedModel` or raises. A version that fails to
    load or validate is tried again after a wait that doubles from ``retry_wait`` up to
    ``max_retry_wait`` (a download can fail once and work the next time); meanwhile the model
    already served keeps serving and :meth:`health` says ``degraded``.
    """

    find_version: Callable[[], str | None]
    load: Callable[[str], ServedModel]
    current: ServedModel | None = None
    last_error: str | None = None
    failed_version: str | None = None
    last_checked: str | None = None
    # The version the alias pointed at when last read: what should be served.
    wanted_version: str | None = None
    retry_wait: float = 5.0
    max_retry_wait: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: int = field(default=0, init=False, repr=False)
    _retry_at: float = field(default=0.0, init=False, repr=False)

    def refresh(self) -> bool:
        """Follow the alias once; True when a new model was swapped in."""
        try:
            version = self.find_version()
        except Exception as exc:  # the registry being down must not stop serving
            self.last_error = f"cannot read the registry: {exc}"[:500]
            log.warning(self.last_error)
            return False
        finally:
            self.last_checked = _now()
        self.wanted_version = version
        if version is None:
            self.last_error = None if self.current else "the registry has no champion yet"
            return False
        if self.current is not None and self.current.version == version:
            self.last_error = self.failed_version = None
            self._failures = 0
            return False
        if version == self.failed_version and self.clock() < self._retry_at:
            return False  # tried and failed: again after the wait
        try:
            loaded = self.load(version)
        except Exception as exc:
            self._failures = self._failures + 1 if version == self.failed_version else 1
            wait = min(self.max_retry_wait, self.retry_wait * 2 ** (self._failures - 1))
            self.failed_version, self._retry_at = version, self.clock() + wait
            self.last_error = f"version {version} was not loaded: {exc}"[:1000]
            log.error(
                "%s; still serving %s, trying again in %.0f s",
                self.last_error,
                self._serving(),
                wait,
            )
            return False
        self.current, self.last_error, self.failed_version, self._failures = loaded, None, None, 0
        log.info("now serving %s v%s", loaded.name, loaded.version)
        return True

    def _serving(self) -> str:
        return f"v{self.current.version}" if self.current else "nothing"

    def health(self) -> str:
        """``ok`` when the served version is the one the alias names, ``degraded`` when an
        older one is served because the newer failed to load or the registry cannot be read."""
        current = self.current
        if current is None:
            return "unavailable"
        stale = self.wanted_version is not None and self.wanted_version != current.version
        return "degraded" if stale or self.last_error else "ok"

    def status(self) -> dict[str, Any]:
        return {
            "last_checked": self.last_checked,
            "last_error": self.last_error,
            "failed_version": self.failed_version,
            "champion_version": self.wanted_version,
        }


class Poller:
    """Calls ``slot.refresh`` on a daemon thread every ``interval`` seconds, and at once when
    woken (the pipeline says ``champion`` moved), until stopped. Only this thread refreshes,
    so a flood of wake-ups costs one registry read each at most, never a second load."""

    def __init__(self, slot: ModelSlot, interval: float) -> None:
        self.slot, self.interval = slot, interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Refresh now instead of at the end of the interval."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.interval + 30)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.slot.refresh()


def champion_slot(
    tracking_uri: str, model_name: str, task: TaskSchema, probe: pd.DataFrame, alias: str
) -> ModelSlot:
    """A slot following ``alias`` of ``model_name`` in the registry at ``tracking_uri``."""
    from mlops_assets.core.registry.client import get_version_by_alias, mlflow_client

    # Made on first use and again after a failure (a cache keeps no exception): a store that
    # cannot be opened yet, say a SQLite file another process is still creating, is one failed
    # poll, not a service that never starts.
    client = functools.cache(lambda: mlflow_client(tracking_uri))

    def find_version() -> str | None:
        version = get_version_by_alias(client(), model_name, alias)
        return str(version.version) if version is not None else None

    def load(version: str) -> ServedModel:
        return load_version(client(), tracking_uri, model_name, version, task, probe)

    return ModelSlot(find_version=find_version, load=load)


def require_model(slot: ModelSlot) -> ServedModel:
    """The served model, or ModelNotFoundError saying why there is none."""
    current = slot.current
    if current is None:
        raise ModelNotFoundError(
            f"no model is loaded yet ({slot.last_error or 'still loading'})",
            hint="materialize the pipeline so the registry has a champion; the service picks "
            "it up within its poll interval",
        )
    return current
