"""Building and fitting the scikit-learn estimators the pipeline supports."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.errors import ConfigurationError
from mlops_assets.task import ESTIMATORS, TaskSchema

# Estimators whose fit depends on their seed: a model of one seed is a draw, so they are
# trained with several seeds and their probabilities averaged (``build_estimator``).
RANDOM_ESTIMATORS = frozenset({"random_forest", "gradient_boosting"})

# A forest's probability is its trees' vote share: a class no tree voted for gets exactly 0,
# which costs one row a log loss of 36 (at the clip) -- a certainty a few hundred trees cannot
# have. A forest model therefore counts this many more trees, voting the training data's class
# shares (``build_estimator``): no probability is below share / (trees + 1).
FOREST_PRIOR_TREES = 1


def training_seeds(name: str, seed: int, seeds: int) -> tuple[int, ...]:
    """The seeds a model of estimator ``name`` is trained with: ``seeds`` consecutive ones
    from ``seed`` for an estimator with randomness, ``seed`` alone for the others."""
    return tuple(range(seed, seed + max(1, seeds))) if name in RANDOM_ESTIMATORS else (seed,)


def build_estimator(
    name: str,
    hyperparameters: dict[str, Any],
    seed: int,
    task: TaskSchema,
    seeds: int = 1,
    *,
    prior_trees: int = FOREST_PRIOR_TREES,
) -> Any:
    """A fresh, unfitted estimator ``name`` with ``hyperparameters`` and a fixed seed, for
    ``task``'s raw feature columns.

    An estimator with randomness trained with several ``seeds`` is a soft-voting ensemble of
    one model per seed (:func:`training_seeds`): its probabilities are their average, so the
    model, its benchmark scores and every value computed from them depend less on the draw.
    A random forest's vote also counts ``prior_trees`` trees voting the class shares
    (:data:`FOREST_PRIOR_TREES`; 0 builds forests as before issue 26's third step).
    A task with categorical features or imputed values gets a ``Pipeline`` that prepares the
    columns first (:func:`column_preparation`), so the model takes raw values: strings for
    categories, NaN or None where a value is missing.
    """
    from sklearn.ensemble import VotingClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaled = name == "logistic_regression"  # the only one that needs comparable scales
    seeded = training_seeds(name, seed, seeds)
    voters = [(f"seed{s}", _classifier(name, hyperparameters, s)) for s in seeded]
    weights = None  # equal
    if name == "random_forest" and prior_trees:
        from sklearn.dummy import DummyClassifier

        # Each forest's vote is the mean of its trees: the prior weighs as many trees.
        weights = [1.0] * len(voters) + [prior_trees / voters[0][1].n_estimators]
        voters.append(("prior", DummyClassifier(strategy="prior")))
    classifier = (
        VotingClassifier(voters, voting="soft", weights=weights)
        if len(voters) > 1
        else voters[0][1]
    )
    if task.needs_preparation:
        step = type(classifier).__name__.lower()
        return Pipeline([("prepare", column_preparation(task, scaled=scaled)), (step, classifier)])
    return make_pipeline(StandardScaler(), classifier) if scaled else classifier


def _classifier(name: str, hyperparameters: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    kinds = {
        "random_forest": lambda: RandomForestClassifier(
            random_state=seed, n_jobs=1, **hyperparameters
        ),
        "gradient_boosting": lambda: GradientBoostingClassifier(
            random_state=seed, **hyperparameters
        ),
        "logistic_regression": lambda: LogisticRegression(random_state=seed, **hyperparameters),
    }
    if name not in kinds:
        raise ConfigurationError(
            f"unknown estimator {name!r}", hint=f"use one of {', '.join(ESTIMATORS)}"
        )
    try:
        return kinds[name]()
    except TypeError as exc:
        raise ConfigurationError(
            f"invalid hyperparameter for {name}: {exc}",
            hint="see the scikit-learn documentation of the estimator for its parameter names",
        ) from None


def column_preparation(task: TaskSchema, *, scaled: bool) -> Any:
    """What turns ``task``'s raw columns into numbers: numeric features with a missing value
    get their training median (and are standardised when ``scaled``); each categorical
    feature is one-hot encoded over the task's values, a missing one encoded as none of them.
    Unknown categories never reach a model (intake and the API refuse them); one would be
    encoded like a missing value."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [f.name for f in task.numeric_features]
    categorical = task.categorical_features
    imputed = any(f.imputed for f in task.numeric_features)
    steps = [SimpleImputer(strategy="median")] if imputed else []
    steps += [StandardScaler()] if scaled else []
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("numeric", make_pipeline(*steps) if steps else "passthrough", numeric))
    if categorical:
        encoder = OneHotEncoder(
            categories=[list(f.values) for f in categorical],
            handle_unknown="ignore",
            sparse_output=False,
        )
        parts.append(("categorical", encoder, [f.name for f in categorical]))
    return ColumnTransformer(parts)


def model_input(frame: pd.DataFrame, task: TaskSchema) -> Any:
    """``frame``'s feature columns as the task's models take them: a float array when every
    feature is a number that is never missing (scikit-learn fits and predicts arrays faster:
    no feature-name checks), else the columns by name."""
    if task.needs_preparation:
        return frame[task.feature_names]
    return frame[task.feature_names].to_numpy(dtype=float)


def train_model(
    frame: pd.DataFrame,
    task: TaskSchema,
    *,
    estimator: str,
    hyperparameters: dict[str, Any],
    seed: int,
    seeds: int = 1,
) -> Any:
    """Fit estimator ``estimator`` on ``frame``'s features and labels (with ``seeds`` training
    seeds when it has randomness: see :func:`build_estimator`)."""
    if frame.empty:
        raise ConfigurationError(
            "the training set is empty", hint="materialize integrated_dataset first"
        )
    from mlops_assets.core.data.integration import SAMPLE_WEIGHT

    weights = frame.get(SAMPLE_WEIGHT)
    return fit(
        build_estimator(estimator, hyperparameters, seed, task, seeds),
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


@dataclass(frozen=True)
class TrainingSpec:
    """What to train: the estimator, its hyperparameters, the seed, and how many training
    seeds an estimator with randomness averages (``training.training_seeds``)."""

    estimator: str
    hyperparameters: dict[str, Any]
    seed: int
    seeds: int = 1

    @property
    def training_seeds(self) -> tuple[int, ...]:
        return training_seeds(self.estimator, self.seed, self.seeds)

    def recipe(self) -> dict[str, Any]:
        """What decides the model: the spec, without a seed count that changes nothing (an
        estimator without randomness trains with its one seed)."""
        recipe = asdict(self)
        if len(self.training_seeds) == 1:
            del recipe["seeds"]
        if self.estimator == "random_forest":  # a forest built since issue 26's third step
            recipe["prior_trees"] = FOREST_PRIOR_TREES
        return recipe

    def fingerprint(self, data_sha256: str, task: TaskSchema) -> str:
        """sha256 of everything that decides the model trained on ``data_sha256``: the data,
        this spec, the task's definition and the code (this package's and scikit-learn's
        versions). Two trainings with the same fingerprint give the same model."""
        import hashlib
        from importlib.metadata import version

        recipe = {
            "data_sha256": data_sha256,
            "training": self.recipe(),
            "task_sha256": task.attested()["sha256"],
            "code": {name: version(name) for name in ("mlops_assets", "scikit-learn")},
        }
        canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()
