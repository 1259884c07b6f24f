"""Whether a model can stand in for the task's: the probe prediction and the deployment's
validation hooks (``MLOPS_BASELINE_VALIDATORS``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pandas as pd

from mlops_assets.errors import ConfigurationError, ModelIncompatibleError
from mlops_assets.task import TaskSchema

ValidationHook = Callable[[Any, pd.DataFrame, TaskSchema], object]


def validate_model(
    model: Any, probe: pd.DataFrame, task: TaskSchema, hooks: list[str] | tuple[str, ...] = ()
) -> list[str]:
    """Check that ``model`` can stand in for this task, else raise ModelIncompatibleError;
    return what was checked, for metadata.

    ``predict`` and ``predict_proba`` exist, the feature count and class set are the task's,
    a prediction on ``probe`` (benchmark rows) gives one known class per row and one
    probability per class, and every hook (``package.module:function``) accepts it: a hook
    is called with ``(model, probe, task)`` and rejects by raising or returning False.
    """
    import numpy as np

    checks: list[str] = []
    missing = [m for m in ("predict", "predict_proba") if not callable(getattr(model, m, None))]
    if missing:
        raise ModelIncompatibleError(
            f"the model ({type(model).__name__}) has no {' or '.join(missing)}",
            hint="use a scikit-learn classifier",
        )
    checks.append("predict and predict_proba present")
    n_features = getattr(model, "n_features_in_", None)
    if n_features is not None and n_features != len(task.feature_names):
        raise ModelIncompatibleError(
            f"the model expects {n_features} features, the {task.name} task has "
            f"{len(task.feature_names)} ({', '.join(task.feature_names)})",
            hint="use a model trained on this task's features",
        )
    classes = sorted(map(str, getattr(model, "classes_", [])))
    if classes != sorted(task.classes):
        raise ModelIncompatibleError(
            f"the model's classes {classes} are not the task's {sorted(task.classes)}",
            hint="train the model on labels named as the task names them",
        )
    checks.append(f"{len(task.feature_names)} features, classes {', '.join(task.classes)}")
    x = probe[task.feature_names]
    try:
        predicted = np.asarray(model.predict(x)).astype(str)
        proba = np.asarray(model.predict_proba(x))
    except Exception as exc:  # any failure of foreign code means the model does not fit
        raise ModelIncompatibleError(
            f"a probe prediction on {len(x)} benchmark rows failed: {type(exc).__name__}: {exc}",
            hint="check that the model takes a DataFrame with the task's feature columns",
        ) from None
    if len(predicted) != len(x) or not set(predicted) <= set(task.classes):
        raise ModelIncompatibleError(
            f"the probe prediction returned {len(predicted)} labels for {len(x)} rows, "
            f"{sorted(set(predicted) - set(task.classes))} not among the task's classes",
            hint="use a classifier trained on this task's labels",
        )
    if proba.shape != (len(x), len(task.classes)):
        raise ModelIncompatibleError(
            f"predict_proba returned shape {proba.shape}, expected {(len(x), len(task.classes))}",
            hint="use a classifier trained on this task's labels",
        )
    checks.append(f"probe prediction on {len(x)} benchmark rows")
    for dotted in hooks:
        hook = import_hook(dotted)
        try:
            verdict = hook(model, probe, task)
        except Exception as exc:  # a hook says no by raising
            raise ModelIncompatibleError(
                f"validation hook {dotted} rejected the model: {exc}",
                hint="fix the model, or the hook if it is wrong",
            ) from None
        if verdict is False:
            raise ModelIncompatibleError(
                f"validation hook {dotted} rejected the model", hint="fix the model or the hook"
            )
        checks.append(f"hook {dotted}")
    return checks


def import_hook(dotted: str) -> ValidationHook:
    """``package.module:function`` or ``package.module.function``."""
    module_name, _, attribute = dotted.replace(":", ".").rpartition(".")
    try:
        hook = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(
            f"validation hook {dotted!r} cannot be imported: {exc}",
            hint="name it as package.module:function, importable in the code location",
        ) from None
    if not callable(hook):
        raise ConfigurationError(f"validation hook {dotted!r} is not callable", hint="")
    return hook
