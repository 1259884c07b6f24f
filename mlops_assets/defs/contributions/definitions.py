"""What depends on the deployment: `contributed_data` reads the task's reference data, and
the landing-zone sensor ticks at `MLOPS_SENSOR_INTERVAL` and takes at most
`MLOPS_SENSOR_MAX_FILES_PER_TICK` files a tick."""

import dagster as dg

from mlops_assets.defs import deployment
from mlops_assets.defs.contributions.assets import build_contributed_data
from mlops_assets.defs.contributions.sensors import build_contribution_sensor


@dg.definitions
def defs() -> dg.Definitions:
    settings = deployment()
    reference_asset = settings.task.dataset_asset  # `iris_dataset` for the default task
    return dg.Definitions(
        assets=[build_contributed_data(reference_asset)],
        sensors=[
            build_contribution_sensor(
                settings.sensor_interval, reference_asset, settings.sensor_max_files_per_tick
            )
        ],
    )
