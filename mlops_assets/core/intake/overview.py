"""Every contribution's status, from the system's own records: what ``mlops contributions``
shows a contributor."""

from typing import Any


def contribution_overview(
    reports: list[dict[str, Any]],
    landed: list[dict[str, str]],
    trained_on: dict[str, list[str]],
    refused: list[tuple[str, str]] = (),  # type: ignore[assignment]
    failed: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per contribution, from the system's own records: its status (``accepted``,
    ``rejected``, ``duplicate``, ``pending`` for a landed file without a report yet,
    ``failed`` for one whose intake failed and is not being retried (``failed`` maps its
    landing path to why), or ``refused`` for an entry of the landing zone that is never read,
    with the reason), reasons, quality score, rows accepted and the model versions trained
    on it.

    ``landed`` holds ``contribution_id``, ``contributor``, ``landing_path`` and ``sha256`` of
    the files in the landing zone; one with the bytes of a reported contribution is a
    duplicate the sensor will not take again. ``trained_on`` maps contribution ids to model
    versions.
    """
    rows = []
    for report in reports:
        cid = report["contribution_id"]
        if report.get("duplicate_of"):
            status = "duplicate"
        else:
            status = "accepted" if report.get("accepted") else "rejected"
        rows.append(
            {
                "contribution_id": cid,
                "contributor": report.get("contributor"),
                "landing_path": report.get("landing_path"),
                "status": status,
                "decision": report.get("decision", ""),
                "reasons": report.get("rejection_reasons", {}),
                "quality_score": report.get("quality_score"),
                "rows_in": report.get("rows_in"),
                "rows_accepted": report.get("rows_clean", 0) if status == "accepted" else 0,
                "model_versions": trained_on.get(cid, []),
            }
        )
    reported = {row["contribution_id"] for row in rows}
    by_sha256 = {r.get("sha256"): r["contribution_id"] for r in reports if r.get("sha256")}
    for file in landed:
        if file["contribution_id"] in reported:
            continue
        earlier = by_sha256.get(file.get("sha256"))
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
                "reasons": {},
                "quality_score": None,
                "rows_in": None,
                "rows_accepted": 0,
                "model_versions": [],
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
                "reasons": {},
                "quality_score": None,
                "rows_in": None,
                "rows_accepted": 0,
                "model_versions": [],
            }
        )
    return rows
