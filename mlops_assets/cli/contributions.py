"""``mlops check``, ``mlops submit`` and ``mlops contributions``: a contribution checked as the
pipeline would, delivered to the landing zone, and every contribution's status."""

import argparse
import json
import re
import sys
from pathlib import Path

from mlops_assets.process import apply_process_defaults
from mlops_assets.settings import Settings


def _intake_report(path: Path, contributor: str, settings: Settings):
    """The report the pipeline would write for ``path`` (raises when it cannot be read)."""
    from mlops_assets.errors import ContributionUnreadableError

    if path.is_symlink():
        raise ContributionUnreadableError(
            f"{path} is a symbolic link: it is never followed", hint="check the file itself"
        )
    if not path.is_file():
        raise ContributionUnreadableError(
            f"{path} is not a regular file", hint="check the path (a file, not a folder or FIFO)"
        )
    from mlops_assets.core.data.precheck import Prechecker

    return Prechecker.from_settings(settings).check(path, contributor)


def check_command(args: argparse.Namespace, settings: Settings) -> int:
    report = _intake_report(args.file, args.contributor, settings)
    if args.json:
        print(json.dumps(report.to_dict(), sort_keys=True))
    else:
        print(f"{report.file_name}: {report.decision}")
        if report.hint:
            print(f"  what to do: {report.hint}")
        print(
            f"  read as {report.reader}, {report.encoding}, header: {report.header}; "
            f"{report.records_in_file} records in the file"
        )
        if report.dialect:
            dialect = report.dialect
            print(
                f"  {dialect['delimiter']}-delimited, decimal {dialect['decimal']}, "
                f"{dialect['line_endings']} line endings"
            )
        for line in report.skipped_lines:
            print(f"  skipped {line['position']}: {line['text']}")
        if report.other_sheets:
            print(f"  other sheets, not read: {', '.join(report.other_sheets)}")
        print(
            f"  rows in {report.rows_in}, clean {report.rows_clean},"
            f" rejected {report.rows_rejected}, quality score {report.quality_score:.1f}"
        )
        for reason, count in report.rejection_reasons.items():
            print(f"  {count:6d} x {reason}")
        for kind, count in report.pii_found.items():
            print(f"  personal data: {count} x {kind} (column never kept)")
        if report.dropped_columns:
            print(f"  dropped columns: {', '.join(report.dropped_columns)}")
        for hint in report.hints:
            print(f"  hint: {hint}")
    return 0 if report.accepted else 1


