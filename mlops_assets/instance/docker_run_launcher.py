"""dagster-docker's run launcher, giving each run container the deployment's settings.

The stock launcher passes a run container only the variables its ``env_vars`` lists, so a
setting an operator adds to docker/.env (``MLOPS_PRIMARY_METRIC``, say) would reach the
sensors in the user-code container but not the runs that train: the run containers would
quietly work differently. This one also passes every variable of ``mlops_assets.settings`` that the
daemon's environment sets, so a run sees the same settings as the rest of the deployment.
Needs the ``deploy`` extra (dagster-docker).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dagster_docker import DockerRunLauncher as StockDockerRunLauncher

from mlops_assets.settings import variables


def with_settings(env_vars: Sequence[str], environ: dict[str, str]) -> list[str]:
    """``env_vars`` and every documented setting ``environ`` sets that it does not name."""
    named = {entry.split("=", 1)[0] for entry in env_vars}
    return [*env_vars, *(name for name in variables() if name in environ and name not in named)]


class DockerRunLauncher(StockDockerRunLauncher):
    """:class:`dagster_docker.DockerRunLauncher` that also passes the product's settings."""

    def __init__(self, inst_data=None, env_vars=None, **config) -> None:
        super().__init__(
            inst_data=inst_data, env_vars=with_settings(env_vars or [], dict(os.environ)), **config
        )
