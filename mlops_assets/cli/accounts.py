"""``mlops contributors``, ``mlops contributions withdraw`` and ``mlops portal``: the operator's
side of the contributors' door, and the door itself."""

import argparse
import json
from datetime import UTC, datetime

from mlops_assets.cli.service import serve_http
from mlops_assets.process import apply_process_defaults
from mlops_assets.settings import Settings


def _accounts(settings: Settings):
    from mlops_assets.core.accounts.store import AccountStore

    return AccountStore(settings.catalog_url)


def contributors_add_command(args: argparse.Namespace, settings: Settings) -> int:
    account, token = _accounts(settings).add(
        args.name, args.display_name or args.name, public=args.public
    )
    print(f"account {account.name} created; its token, shown once (store it now):")
    print(token)  # alone on the last line, so scripts can take it: `| tail -n 1`
    return 0


def contributors_list_command(args: argparse.Namespace, settings: Settings) -> int:
    accounts = _accounts(settings).list()
    if args.json:
        print(json.dumps([a.to_dict() for a in accounts], sort_keys=True))
        return 0
    if not accounts:
        print("no accounts yet: `mlops contributors add NAME --display-name '...'`")
    for a in accounts:
        created = datetime.fromtimestamp(a.created_at, UTC).isoformat(timespec="seconds")
        state = "disabled" if a.disabled else "enabled"
        shown = "public" if a.public else "private"
        print(
            f"{a.name}: {a.display_name!r}, {state}, {shown}, {a.tokens} token(s), since {created}"
        )
    return 0


def contributors_disable_command(args: argparse.Namespace, settings: Settings) -> int:
    _accounts(settings).set_disabled(args.name, True)
    print(f"{args.name} disabled: its tokens are refused until `mlops contributors enable`")
    return 0


def contributors_enable_command(args: argparse.Namespace, settings: Settings) -> int:
    _accounts(settings).set_disabled(args.name, False)
    print(f"{args.name} enabled")
    return 0


def contributors_rotate_command(args: argparse.Namespace, settings: Settings) -> int:
    token = _accounts(settings).rotate(args.name, revoke_old=args.revoke_old)
    old = "revoked" if args.revoke_old else "still valid (`--revoke-old` revokes them)"
    print(f"a new token for {args.name}, shown once; the old ones are {old}:")
    print(token)
    return 0


def withdraw_command(args: argparse.Namespace, settings: Settings) -> int:
    """Withdraw a contribution by hand, as its contributor can through the upload API."""
    apply_process_defaults()
    from mlops_assets.core.accounts.portal import withdraw_contribution
    from mlops_assets.core.catalog.sync import open_catalog
    from mlops_assets.core.storage.places import open_landing, open_store

    store = open_store(settings.storage_uri, settings.s3_endpoint_url)
    entry = withdraw_contribution(
        open_catalog(settings.catalog_url, settings.task, store),
        store,
        open_landing(settings.landing_uri, settings.s3_endpoint_url),
        args.contribution_id,
    )
    when = datetime.fromtimestamp(entry.withdrawn_at or 0, UTC).isoformat(timespec="seconds")
    print(
        f"{args.contribution_id} withdrawn ({when}): left out of the next retrain, its rows "
        "deleted, its history kept"
    )
    return 0


def portal_command(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.portal.app import create_app

    return serve_http(lambda: create_app(settings), args, settings)