def submit_command(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.core.storage.places import open_landing
    from mlops_assets.errors import ConfigurationError

    if not re.fullmatch(r"[A-Za-z0-9._-]+", args.contributor) or set(args.contributor) == {"."}:
        raise ConfigurationError(
            f"contributor id {args.contributor!r} is not allowed",
            hint="use letters, digits, '.', '_' and '-' only",
        )
    report = _intake_report(args.file, args.contributor, settings)
    if not report.accepted:
        print(f"not submitted: {report.file_name}: {report.decision}", file=sys.stderr)
        return 1
    zone = open_landing(settings.landing_uri, settings.s3_endpoint_url)
    relative_path = f"{args.contributor}/{args.file.name}"
    zone.put(args.file, relative_path)
    print(f"submitted {args.file.name} to {zone.location.rstrip('/')}/{relative_path}")
    return 0


def contributions_command(args: argparse.Namespace, settings: Settings) -> int:
    """Reads the contribution catalog (a page of it with ``--limit``/``--offset``), the landing
    zone and the registry directly (no Dagster, no MLflow import: an answer in well under the
    seconds those take); the Dagster instance only for landed files without a report (a
    failed intake's reason). The whole list (no ``--limit``) also shows the landing zone's
    files not taken in yet and its refused entries; a page is read from the catalog alone,
    so it answers in the same time whatever the size of the zone."""
    apply_process_defaults()
    from mlops_assets.core.catalog.sync import open_catalog
    from mlops_assets.core.common.hashing import file_sha256
    from mlops_assets.core.intake.landing import Listing, contribution_key
    from mlops_assets.core.intake.overview import ContributionHistory, contribution_overview
    from mlops_assets.core.registry.reader import model_versions
    from mlops_assets.core.storage.places import open_landing, open_store

    store = open_store(settings.storage_uri, settings.s3_endpoint_url)
    catalog = open_catalog(settings.catalog_url, settings.task, store)
    page = catalog.entries(contributor=args.contributor, limit=args.limit, offset=args.offset)
    reports = [entry.report for entry in page if entry.recorded]
    zone = open_landing(settings.landing_uri, settings.s3_endpoint_url)
    listing = zone.scan() if args.limit is None and args.offset == 0 else Listing()
    local_copy = zone.local_copy
    reported = catalog.recorded_ids() if listing.files else set()
    landed = []
    for file in listing.files:
        key = contribution_key(file.relative_path)
        if key in reported:
            continue
        entry = {"contribution_id": key, "contributor": file.contributor}
        entry["landing_path"] = file.relative_path
        with local_copy(file.relative_path) as local:  # no report to read its hash from
            entry["sha256"] = file_sha256(local)
        entry["duplicate_of"] = catalog.find_by_sha256(entry["sha256"], exclude=key) or ""
        landed.append(entry)
    versions = model_versions(settings.tracking_uri, settings.model_name)
    history = ContributionHistory.from_versions([(v.version, v.tags) for v in versions])
    unreported = bool(landed)
    rows = [
        row
        for row in contribution_overview(
            reports,
            landed,
            history,
            [(r.relative_path, r.reason) for r in listing.refused],
            _intake_failures(settings) if unreported else {},
            withdrawn={e.report.contribution_id: e.withdrawn_at for e in page if e.withdrawn_at},
        )
        if args.contributor is None or row["contributor"] == args.contributor
    ]
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return 0
    if not rows:
        print("no contributions yet")
    for row in rows:
        if row["quality_score"] is None:
            print(f"{row['landing_path']}: {row['status']}: {row['decision']}")
            if row["hint"]:
                print(f"  what to do: {row['hint']}")
            continue
        versions_text = ", ".join(f"v{v}" for v in row["model_versions"]) or "none yet"
        print(
            f"{row['landing_path']}: {row['status']} ({row['rows_accepted']} rows accepted, "
            f"quality {row['quality_score']:.1f}); models trained on it: {versions_text}"
        )
        if row["status"] in ("rejected", "excluded", "nothing_new", "withdrawn"):
            print(f"  {row['decision']}")
        if row["hint"]:
            print(f"  what to do: {row['hint']}")
        if row["value"] is not None and row["status"] not in ("excluded", "nothing_new"):
            print(f"  {_worth_in_words(row)}")
        for reason, count in row["reasons"].items():
            print(f"  {count:6d} x {reason}")
    return 0


def _worth_in_words(row: dict) -> str:
    low, high = row["value_interval"]
    return (
        f"valued in v{row['valued_in_version']}: {row['value_reason']} (value "
        f"{row['value']:+.4f}, 95 % interval [{low:+.4f}, {high:+.4f}], leave-one-out "
        f"{row['loo_delta']:+.4f})"
    )


def _intake_failures(settings: Settings) -> dict[str, str]:
    """Landing path -> why its latest intake run failed, for intakes that are over and not
    being retried, from the Dagster instance of the deployment (none when there is none)."""
    import os

    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    if not home.is_dir():
        return {}
    import dagster as dg

    from mlops_assets.core.common.names import safe_text

    latest: dict[str, dg.RunRecord] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={"mlops/stage": "ingest"}))
        for record in sorted(records, key=lambda r: r.create_timestamp):
            latest[record.dagster_run.tags.get("mlops/landing_path", "")] = record
        failures = {}
        for path, record in latest.items():
            if record.dagster_run.status != dg.DagsterRunStatus.FAILURE:
                continue
            events = instance.all_logs(
                record.dagster_run.run_id,
                of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE},
            )
            failures[path] = safe_text(_failure_message(events), limit=300)
    return failures


def _failure_message(events: list) -> str:
    for event in events:
        data = event.dagster_event.step_failure_data if event.dagster_event else None
        if data is not None and data.error is not None:
            error = data.error.cause or data.error
            return error.message.strip().splitlines()[0]
    return next((e.message for e in events if e.message), "the run failed")
