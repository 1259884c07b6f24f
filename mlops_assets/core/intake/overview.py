"""Every contribution's status and worth, from the system's own records: what
``mlops contributions`` shows a contributor and ``contributor_scoreboard`` sums up."""

import json
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.core.intake.report import ContributionReport
from mlops_assets.core.registry import tags as tag

SCOREBOARD_COLUMNS = (
    "contributor",
    "accepted",
    "rejected",
    "excluded",
    "rows",
    "mean_quality_score",
    "total_value",
    "model_versions",
)
_UNVALUED = {
    "value": None,
    "value_interval": None,
    "loo_delta": None,
    "valued_in_version": None,
    "value_reason": None,
}


@dataclass(frozen=True)
class ContributionHistory:
    """From the registry: the versions trained on each contribution, and each contribution's
    latest valuation (with the version it was valued in)."""

    trained_on: dict[str, list[str]] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_versions(cls, versions: list[tuple[str, dict[str, str]]]) -> "ContributionHistory":
        """``versions``: (version number, tags) of every version of the model."""
        trained_on: dict[str, list[str]] = {}
        values: dict[str, dict[str, Any]] = {}
        for number, tags in sorted(versions, key=lambda v: int(v[0])):
            for cid in json.loads(tags.get(tag.CONTRIBUTIONS, "[]")):
                trained_on.setdefault(cid, []).append(number)
            for value in json.loads(tags.get(tag.CONTRIBUTION_VALUES, "[]")):
                values[value["contribution_id"]] = {
                    **value,
                    "valued_in_version": number,
                    "value_reason": value["reason"],
                }
        return cls(trained_on, values)


def contribution_overview(
    reports: list[ContributionReport],
    landed: list[dict[str, str]],
    history: ContributionHistory,
    refused: list[tuple[str, str]] = (),  # type: ignore[assignment]
    failed: dict[str, str] | None = None,
    withdrawn: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """One row per contribution, from the system's own records: its status (``accepted``,
    ``excluded`` for an accepted one whose latest valuation left it out of the model as
    harmful, ``nothing_new`` for an accepted one every row of which earlier contributions had
    brought, ``rejected``, ``duplicate``, ``pending`` for a landed file without a report yet,
    ``failed`` for one whose intake failed and is not being retried (``failed`` maps its
    landing path to why), or ``refused`` for an entry of the landing zone that is never read,
    with the reason), reasons, quality score, rows accepted, the model versions trained on it
    and its latest value (``value``, ``value_interval``, ``loo_delta``, ``valued_in_version``;
    None until it is valued).

    ``withdrawn`` maps the contributions withdrawn to when: ``withdrawn``, whatever they were
    (their history and value stay in the row; ``rows_accepted`` is 0, their rows are gone).

    ``landed`` holds ``contribution_id``, ``contributor``, ``landing_path`` and ``sha256`` of
    the files in the landing zone; one with the bytes of a reported contribution (or whose
    ``duplicate_of`` names one) is a duplicate the sensor will not take again.
    """
    rows = []
    for report in reports:
        cid = report.contribution_id
        decision = report.decision
        valued = history.values.get(cid)
        if report.duplicate_of:
            status = "duplicate"
        elif not report.accepted:
            status = "rejected"
        elif valued and valued["status"] in ("excluded", "nothing_new"):
            # Left out as harmful, or every row of it had been given before: not trained on.
            status = valued["status"]
            decision = f"valued in v{valued['valued_in_version']}: {valued['reason']}"
        else:
            status = "accepted"
        if cid in (withdrawn or {}):
            status = "withdrawn"
            decision = f"withdrawn by its contributor; was {report.status}: {decision}"
        worth = {k: valued.get(k) for k in _UNVALUED} if valued else _UNVALUED
        rows.append(
            {
                "contribution_id": cid,
                "contributor": report.contributor,
                "landing_path": report.landing_path,
                "status": status,
                "decision": decision,
                "hint": report.hint if status in ("rejected", "duplicate") else "",
                "withdrawn_at": (withdrawn or {}).get(cid),
                "reasons": report.rejection_reasons,
                "quality_score": report.quality_score,
                "rows_in": report.rows_in,
                "rows_accepted": report.rows_clean
                if status in ("accepted", "excluded", "nothing_new")
                else 0,
                "model_versions": history.trained_on.get(cid, []),
                **worth,
            }
        )
    reported = {row["contribution_id"] for row in rows}
    by_sha256 = {r.sha256: r.contribution_id for r in reports if r.sha256}
    for file in landed:
        if file["contribution_id"] in reported:
            continue
        earlier = file.get("duplicate_of") or by_sha256.get(file.get("sha256"))
        failure = (failed or {}).get(file["landing_path"])
        if earlier:
            status, decision = "duplicate", f"same bytes as {earlier}, not taken again"
        elif failure:
            status, decision = "failed", f"the intake failed: {failure}"
        else:
            status, decision = "pending", "waiting for the landing-zone sensor"
        rows.append(
            {
                "contribution_id": file["contribution_id"],
                "contributor": file["contributor"],
                "landing_path": file["landing_path"],
                "status": status,
                "decision": decision,
                "hint": "",
                "withdrawn_at": None,
                "reasons": {},
                "quality_score": None,
                "rows_in": None,
                "rows_accepted": 0,
                "model_versions": [],
                **_UNVALUED,
            }
        )
    for relative_path, reason in refused:
        rows.append(
            {
                "contribution_id": None,
                "contributor": relative_path.split("/")[0] if "/" in relative_path else None,
                "landing_path": relative_path,
                "status": "refused",
                "decision": f"never read: {reason}",
                "hint": "put a regular file at <contributor>/<file> with a plain name",
                "withdrawn_at": None,
                "reasons": {},
                "quality_score": None,
                "rows_in": None,
                "rows_accepted": 0,
                "model_versions": [],
                **_UNVALUED,
            }
        )
    return rows


def contributor_scoreboard(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per contributor, from :func:`contribution_overview`'s rows: contributions accepted,
    rejected and excluded, rows accepted, mean quality score, total value (the sum of each
    contribution's latest value) and the model versions their data is in."""
    board: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["contributor"] is None or row["status"] in ("refused", "pending", "failed"):
            continue
        entry = board.setdefault(
            row["contributor"],
            {
                "accepted": 0,
                "rejected": 0,
                "excluded": 0,
                "rows": 0,
                "scores": [],
                "total": 0.0,
                "versions": set(),
            },
        )
        if row["status"] in ("accepted", "rejected", "excluded"):
            entry[row["status"]] += 1
        elif row["status"] == "nothing_new":
            entry["accepted"] += 1  # taken in, though others had brought every row first
        entry["rows"] += row["rows_accepted"]
        if row["quality_score"] is not None and row["status"] != "duplicate":
            entry["scores"].append(row["quality_score"])
        entry["total"] += row["value"] or 0.0
        entry["versions"].update(row["model_versions"])
    return [
        {
            "contributor": name,
            "accepted": e["accepted"],
            "rejected": e["rejected"],
            "excluded": e["excluded"],
            "rows": e["rows"],
            "mean_quality_score": round(sum(e["scores"]) / len(e["scores"]), 2)
            if e["scores"]
            else None,
            "total_value": round(e["total"], 6),
            "model_versions": ", ".join(f"v{v}" for v in sorted(e["versions"], key=int)),
        }
        for name, e in sorted(board.items(), key=lambda item: -item[1]["total"])
    ]
