"""The resources, configured from the deployment's settings (`mlops_assets.resources`)."""

import dagster as dg

from mlops_assets.defs import deployment
from mlops_assets.resources import build_resources


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(deployment()))
