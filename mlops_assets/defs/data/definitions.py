"""What depends on the deployment: the reference data asset and its check are named for the
task (`iris_dataset` for the default), and the training set depends on it."""

import dagster as dg

from mlops_assets.defs import deployment
from mlops_assets.defs.data.assets import build_data_assets
from mlops_assets.defs.data.checks import build_reference_checks


@dg.definitions
def defs() -> dg.Definitions:
    reference_asset = deployment().task.dataset_asset
    return dg.Definitions(
        assets=build_data_assets(reference_asset),
        asset_checks=build_reference_checks(reference_asset),
    )
