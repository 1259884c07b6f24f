"""What depends on the deployment: `baseline_model` depends on the task's reference data,
and the retrain and automation sensors tick at `MLOPS_SENSOR_INTERVAL`."""

import dagster as dg

from mlops_assets.defs import deployment
from mlops_assets.defs.training.assets import build_baseline_model
from mlops_assets.defs.training.sensors import build_automation_sensor, build_retrain_sensor


@dg.definitions
def defs() -> dg.Definitions:
    settings = deployment()
    interval = settings.sensor_interval
    return dg.Definitions(
        assets=[build_baseline_model(settings.task.dataset_asset)],
        sensors=[build_retrain_sensor(interval), build_automation_sensor(interval)],
    )
