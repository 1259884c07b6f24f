"""Resources: one per outside system (dataset store, landing zone, MLflow, webhook target)
and the deployment's policies, each built from the settings by `build_resources`.

Every outside system has a local and an S3 flavour behind one interface where it can live on
either; secrets reach resources only as `dg.EnvVar`, so the UI shows the variable's name.
"""

import dagster as dg

from mlops_assets.resources.catalog import CatalogDatabase
from mlops_assets.resources.landing import LandingZone, LocalLandingZone
from mlops_assets.resources.mlflow import MlflowTracking, ModelRegistry
from mlops_assets.resources.policies import (
    BaselineLoader,
    IntakeSettings,
    PromotionPolicy,
    ReferenceDataSource,
    SettingsResource,
    TaskDefinition,
    TrainingDataPolicy,
    ValuationSettings,
)
from mlops_assets.resources.serving import PredictionApis
from mlops_assets.resources.storage import DatasetStore, LocalDatasetStore
from mlops_assets.resources.webhooks import Webhooks
from mlops_assets.settings import Settings

__all__ = [
    "BaselineLoader",
    "CatalogDatabase",
    "DatasetStore",
    "IntakeSettings",
    "LandingZone",
    "LocalDatasetStore",
    "LocalLandingZone",
    "MlflowTracking",
    "ModelRegistry",
    "PredictionApis",
    "PromotionPolicy",
    "ReferenceDataSource",
    "SettingsResource",
    "TaskDefinition",
    "TrainingDataPolicy",
    "ValuationSettings",
    "Webhooks",
    "build_resources",
    "dataset_store",
    "intake_settings",
    "landing_zone",
    "prediction_apis",
    "webhooks",
]


def landing_zone(settings: Settings) -> LandingZone:
    """The landing-zone flavour `MLOPS_LANDING_URI` names: `s3://bucket/prefix` or a folder."""
    if settings.landing_uri.startswith("s3://"):
        # Its own module: importing dagster-aws (and boto3) costs seconds.
        from dagster_aws.s3 import S3Resource

        from mlops_assets.resources.s3 import S3LandingZone

        bucket, _, prefix = settings.landing_uri.removeprefix("s3://").partition("/")
        return S3LandingZone(
            bucket=bucket, prefix=prefix, s3=S3Resource(endpoint_url=settings.s3_endpoint_url)
        )
    return LocalLandingZone(root=settings.landing_uri)


def dataset_store(settings: Settings) -> DatasetStore:
    """The store flavour `MLOPS_STORAGE_URI` names: `s3://bucket/prefix` or a folder."""
    if settings.storage_uri.startswith("s3://"):
        from dagster_aws.s3 import S3Resource

        from mlops_assets.resources.s3 import S3DatasetStore

        return S3DatasetStore(
            root=settings.storage_uri, s3=S3Resource(endpoint_url=settings.s3_endpoint_url)
        )
    return LocalDatasetStore(root=settings.storage_uri)


def catalog_database(settings: Settings) -> CatalogDatabase:
    """The catalog's database: a URL set in the environment reaches the resource as an
    `EnvVar` (it may carry a password), the embedded default as itself."""
    import os

    if os.environ.get("MLOPS_CATALOG_URL"):
        return CatalogDatabase(url=dg.EnvVar("MLOPS_CATALOG_URL"))
    return CatalogDatabase(url=settings.catalog_url)


def webhooks(settings: Settings) -> Webhooks:
    """Registry events to `MLOPS_WEBHOOK_URL` (off when unset), through the outbox."""
    return Webhooks(
        url=settings.webhook_url,
        # An EnvVar, never the value: the UI shows the variable's name only.
        secret=dg.EnvVar("MLOPS_WEBHOOK_SECRET") if settings.webhook_secret else None,
        outbox=str(settings.home / "webhooks"),
        max_age_seconds=settings.webhook_max_age,
    )


def prediction_apis(settings: Settings) -> PredictionApis:
    """The APIs `MLOPS_API_URL` names, told when `champion` moves."""
    return PredictionApis(
        urls=list(settings.api_urls),
        # An EnvVar, never the value: the UI shows the variable's name only.
        api_key=dg.EnvVar("MLOPS_API_KEY") if settings.api_key else None,
    )


def intake_settings(settings: Settings) -> IntakeSettings:
    """When a contribution is accepted and what one may cost (also `mlops check`'s)."""
    return IntakeSettings.from_settings(settings)


def build_resources(settings: Settings) -> dict[str, object]:
    """Every resource of the code location, configured from `settings`: keyed by what it
    holds, the settings ones filled by name (`SettingsResource`)."""
    return {
        "store": dataset_store(settings),
        "catalog": catalog_database(settings),
        "landing": landing_zone(settings),
        "webhooks": webhooks(settings),
        "serving": prediction_apis(settings),
        "registry": ModelRegistry.from_settings(settings),
        "mlflow_tracking": MlflowTracking.from_settings(settings),
        "task": TaskDefinition.from_settings(settings),
        "reference_data": ReferenceDataSource.from_settings(settings),
        "intake_policy": intake_settings(settings),
        "training_data_policy": TrainingDataPolicy.from_settings(settings),
        "baseline_loader": BaselineLoader.from_settings(settings),
        "valuation": ValuationSettings.from_settings(settings),
        "promotion_policy": PromotionPolicy.from_settings(settings),
    }
