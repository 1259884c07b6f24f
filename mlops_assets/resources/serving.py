"""The prediction APIs that serve the champion, told when it moves."""

import dagster as dg
from pydantic import Field


class PredictionApis(dg.ConfigurableResource):
    """The prediction APIs at `urls` (`MLOPS_API_URL`; none: nobody is told), told at
    once when `champion` moves, with `api_key` (`MLOPS_API_KEY`, an `EnvVar`) when
    they require one. Each also polls the registry, so a missed call only costs time."""

    urls: list[str] = Field(default_factory=list)
    api_key: str | None = None

    def champion_moved(self) -> list[str]:
        """Tell every API; lines for the log."""
        from mlops_assets.core.serving.notify import tell_apis

        return tell_apis(self.urls, self.api_key)
