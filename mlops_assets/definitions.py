"""The code location: every asset, check, sensor and resource, configured from the environment."""

import dagster as dg

from mlops_assets.defs import checks, data_assets, model_assets, sensors
from mlops_assets.defs.resources import (
    BaselineLoader,
    DatasetStore,
    LandingZone,
    LocalLandingZone,
    ModelRegistry,
    PromotionPolicy,
    TrainingDataPolicy,
    Webhooks,
    mlflow_tracking,
)
from mlops_assets.settings import Settings, current_settings


def landing_zone(settings: Settings) -> LandingZone:
    """The landing-zone flavour ``MLOPS_LANDING_URI`` names: ``s3://bucket/prefix`` or a folder."""
    if settings.landing_uri.startswith("s3://"):
        from dagster_aws.s3 import S3Resource

        from mlops_assets.defs.s3 import S3LandingZone

        bucket, _, prefix = settings.landing_uri.removeprefix("s3://").partition("/")
        return S3LandingZone(
            bucket=bucket, prefix=prefix, s3=S3Resource(endpoint_url=settings.s3_endpoint_url)
        )
    return LocalLandingZone(root=settings.landing_uri)


def dataset_store(settings: Settings) -> DatasetStore:
    """The store flavour ``MLOPS_STORAGE_URI`` names: ``s3://bucket/prefix`` or a folder."""
    if settings.storage_uri.startswith("s3://"):
        from dagster_aws.s3 import S3Resource

        from mlops_assets.defs.s3 import S3DatasetStore

        return S3DatasetStore(
            root=settings.storage_uri, s3=S3Resource(endpoint_url=settings.s3_endpoint_url)
        )
    return DatasetStore(root=settings.storage_uri)


def build_resources(settings: Settings) -> dict[str, object]:
    return {
        "store": dataset_store(settings),
        "webhooks": Webhooks(
            url=settings.webhook_url,
            # An EnvVar, never the value: the UI shows the variable's name only.
            secret=dg.EnvVar("MLOPS_WEBHOOK_SECRET") if settings.webhook_secret else None,
            outbox=str(settings.home / "webhooks"),
            max_age_seconds=settings.webhook_max_age,
        ),
        "landing": landing_zone(settings),
        "registry": ModelRegistry(
            tracking_uri=settings.tracking_uri,
            model_name=settings.model_name,
            experiment_name=settings.experiment,
            ui_url=settings.mlflow_ui_url,
        ),
        "baseline_loader": BaselineLoader(
            source=settings.baseline_source,
            trusted_model_dir=str(settings.trusted_model_dir)
            if settings.trusted_model_dir
            else None,
            sha256=settings.baseline_sha256,
            validators=list(settings.baseline_validators),
            registry_retries=settings.registry_retries,
            registry_retry_seconds=settings.registry_retry_seconds,
        ),
        "data_policy": TrainingDataPolicy(
            min_class_share=settings.min_class_share,
            min_training_rows=settings.min_training_rows,
        ),
        "policy": PromotionPolicy(
            primary_metric=settings.primary_metric,
            min_improvement=settings.min_improvement,
            significance=settings.significance,
            min_benchmark_rows=settings.min_benchmark_rows,
            accuracy_floor=settings.accuracy_floor,
        ),
        "mlflow_tracking": mlflow_tracking.configured(
            {
                "experiment_name": settings.experiment,
                "mlflow_tracking_uri": settings.tracking_uri,
                "artifact_location": settings.mlflow_artifacts,
            }
        ),
    }


defs = dg.Definitions(
    assets=dg.load_assets_from_modules([data_assets, model_assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    sensors=[
        sensors.contribution_sensor,
        sensors.retrain_sensor,
        sensors.automation_sensor,
        sensors.mlflow_run_cleanup_sensor,
        sensors.webhook_redelivery_sensor,
    ],
    resources=build_resources(current_settings()),
    # One process per run instead of one per step: every step process would pay the imports
    # (dagster, pandas, scikit-learn, MLflow) again, which costs more than 2 cores gain.
    executor=dg.in_process_executor,
)
