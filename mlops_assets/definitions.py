"""The code location: every asset, check, sensor and resource, built from the settings when
Dagster loads it (``@dg.definitions``), never when this module is imported."""

import dagster as dg

from mlops_assets.defs.contributions import checks as contribution_checks
from mlops_assets.defs.contributions.assets import contributed_data
from mlops_assets.defs.contributions.sensors import build_contribution_sensor
from mlops_assets.defs.data import checks as data_checks
from mlops_assets.defs.data.assets import build_data_assets
from mlops_assets.defs.data.checks import build_reference_checks
from mlops_assets.defs.registry.assets import contributor_scoreboard, registered_model_version
from mlops_assets.defs.registry.sensors import build_registry_sensors
from mlops_assets.defs.resources import build_resources
from mlops_assets.defs.training import checks as training_checks
from mlops_assets.defs.training.assets import build_baseline_model, trained_model
from mlops_assets.defs.training.sensors import build_automation_sensor, build_retrain_sensor
from mlops_assets.settings import Settings

# The assets and checks that are the same for every task; the rest are named for it.
ASSETS = [contributed_data, trained_model, registered_model_version, contributor_scoreboard]
ASSET_CHECKS = dg.load_asset_checks_from_modules(
    [data_checks, contribution_checks, training_checks]
)


def build_definitions(settings: Settings) -> dg.Definitions:
    """The code location for ``settings``: tests and tools build one for any deployment."""
    interval = settings.sensor_interval
    reference = settings.task.dataset_asset  # `iris_dataset` for the default task
    return dg.Definitions(
        assets=[*build_data_assets(reference), build_baseline_model(reference), *ASSETS],
        asset_checks=[*build_reference_checks(reference), *ASSET_CHECKS],
        sensors=[
            build_contribution_sensor(interval, reference=reference),
            build_retrain_sensor(interval),
            build_automation_sensor(interval),
            *build_registry_sensors(interval),
        ],
        resources=build_resources(settings),
        # One process per run instead of one per step: every step process would pay the
        # imports (dagster, pandas, scikit-learn, MLflow) again, which costs more than 2
        # cores gain.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What ``dagster dev`` and every run process load: the environment's deployment."""
    return build_definitions(Settings.from_env())
