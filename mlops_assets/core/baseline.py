"""The baseline to beat: the registry's champion, or on a cold start a first model on iris."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_assets.core.evaluation import Evaluation, benchmark_tags, evaluate
from mlops_assets.core.integration import integrate
from mlops_assets.core.registry import (
    CHAMPION,
    get_version_by_alias,
    load_sklearn_model,
    log_sklearn_model,
    promote_to_champion,
    register_model_version,
)
from mlops_assets.core.training import train_model
from mlops_assets.task import TaskSchema

if TYPE_CHECKING:
    from mlflow import MlflowClient

COLD_START_REASON = "cold start: first model, trained on iris alone"


@dataclass(frozen=True)
class Baseline:
    version: str
    model_uuid: str
    cold_start: bool
    evaluation: Evaluation


def resolve_baseline(
    client: "MlflowClient",
    *,
    model_name: str,
    reference_train: pd.DataFrame,
    benchmark: pd.DataFrame,
    task: TaskSchema,
    estimator: str,
    hyperparameters: dict[str, Any],
    seed: int,
    tags: dict[str, str],
) -> Baseline:
    """The ``champion`` of ``model_name``, scored on ``benchmark``.

    With no champion yet (a cold start) a model is trained on the reference train part,
    prepared exactly as a candidate's data would be, logged to the active MLflow run,
    registered with ``tags`` and aliased ``champion``.
    """
    champion = get_version_by_alias(client, model_name, CHAMPION)
    if champion is not None:
        model = load_sklearn_model(f"models:/{model_name}/{champion.version}")
        return Baseline(
            version=str(champion.version),
            model_uuid=champion.tags.get("model_uuid", ""),
            cold_start=False,
            evaluation=evaluate(model, benchmark, task),
        )

    reference = integrate(reference_train, [], benchmark, task, seed=seed)
    model = train_model(
        reference.frame, task, estimator=estimator, hyperparameters=hyperparameters, seed=seed
    )
    evaluation = evaluate(model, benchmark, task)
    info = log_sklearn_model(
        model, name="baseline", input_example=reference.frame[task.feature_names].head(5)
    )
    registered = register_model_version(
        client,
        info,
        model_name=model_name,
        tags={
            "cold_start": "true",
            "data_sha256": reference.sha256,
            "estimator": estimator,
            "promotion_reason": COLD_START_REASON,
            **benchmark_tags(evaluation.metrics),
            **tags,
        },
    )
    promote_to_champion(client, model_name, registered.version)
    return Baseline(registered.version, registered.model_uuid, True, evaluation)
