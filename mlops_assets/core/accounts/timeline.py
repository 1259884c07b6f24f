"""A contribution's timeline, from the catalog and the registry alone: received, checked,
ingested, valued, in model vN, or refused, excluded, withdrawn, each with its time and why."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_assets.core.accounts.store import UploadRecord
    from mlops_assets.core.catalog.catalog import CatalogEntry
    from mlops_assets.core.intake.overview import ContributionHistory

# Every step a timeline may hold, in the order they happen.
STEPS = (
    "received",
    "checked",
    "ingested",
    "refused",
    "duplicate",
    "valued",
    "excluded",
    "trained_on",
    "withdrawn",
)


def _step(step: str, at: float | None, detail: str, **extra: Any) -> dict[str, Any]:
    return {"step": step, "at": at, "detail": detail, **extra}


def timeline(
    entry: CatalogEntry | None,
    upload: UploadRecord | None,
    history: ContributionHistory,
    version_times: dict[str, float | None],
) -> list[dict[str, Any]]:
    """The steps one contribution went through, oldest first: ``step`` (one of
    :data:`STEPS`), ``at`` (seconds since the epoch; None when not known, e.g. a version
    whose time the registry does not give) and ``detail`` in words; ``trained_on`` and
    ``valued`` steps name their ``version``. A pure function of what the catalog (``entry``),
    the upload log (``upload``) and the registry (``history``, ``version_times``) hold."""
    steps = []
    report = entry.report if entry is not None else None
    cid = upload.contribution_id if upload is not None else report.contribution_id  # type: ignore[union-attr]
    if upload is not None:
        steps.append(
            _step(
                "received",
                upload.uploaded_at,
                f"uploaded as {upload.file_name}, {upload.size} bytes, license {upload.license}",
            )
        )
        verdict = upload.verdict
        hint = f"; what to do: {verdict['hint']}" if verdict.get("hint") else ""
        if verdict:  # empty while a large upload is checked in the background
            steps.append(
                _step("checked", upload.uploaded_at, f"pre-check: {verdict['decision']}{hint}")
            )
    elif report is not None:
        steps.append(_step("received", report.landed_at, f"landed as {report.landing_path}"))
    if entry is not None and entry.recorded and report is not None:
        at = entry.recorded_at
        if report.duplicate_of:
            steps.append(_step("duplicate", at, f"{report.decision}"))
        elif not report.accepted:
            hint = f"; what to do: {report.hint}" if report.hint else ""
            steps.append(_step("refused", at, f"{report.decision}{hint}"))
        else:
            steps.append(_step("ingested", at, report.decision))
    valued = history.values.get(cid)
    if valued is not None:
        version = valued["valued_in_version"]
        low, high = valued.get("value_interval") or (None, None)
        interval = (
            f" (95 % interval [{low:+.4f}, {high:+.4f}])"
            if low is not None and high is not None
            else ""
        )
        steps.append(
            _step(
                "valued",
                version_times.get(version),
                f"valued in v{version}: {valued['reason']}; value {valued['value']:+.4f}{interval}",
                version=version,
            )
        )
        if valued.get("status") in ("excluded", "nothing_new"):
            steps.append(
                _step(
                    "excluded",
                    version_times.get(version),
                    f"left out of v{version}: {valued['reason']}",
                    version=version,
                )
            )
    for version in history.trained_on.get(cid, []):
        steps.append(
            _step("trained_on", version_times.get(version), f"in model v{version}", version=version)
        )
    if entry is not None and entry.withdrawn_at is not None:
        steps.append(
            _step(
                "withdrawn",
                entry.withdrawn_at,
                "withdrawn: left out of every retrain from "
                "now on, its rows deleted; its history and credit are kept",
            )
        )
    order = {name: i for i, name in enumerate(STEPS)}
    # By time, then by the order steps happen in (a step without a time goes by its kind).
    return sorted(
        steps, key=lambda s: (s["at"] if s["at"] is not None else float("inf"), order[s["step"]])
    )
