"""The Dagster shell: assets, checks, sensors and resources around `mlops_assets.core`.

Dagster's loader (`dg.load_from_defs_folder`, the project's `[tool.dg]`) finds everything
here: the definitions a module holds (`trained_model`, the checks), and in each domain's
`definitions.py` what is built for the deployment's settings. Nothing is wired by hand.
"""

import contextlib
import warnings
from collections.abc import Iterator
from contextvars import ContextVar

import dagster as dg

from mlops_assets.settings import Settings, current_settings

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

# The settings the definitions are being built for: `build_definitions(settings)` sets them
# while Dagster's loader walks this folder, so each domain's `definitions.py` builds what
# depends on the deployment (task-named assets, sensor intervals, resources) for them.
_building_for: ContextVar[Settings | None] = ContextVar("building_for", default=None)


@contextlib.contextmanager
def building_for(settings: Settings) -> Iterator[None]:
    """Build the definitions under this folder for `settings`."""
    token = _building_for.set(settings)
    try:
        yield
    finally:
        _building_for.reset(token)


def deployment() -> Settings:
    """The settings being built for; the environment's when a tool walks this folder alone."""
    return _building_for.get() or current_settings()
