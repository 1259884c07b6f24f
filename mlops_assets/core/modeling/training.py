"""Building and fitting the scikit-learn estimators the pipeline supports."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.errors import ConfigurationError
from mlops_assets.task import TaskSchema

SAMPLE_WEIGHT = "sample_weight"  # optional per-row weight column of a training frame
ESTIMATORS = ("random_forest", "logistic_regression", "gradient_boosting")

# Types outside skops' built-in safe set that our estimators contain. Models are loaded with
# exactly this allow-list (never one read from the model file), so a tampered artifact that
# smuggles in another type is refused instead of executed.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def build_estimator(name: str, hyperparameters: dict[str, Any], seed: int) -> Any:
    """A fresh, unfitted estimator ``name`` with ``hyperparameters`` and a fixed seed."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    try:
        if name == "random_forest":
            return RandomForestClassifier(random_state=seed, n_jobs=1, **hyperparameters)
        if name == "gradient_boosting":
            return GradientBoostingClassifier(random_state=seed, **hyperparameters)
        if name == "logistic_regression":
            return make_pipeline(
                StandardScaler(), LogisticRegression(random_state=seed, **hyperparameters)
            )
    except TypeError as exc:
        raise ConfigurationError(
            f"invalid hyperparameter for {name}: {exc}",
            hint="see the scikit-learn documentation of the estimator for its parameter names",
        ) from None
    raise ConfigurationError(
        f"unknown estimator {name!r}", hint=f"use one of {', '.join(ESTIMATORS)}"
    )


def train_model(
    frame: pd.DataFrame,
    task: TaskSchema,
    *,
    estimator: str,
    hyperparameters: dict[str, Any],
    seed: int,
) -> Any:
    """Fit estimator ``estimator`` on ``frame``'s features and labels."""
    if frame.empty:
        raise ConfigurationError(
            "the training set is empty", hint="materialize integrated_dataset first"
        )
    weights = frame.get(SAMPLE_WEIGHT)
    return fit(
        build_estimator(estimator, hyperparameters, seed),
        frame[task.feature_names],
        frame[task.label].astype(str),
        None if weights is None else weights.to_numpy(),
    )


def fit(model: Any, x: Any, y: Any, weights: np.ndarray | None = None) -> Any:
    """Fit ``model`` on features ``x`` (a frame, or an array when speed matters more than
    feature names) and labels ``y``, with per-row ``weights`` unless they are all 1."""
    fit_arguments = {}
    if weights is not None and not (weights == 1.0).all():
        # Pipelines route fit parameters to a step by name: "<step>__sample_weight".
        step = f"{model.steps[-1][0]}__" if hasattr(model, "steps") else ""
        fit_arguments[f"{step}sample_weight"] = weights
    return model.fit(x, y, **fit_arguments)
