"""``mlops``: the command line for everything that is not ``dagster dev`` / ``dagster asset``.

Exit codes: 0 success (or an accepted contribution), 1 a negative answer (a rejected
contribution), 2 a usage error or an input that cannot be read.
"""

import argparse
import json
import re
import signal
import sys
import warnings
from pathlib import Path

from mlops_assets.core.registry import tags as tag
from mlops_assets.errors import MlopsError
from mlops_assets.process import apply_process_defaults, prepare_process
from mlops_assets.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="check a contribution exactly as the pipeline would")
    check.add_argument("file", type=Path)
    check.add_argument("--contributor", default="local")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(handler=_check)

    submit = commands.add_parser(
        "submit", help="check a contribution, then place it in the landing zone"
    )
    submit.add_argument("file", type=Path)
    submit.add_argument("--contributor", required=True, help="your id: letters, digits, . _ -")
    submit.set_defaults(handler=_submit)

    model = commands.add_parser("model", help="inspect the model registry")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    show = model_commands.add_parser("show", help="show a registered model version")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--alias", default=None, help="alias to show (default: champion)")
    which.add_argument("--version", default=None)
    which.add_argument("--uuid", default=None, help="the logged model's id (model_uuid tag)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=_model_show)

    rollback = model_commands.add_parser(
        "rollback", help="move champion back to previous-champion (audited)"
    )
    rollback.add_argument("--reason", required=True, help="why, recorded on the version")
    rollback.set_defaults(handler=_model_rollback)
    promote = model_commands.add_parser(
        "promote", help="make a version champion by hand, bypassing the gate (audited)"
    )
    promote.add_argument("version")
    promote.add_argument("--reason", required=True, help="why, recorded on the version")
    promote.set_defaults(handler=_model_promote)

    verify = commands.add_parser(
        "verify", help="recompute every hash a version's attestation records, and compare"
    )
    verify.add_argument("version")
    verify.set_defaults(handler=_verify)

    contributions = commands.add_parser(
        "contributions", help="every contribution: status, reasons, and models trained on it"
    )
    contributions.add_argument("--contributor", default=None, help="only this contributor's")
    contributions.add_argument("--json", action="store_true", help="print a JSON list")
    contributions.set_defaults(handler=_contributions)

    webhook = commands.add_parser("webhook", help="webhook helpers")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", required=True)
    secret = webhook_commands.add_parser(
        "new-secret", help="print a new Standard Webhooks secret (whsec_...)"
    )
    secret.set_defaults(handler=_new_secret)
    retry = webhook_commands.add_parser(
        "retry", help="make the events waiting in the outbox due now (after fixing a receiver)"
    )
    retry.add_argument("--dead", action="store_true", help="also events already given up")
    retry.set_defaults(handler=_retry_webhooks)

    task = commands.add_parser("task", help="task files")
    task_commands = task.add_subparsers(dest="task_command", required=True)
    task_check = task_commands.add_parser(
        "check", help="validate a task file and its reference data; print what it says"
    )
    task_check.add_argument("file", type=Path)
    task_check.add_argument("--json", action="store_true", help="print one JSON object")
    task_check.set_defaults(handler=_task_check)

    serve = commands.add_parser("serve", help="run the prediction API (serves the champion)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=_serve)

    args = parser.parse_args(argv)
    # SIGTERM ends the command like Ctrl-C does: every temporary folder is removed on the way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Loading the definitions (for the landing zone) warns that partitioned asset checks are
    # a Dagster preview feature: true, known (see the README), and noise on a command line.
    warnings.filterwarnings("ignore", message=".* is currently in preview")
    prepare_process()
    try:
        return args.handler(args, Settings.from_env())
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _intake_report(path: Path, contributor: str, settings: Settings):
    """The report the pipeline would write for ``path`` (raises when it cannot be read)."""
    from mlops_assets.core.data.reference_data import benchmark_split, load_reference_data
    from mlops_assets.core.intake.intake import intake_contribution
    from mlops_assets.core.intake.limits import IntakeLimits
    from mlops_assets.core.intake.report import IntakePolicy
    from mlops_assets.errors import ContributionUnreadableError

    if path.is_symlink():
        raise ContributionUnreadableError(
            f"{path} is a symbolic link: it is never followed", hint="check the file itself"
        )
    if not path.is_file():
        raise ContributionUnreadableError(
            f"{path} is not a regular file", hint="check the path (a file, not a folder or FIFO)"
        )
    task = settings.task
    split = benchmark_split(
        load_reference_data(settings.reference, task),
        task,
        fraction=settings.benchmark_fraction,
        seed=settings.seed,
    )
    return intake_contribution(
        path,
        task,
        reference=split.train,
        benchmark=None if task.private_benchmark else split.benchmark,
        contribution_id=path.name,
        contributor=contributor,
        # The settings the pipeline's IntakeSettings resource holds, read without importing
        # Dagster: that import alone is seconds a contributor waits on every check.
        policy=IntakePolicy(
            min_valid_share=settings.min_valid_share,
            min_quality=settings.min_quality,
            min_rows=settings.min_rows,
            keep_outliers=settings.keep_outliers,
        ),
        limits=IntakeLimits(
            max_bytes=settings.max_decompressed_bytes,
            max_ratio=settings.max_compression_ratio,
            timeout_seconds=settings.intake_timeout,
        ),
    )


def _check(args: argparse.Namespace, settings: Settings) -> int:
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


def _submit(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.defs.resources import landing_zone
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
    zone = landing_zone(settings)
    relative_path = f"{args.contributor}/{args.file.name}"
    zone.put(args.file, relative_path)
    print(f"submitted {args.file.name} to {zone.location.rstrip('/')}/{relative_path}")
    return 0


def _model_show(args: argparse.Namespace, settings: Settings) -> int:
    apply_process_defaults()
    from mlops_assets.core.registry.reader import find_version
    from mlops_assets.core.registry.tags import CHAMPION
    from mlops_assets.errors import ModelNotFoundError

    name = settings.model_name
    if args.version:
        version = find_version(settings.tracking_uri, name, version=args.version)
        missing, hint = (
            f"no version {args.version}",
            "`mlops model show` shows the champion's number",
        )
    elif args.uuid:
        version = find_version(settings.tracking_uri, name, model_uuid=args.uuid)
        missing = f"no version with model_uuid {args.uuid!r}"
        hint = "copy the model_uuid from `mlops model show` or the Dagster UI"
    else:
        alias = args.alias or CHAMPION
        version = find_version(settings.tracking_uri, name, alias=alias)
        missing = f"no version with alias {alias!r}"
        hint = "materialize the pipeline first (make run, or dagster asset materialize)"
    if version is None:
        raise ModelNotFoundError(f"{name} has {missing}", hint=hint)
    document = {
        "name": version.name,
        "version": str(version.version),
        "aliases": sorted(version.aliases),
        "model_uuid": version.tags.get(tag.MODEL_UUID),
        "model_id": version.tags.get(tag.MODEL_ID),
        "data_sha256": version.tags.get(tag.DATA_SHA256),
        "contributions": json.loads(version.tags.get(tag.CONTRIBUTIONS, "[]")),
        "contribution_values": json.loads(version.tags.get(tag.CONTRIBUTION_VALUES, "[]")),
        "excluded_contributions": json.loads(version.tags.get(tag.EXCLUDED_CONTRIBUTIONS, "{}")),
        "delta_intervals": json.loads(version.tags.get(tag.DELTA_INTERVALS, "{}")),
        "metrics": {
            k.removeprefix(tag.BENCHMARK_PREFIX): float(v)
            for k, v in version.tags.items()
            if k.startswith(tag.BENCHMARK_PREFIX)
        },
        "promotion_reason": version.tags.get(tag.PROMOTION_REASON),
        "tags": dict(version.tags),
    }
    if args.json:
        print(json.dumps(document, sort_keys=True))
    else:
        print(
            f"{document['name']} v{document['version']}  aliases: {', '.join(document['aliases'])}"
        )
        for key in ("model_uuid", "data_sha256", "promotion_reason"):
            print(f"  {key}: {document[key]}")
        for key, value in sorted(document["metrics"].items()):
            found = document["delta_intervals"].get(key)
            versus = (
                f"  (vs its baseline {found['delta']:+.4f}, 95 % interval "
                f"[{found['low']:+.4f}, {found['high']:+.4f}])"
                if found
                else ""
            )
            print(f"  {key}: {value:.4f}{versus}")
        for value in document["contribution_values"]:
            print(f"  {value['contribution_id']}: {value['status']}, {value['reason']}")
    return 0


def _model_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.core.registry.client import rollback_champion

    return _change_champion(
        settings,
        lambda client, actor: rollback_champion(
            client, settings.model_name, actor=actor, reason=args.reason
        ),
    )


def _model_promote(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.core.registry.client import set_champion_by_hand

    return _change_champion(
        settings,
        lambda client, actor: set_champion_by_hand(
            client, settings.model_name, args.version, actor=actor, reason=args.reason, how="manual"
        ),
    )


def _change_champion(settings: Settings, change) -> int:
    import getpass

    apply_process_defaults()
    from mlops_assets.core.registry.client import mlflow_client, registry_errors

    with registry_errors(settings.tracking_uri):
        done = change(mlflow_client(settings.tracking_uri), getpass.getuser())
    was = f"v{done.from_version}" if done.from_version else "none"
    print(
        f"{done.model_name}: champion is now v{done.to_version} (was {was}), {done.how} by "
        f"{done.actor} at {done.at}: {done.reason}"
    )
    from mlops_assets.core.serving.notify import tell_apis

    for line in tell_apis(list(settings.api_urls), settings.api_key):
        print(line)
    if settings.webhook_url and settings.webhook_secret:
        from mlops_assets.defs.resources import webhooks

        # Initialized as Dagster would: the secret is an EnvVar until then.
        sender = webhooks(settings).process_config_and_initialize()
        for line in sender.announce(done.version_event()):
            print(line)
    return 0


def _retry_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.core.registry.webhooks import Outbox

    count = Outbox(settings.home / "webhooks").retry_now(dead_too=args.dead)
    print(f"{count} event(s) due now: webhook_redelivery_sensor sends them on its next tick")
    return 0


def _new_secret(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.core.registry.webhooks import new_secret

    print(new_secret())
    return 0


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    """Reads a local registry, store and landing zone in place (no MLflow or Dagster import);
    the work is the hashing and the replayed valuation."""
    apply_process_defaults()
    from mlops_assets.core.common import layout
    from mlops_assets.core.common.hashing import file_sha256
    from mlops_assets.core.registry.attestation import Finding, verify
    from mlops_assets.core.registry.reader import find_version
    from mlops_assets.errors import ModelNotFoundError

    name = settings.model_name
    version = find_version(settings.tracking_uri, name, version=args.version)
    if version is None:
        raise ModelNotFoundError(
            f"{name} has no version {args.version}",
            hint="`mlops model show` shows the champion's number",
        )
    document = _attestation(settings, version)
    if document is None:
        raise ModelNotFoundError(
            f"{name} v{args.version} has no attestation of its own: it was registered "
            "before versions were attested one by one",
            hint="versions registered since are attested; retrain to get one that is",
        )

    def model_digests(model_name: str, number: str) -> dict[str, str] | None:
        try:
            return _model_digests(settings, model_name, number)
        except (OSError, MlopsError):
            return None

    def dataset_sha256(which: str) -> str | None:
        from mlops_assets.core.common.hashing import frame_sha256

        attested = str(document.get("integrated_dataset_sha256") or "")
        if which == "benchmark":
            key = layout.BENCHMARK
        elif attested:
            key = layout.integrated(attested)
        else:
            return None  # a record without the hash cannot hold
        path = _stored_file(settings, key)
        return frame_sha256(_read_parquet(path)) if path else None

    def contribution_sha256(contribution: dict) -> str | None:
        """The kept bytes when there are (the landing file may have changed since), else
        the landing file."""
        try:
            if snapshot := contribution.get("snapshot"):
                path = _stored_file(settings, f"{layout.ORIGINALS}/{snapshot}")
                return file_sha256(path) if path else None
            _, local_copy = _landing_zone_view(settings)
            with local_copy(contribution["landing_path"]) as local:
                return file_sha256(local)
        except (OSError, KeyError, TypeError, ValueError, MlopsError):
            return None

    def revalue(valuation: dict) -> dict | None:
        from mlops_assets.core.modeling.valuation import recompute

        data = _stored_file(settings, layout.integrated(str(valuation.get("dataset_sha256"))))
        benchmark = _stored_file(settings, layout.BENCHMARK)
        if data is None or benchmark is None:
            return None
        frame, rows = _read_parquet(data), _read_parquet(benchmark)
        return recompute(valuation, frame, rows, settings.task).to_dict()

    findings = verify(
        document,
        model_digests=model_digests,
        dataset_sha256=dataset_sha256,
        contribution_sha256=contribution_sha256,
        revalue=revalue,
    )
    findings.insert(
        0,
        Finding(
            "registry tag",
            version.tags.get(tag.ATTESTATION_SHA256) == document.get("document_sha256"),
            "attestation_sha256 on the version matches the record",
        ),
    )
    for finding in findings:
        mark = "ok  " if finding.holds else "FAIL"
        print(f"{mark} {finding.what}: {finding.detail}")
    holds = all(f.holds for f in findings)
    print(f"{name} v{args.version}: the attestation {'holds' if holds else 'does NOT hold'}")
    return 0 if holds else 1


def _contributions(args: argparse.Namespace, settings: Settings) -> int:
    """Reads the reports, the landing zone and the registry directly where they are local
    (no Dagster, no MLflow import: an answer in well under the seconds those take); the
    Dagster instance only for landed files without a report (a failed intake's reason)."""
    apply_process_defaults()
    from mlops_assets.core.common.hashing import file_sha256
    from mlops_assets.core.intake.landing import contribution_key
    from mlops_assets.core.intake.overview import ContributionHistory, contribution_overview
    from mlops_assets.core.intake.report import contribution_reports
    from mlops_assets.core.registry.reader import model_versions

    reports = [report for report, _ in contribution_reports(_reports_root(settings))]
    reported = {r["contribution_id"] for r in reports}
    listing, local_copy = _landing_zone_view(settings)
    landed = []
    for file in listing.files:
        key = contribution_key(file.relative_path)
        entry = {"contribution_id": key, "contributor": file.contributor}
        entry["landing_path"] = file.relative_path
        if key not in reported:  # hashed only when there is no report to read it from
            with local_copy(file.relative_path) as local:
                entry["sha256"] = file_sha256(local)
        landed.append(entry)
    versions = model_versions(settings.tracking_uri, settings.model_name)
    history = ContributionHistory.from_versions([(v.version, v.tags) for v in versions])
    unreported = any(entry.get("sha256") for entry in landed)
    rows = [
        row
        for row in contribution_overview(
            reports,
            landed,
            history,
            [(r.relative_path, r.reason) for r in listing.refused],
            _intake_failures(settings) if unreported else {},
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
        if row["status"] in ("rejected", "excluded", "nothing_new"):
            print(f"  {row['decision']}")
        if row["hint"]:
            print(f"  what to do: {row['hint']}")
        if row["value"] is not None and row["status"] not in ("excluded", "nothing_new"):
            print(f"  {_worth_in_words(row)}")
        for reason, count in row["reasons"].items():
            print(f"  {count:6d} x {reason}")
    return 0


def _attestation(settings: Settings, version) -> dict | None:
    """``version``'s attestation (``VersionView``), read in place from a local artifact
    store, else through MLflow; None when it has none of its own."""
    from mlops_assets.core.registry.attestation import LEGACY_ARTIFACT_PATH
    from mlops_assets.core.registry.reader import run_artifacts

    root = run_artifacts(settings.tracking_uri, version.run_id)
    if root is None:
        from mlops_assets.core.registry.client import (
            mlflow_client,
            read_attestation,
            registry_errors,
        )

        with registry_errors(settings.tracking_uri):
            client = mlflow_client(settings.tracking_uri)
            return read_attestation(client, client.get_model_version(version.name, version.version))
    path = root / version.tags.get(tag.ATTESTATION_PATH, LEGACY_ARTIFACT_PATH)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if str(document.get("version")) == version.version else None


def _model_digests(settings: Settings, model_name: str, number: str) -> dict[str, str] | None:
    """sha256 of every file of a registered version's model, hashed in place when local."""
    from mlops_assets.core.registry.attestation import directory_digests
    from mlops_assets.core.registry.reader import find_version

    found = find_version(settings.tracking_uri, model_name, version=number)
    if found is not None and (local := found.local_files()) is not None:
        return directory_digests(local)
    from mlflow.exceptions import MlflowException

    from mlops_assets.core.registry.client import model_file_digests

    try:
        return model_file_digests(settings.tracking_uri, model_name, number)
    except MlflowException:
        return None


def _stored_file(settings: Settings, key: str) -> Path | None:
    """A local path holding the stored file ``key`` (in place when the store is local), or
    None when it is not stored."""
    if not settings.storage_uri.startswith("s3://"):
        path = Path(settings.storage_uri).joinpath(*key.split("/"))
        return path if path.exists() else None
    from mlops_assets.defs.resources import dataset_store

    store = dataset_store(settings)
    return store.fetch(key) if store.exists(key) else None


def _read_parquet(path: Path):
    import pandas as pd

    return pd.read_parquet(path)


def _reports_root(settings: Settings) -> Path:
    """The folder of the contribution reports: read in place when the store is local."""
    if not settings.storage_uri.startswith("s3://"):
        return Path(settings.storage_uri) / "contributions"  # layout.CONTRIBUTIONS
    from mlops_assets.defs.resources import dataset_store

    store = dataset_store(settings)
    return store.fetch_tree(store.CONTRIBUTIONS, ending="report.json")


def _landing_zone_view(settings: Settings):
    """The landing zone's listing and a way to read one of its files: a local folder is
    scanned by the same code as the resource's, without loading Dagster."""
    if settings.landing_uri.startswith("s3://"):
        from mlops_assets.defs.resources import landing_zone

        zone = landing_zone(settings)
        return zone.scan(), zone.local_copy
    import contextlib

    from mlops_assets.core.intake.landing import file_in_folder, scan_folder

    root = Path(settings.landing_uri)

    @contextlib.contextmanager
    def in_place(relative_path: str):
        yield file_in_folder(root, relative_path)

    return scan_folder(root), in_place


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


def _task_check(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.core.data.reference_data import check_task_file

    try:
        checked = check_task_file(args.file)
    except (MlopsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(checked, sort_keys=True))
        return 0
    print(f"task {checked['name']}: label {checked['label']}, classes {checked['classes']}")
    for feature in checked["features"]:
        print(f"  {feature['name']}: {feature['described']}")
    print(f"identical rows in contributions: {checked['duplicates']}")
    reference = checked["reference"]
    print(
        f"reference {reference['location']}: {reference['rows']} rows, {reference['class_counts']}"
    )
    if reference["dropped_columns"]:
        print(f"  columns not used: {reference['dropped_columns']}")
    if reference["rows_left_out"]:
        print(
            f"  rows left out: {reference['rows_left_out']} ({reference['rows_left_out_reasons']})"
        )
    print(f"benchmark: {checked['benchmark']}")
    for warning in checked["warnings"]:
        print(f"warning: {warning}")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    apply_process_defaults()
    import logging

    import uvicorn

    from mlops_assets.serving.api import app_from_settings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        app_from_settings(settings),
        host=args.host,
        port=args.port,
        access_log=False,
        # Bounded: beyond this many connections uvicorn answers 503 at once.
        limit_concurrency=settings.api_max_connections,
        timeout_keep_alive=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
