"""``mlops model show|rollback|promote`` and ``mlops verify``: the registry, read and
changed by hand (audited), and a version's attestation checked again."""

import argparse
import json

from mlops_assets.core.registry import tags as tag
from mlops_assets.process import apply_process_defaults
from mlops_assets.settings import Settings


def model_show_command(args: argparse.Namespace, settings: Settings) -> int:
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


def model_rollback_command(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.core.promotion.champion import rollback_champion

    return _change_champion(
        settings,
        lambda client, actor: rollback_champion(
            client, settings.model_name, actor=actor, reason=args.reason
        ),
    )


def model_promote_command(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.core.promotion.champion import set_champion_by_hand

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
        from mlops_assets.core.registry.webhooks import announce

        for line in announce(
            done.version_event(),
            url=settings.webhook_url,
            secret=settings.webhook_secret,
            outbox=settings.home / "webhooks",
            max_age=settings.webhook_max_age,
        ):
            print(line)
    return 0


def verify_command(args: argparse.Namespace, settings: Settings) -> int:
    apply_process_defaults()
    from mlops_assets.core.promotion.verify import verify_version
    from mlops_assets.core.storage.places import open_landing, open_store

    checked = verify_version(
        tracking_uri=settings.tracking_uri,
        model_name=settings.model_name,
        version=args.version,
        task=settings.task,
        store=open_store(settings.storage_uri, settings.s3_endpoint_url),
        landing=lambda: open_landing(settings.landing_uri, settings.s3_endpoint_url),
    )
    for finding in checked.findings:
        mark = "ok  " if finding.holds else "FAIL"
        print(f"{mark} {finding.what}: {finding.detail}")
    holds = "holds" if checked.holds else "does NOT hold"
    print(f"{checked.model_name} v{checked.version}: the attestation {holds}")
    return 0 if checked.holds else 1
