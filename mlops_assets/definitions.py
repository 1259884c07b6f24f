"""The code location: every asset, check, sensor and resource under `mlops_assets/defs`,
found by Dagster's loader (`dg.load_from_defs_folder`) and built for the settings when
Dagster loads it (`@dg.definitions`), never when this module is imported."""

import functools
import warnings
from pathlib import Path

import dagster as dg

from mlops_assets.defs import building_for
from mlops_assets.process import prepare_process
from mlops_assets.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """The code location for `settings`: tests and tools build one for any deployment."""
    with building_for(settings):
        found = load_defs_folder()
    # One process per run instead of one per step: every step process would pay the imports
    # (dagster, pandas, scikit-learn, MLflow) again, which costs more than 2 cores gain.
    return dg.Definitions.merge(found, dg.Definitions(executor=dg.in_process_executor))


def load_defs_folder() -> dg.Definitions:
    """Everything under `mlops_assets/defs`, found as `dg.load_from_defs_folder` finds it
    (the project's `[tool.dg]`), without the catalogue of every installed component type
    it adds for the UI's component browser: that imports each Dagster integration installed
    (dagster-aws, boto3) and takes seconds in every run process, for components this project
    does not use."""
    with warnings.catch_warnings():
        # Dagster's loader calls functions Dagster marks as a preview, and says so in every
        # process that loads the code location, in words no user can act on.
        warnings.filterwarnings(
            "ignore",
            category=dg.PreviewWarning,
            message=r"Function `load_definitions_from_modules?` is currently in preview",
        )
        tree = dg.ComponentTree.for_project(Path(__file__).parent)
        return tree.build_defs_at_path(tree.defs_module_path)


@dg.definitions
def defs() -> dg.Definitions:
    """What `dg dev`, `dagster dev` and every run process load: the environment's
    deployment, after the process is prepared (`.env`, MLflow's defaults)."""
    prepare_process()
    return _definitions_for(Settings.from_env())


@functools.lru_cache(maxsize=4)
def _definitions_for(settings: Settings) -> dg.Definitions:
    """One build per deployment and process: Dagster's command line loads the code location
    again for each step of a run (seven times in a cold materialize), and walking `defs/`
    each time would cost more than the run's own imports save."""
    return build_definitions(settings)
