"""How assets read what an upstream asset recorded, and link out of the UI."""

from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.errors import UpstreamMissingError

if TYPE_CHECKING:
    from mlops_assets.core.reporting.plots import Plot


def upstream_metadata(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, asset: dg.AssetKey
) -> dict[str, Any]:
    """The metadata values of `asset`'s latest materialization (this run's, if it ran here):
    the typed records between assets travel this way, so a run may start at any asset."""
    name = asset.to_user_string()
    event = context.instance.get_latest_materialization_event(asset)
    if event is None or event.asset_materialization is None:
        raise UpstreamMissingError(
            f"{name} has never been materialized",
            hint=f"materialize it first: dagster asset materialize --select {name}",
        )
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def url(link: str | None) -> dg.MetadataValue | str:
    """A clickable link, or "" when there is no UI to link to."""
    return dg.MetadataValue.url(link) if link else ""


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> dg.MetadataValue:
    """Rows of plain values as a table the UI renders, with these `columns` (so an empty
    table still shows them)."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name) for name in columns])
    return dg.MetadataValue.table([dg.TableRecord(row) for row in rows], schema=schema)


def pictures(plots: "list[Plot]") -> dict[str, dg.MetadataValue]:
    """Each plot as a Markdown image (`<name>_plot`): the UI's "[Show Markdown]" opens it."""
    return {f"{plot.name}_plot": dg.MetadataValue.md(plot.markdown()) for plot in plots}
