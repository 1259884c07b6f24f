"""A compacted copy of the accepted rows: a retrain reads one Parquet file and asks the
catalog only for the contributions recorded since the copy was written.

The copy is a cache, never the truth. Each of its rows carries its contribution's
``recorded_at`` and is used only while the catalog still holds that contribution accepted,
not withdrawn, and recorded at that same time; anything else is read from the catalog. The
copy is written again when what was read beside it passes ``REWRITE_ROWS``, and whenever it
holds rows the catalog no longer keeps: a withdrawn contribution's rows must not stay on disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.core.data.integration import Contribution

RECORDED_AT = "recorded_at"
CONTRIBUTION_ID = "contribution_id"
# Rows read from the catalog beside the copy before it is written again: one write of the
# whole copy (about a second at two million rows) every few batches, not every retrain.
REWRITE_ROWS = 20_000


class CatalogRows(Protocol):
    """What is read of the catalog (`ContributionCatalog`, which imports this module: a
    protocol here keeps the two from importing each other)."""

    def accepted_rows(self) -> pd.DataFrame: ...

    def rows_of(self, ids: Iterable[str]) -> pd.DataFrame: ...


class SnapshotFile(Protocol):
    """Where the copy is kept (the dataset store, in the Dagster shell)."""

    def read(self) -> pd.DataFrame | None: ...

    def write(self, frame: pd.DataFrame) -> None: ...


def accepted_rows(
    catalog: CatalogRows, facts: list[Contribution], snapshot: SnapshotFile
) -> pd.DataFrame:
    """The rows of the accepted contributions ``facts`` (as
    :meth:`ContributionCatalog.accepted_rows` gives them), from ``snapshot`` where it is
    current and from the catalog for the rest; the snapshot brought up to date when due."""
    import pandas as pd

    recorded = pd.Series(
        {c.contribution_id: c.recorded_at for c in facts}, dtype="float64", name=RECORDED_AT
    )
    copy = snapshot.read()
    if copy is not None and not {RECORDED_AT, CONTRIBUTION_ID} <= set(copy.columns):
        copy = None  # not a copy this code wrote: read everything again
    kept, stale = None, False
    if copy is not None:
        current = copy[CONTRIBUTION_ID].map(recorded).to_numpy() == copy[RECORDED_AT].to_numpy()
        stale = not current.all()
        kept = copy.loc[current] if stale else copy  # two million rows are not copied for nothing
        del copy
    covered = set(kept[CONTRIBUTION_ID].unique()) if kept is not None else set()
    missing = [cid for cid in recorded.index if cid not in covered]
    if kept is None or len(missing) > len(recorded) // 2:
        kept, fresh = None, catalog.accepted_rows()
    else:
        fresh = catalog.rows_of(missing)
    fresh[RECORDED_AT] = fresh[CONTRIBUTION_ID].map(recorded).astype("float64")
    if kept is None:
        rows = fresh
    else:
        rows = pd.concat([kept, fresh], ignore_index=True) if len(fresh) else kept
    if kept is None or stale or len(fresh) > REWRITE_ROWS:
        snapshot.write(rows)
    del rows[RECORDED_AT]
    return rows
