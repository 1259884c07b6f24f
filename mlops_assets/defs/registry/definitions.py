"""What depends on the deployment: the registry's sensors tick at `MLOPS_SENSOR_INTERVAL`."""

import dagster as dg

from mlops_assets.defs import deployment
from mlops_assets.defs.registry.sensors import build_registry_sensors


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=build_registry_sensors(deployment().sensor_interval))
