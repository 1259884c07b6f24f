"""The Dagster shell: assets, checks, sensors and resources around ``mlops_assets.core``."""

import warnings

import dagster as dg

# Two features used knowingly are marked by Dagster as not final: partitioned asset checks
# (a preview: `contributed_data_accepted` per contribution) and dagster-mlflow's resource (a
# beta). Every process that loads the code location (the code server, each run worker) would
# warn about them again, in words no user can act on.
warnings.filterwarnings(
    "ignore", category=dg.PreviewWarning, message="Specifying a partitions_def on an AssetCheckSpec"
)
warnings.filterwarnings(
    "ignore", category=dg.BetaWarning, message=r".*`(MlFlow|_create_mlflow_run_hook)`"
)
