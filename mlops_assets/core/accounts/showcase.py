"""What the portal's pages show beyond the upload API's use cases: a contribution's value
over the versions that valued it (from the registry's version tags), and the public
scoreboard (from the scoreboard the pipeline writes, opted-in accounts only, by display name).
Neither scans report files."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlops_assets.core.common import layout
from mlops_assets.core.registry import tags as tag

if TYPE_CHECKING:
    from mlops_assets.core.accounts.store import AccountStore
    from mlops_assets.core.storage.places import Store


def value_history(
    versions: list[tuple[str, dict[str, str], float | None]], contribution_id: str, metric: str
) -> list[dict[str, Any]]:
    """Each version that valued ``contribution_id``, oldest first: ``version``, ``at``,
    ``value``, ``value_interval``, ``loo_delta`` (the benchmark score with every new
    contribution minus without this one, positive = better with it), ``status``, ``reason``,
    and the version's own benchmark ``score`` on ``metric`` when its tags hold it."""
    points = []
    for number, tags, at in sorted(versions, key=lambda v: int(v[0])):
        for value in json.loads(tags.get(tag.CONTRIBUTION_VALUES, "[]")):
            if value.get("contribution_id") != contribution_id:
                continue
            score = tags.get(f"{tag.BENCHMARK_PREFIX}{metric}")
            points.append(
                {
                    "version": number,
                    "at": at,
                    "value": value["value"],
                    "value_interval": value.get("value_interval"),
                    "loo_delta": value.get("loo_delta"),
                    "status": value.get("status", ""),
                    "reason": value.get("reason", ""),
                    "score": float(score) if score not in (None, "") else None,
                    "trained_on": contribution_id in json.loads(tags.get(tag.CONTRIBUTIONS, "[]")),
                }
            )
    return points


def public_scoreboard(accounts: AccountStore, store: Store) -> list[dict[str, Any]]:
    """The scoreboard the last retrain wrote, for the accounts that opted in (``public``):
    display name, contributions accepted, rows accepted, total value and the versions their
    data is in, best first. Nothing else of an account is shown; a contributor without an
    account (a landing folder) or without consent to be listed is left out."""
    if not store.exists(layout.SCOREBOARD):
        return []
    import pandas as pd

    board = pd.read_parquet(store.fetch(layout.SCOREBOARD))
    public = {
        a.name: a.display_name
        for a in accounts.list(names=[str(n) for n in board["contributor"]])
        if a.public and not a.disabled
    }
    rows = [
        {
            "display_name": public[row.contributor],
            "accepted": int(row.accepted),
            "rows": int(row.rows),
            "total_value": float(row.total_value),
            "model_versions": str(row.model_versions or ""),
        }
        for row in board.itertuples()
        if row.contributor in public
    ]
    return sorted(rows, key=lambda r: -r["total_value"])
