"""The contribution catalog resource: where the catalog's database is (`MLOPS_CATALOG_URL`)."""

from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.resources.storage import DatasetStore

if TYPE_CHECKING:
    from mlops_assets.core.catalog.catalog import ContributionCatalog
    from mlops_assets.task import TaskSchema


class CatalogDatabase(dg.ConfigurableResource):
    """The database of the contribution catalog: an SQLAlchemy URL (production's carries a
    password, so it is given as an `EnvVar`)."""

    url: str

    def open(self, task: "TaskSchema", store: DatasetStore) -> "ContributionCatalog":
        """The catalog of `task`, caught up with the report files in `store`."""
        from mlops_assets.core.catalog.sync import open_catalog

        return open_catalog(self.url, task, store)
