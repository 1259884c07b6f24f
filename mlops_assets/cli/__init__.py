"""``mlops``: the command line for everything that is not ``dagster dev`` / ``dagster asset``.

Each command is a few lines over the use case it calls (``contributions``, ``models``,
``service``); none imports the Dagster shell (``mlops_assets.defs``).

Exit codes: 0 success (or an accepted contribution), 1 a negative answer (a rejected
contribution), 2 a usage error or an input that cannot be read.
"""

import argparse
import signal
import sys
from pathlib import Path

from mlops_assets.cli.accounts import (
    contributors_add_command,
    contributors_disable_command,
    contributors_enable_command,
    contributors_list_command,
    contributors_rotate_command,
    portal_command,
    withdraw_command,
)
from mlops_assets.cli.contributions import check_command, contributions_command, submit_command
from mlops_assets.cli.models import (
    model_promote_command,
    model_rollback_command,
    model_show_command,
    verify_command,
)
from mlops_assets.cli.service import (
    serve_command,
    task_check_command,
    webhook_retry_command,
    webhook_secret_command,
)
from mlops_assets.errors import MlopsError
from mlops_assets.process import prepare_process
from mlops_assets.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="check a contribution exactly as the pipeline would")
    check.add_argument("file", type=Path)
    check.add_argument("--contributor", default="local")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(handler=check_command)

    submit = commands.add_parser(
        "submit", help="check a contribution, then place it in the landing zone"
    )
    submit.add_argument("file", type=Path)
    submit.add_argument("--contributor", required=True, help="your id: letters, digits, . _ -")
    submit.set_defaults(handler=submit_command)

    model = commands.add_parser("model", help="inspect the model registry")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    show = model_commands.add_parser("show", help="show a registered model version")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--alias", default=None, help="alias to show (default: champion)")
    which.add_argument("--version", default=None)
    which.add_argument("--uuid", default=None, help="the logged model's id (model_uuid tag)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=model_show_command)

    rollback = model_commands.add_parser(
        "rollback", help="move champion back to previous-champion (audited)"
    )
    rollback.add_argument("--reason", required=True, help="why, recorded on the version")
    rollback.set_defaults(handler=model_rollback_command)
    promote = model_commands.add_parser(
        "promote", help="make a version champion by hand, bypassing the gate (audited)"
    )
    promote.add_argument("version")
    promote.add_argument("--reason", required=True, help="why, recorded on the version")
    promote.set_defaults(handler=model_promote_command)

    verify = commands.add_parser(
        "verify", help="recompute every hash a version's attestation records, and compare"
    )
    verify.add_argument("version")
    verify.set_defaults(handler=verify_command)

    contributions = commands.add_parser(
        "contributions", help="every contribution: status, reasons, and models trained on it"
    )
    contributions.add_argument("--contributor", default=None, help="only this contributor's")
    contributions.add_argument("--json", action="store_true", help="print a JSON list")
    contributions.add_argument(
        "--limit", type=int, default=None, help="at most this many, in landing order"
    )
    contributions.add_argument(
        "--offset", type=int, default=0, help="skip this many first (a page: --offset 100)"
    )
    contributions.set_defaults(handler=contributions_command)
    contribution_commands = contributions.add_subparsers(dest="contributions_command")
    withdraw = contribution_commands.add_parser(
        "withdraw", help="withdraw a contribution: out of the next retrain, its rows deleted"
    )
    withdraw.add_argument("contribution_id")
    withdraw.set_defaults(handler=withdraw_command)

    contributors = commands.add_parser("contributors", help="contributor accounts")
    contributor_commands = contributors.add_subparsers(dest="contributors_command", required=True)
    add = contributor_commands.add_parser(
        "add", help="create an account; prints its token alone on the last line"
    )
    add.add_argument("name", help="the contributor id: letters, digits, . _ -")
    add.add_argument("--display-name", default=None, help="shown to others (default: the name)")
    add.add_argument("--public", action="store_true", help="shown on the public scoreboard")
    add.set_defaults(handler=contributors_add_command)
    listing = contributor_commands.add_parser("list", help="every account")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(handler=contributors_list_command)
    for name, handler, text in (
        ("disable", contributors_disable_command, "refuse the account's tokens"),
        ("enable", contributors_enable_command, "accept the account's tokens again"),
    ):
        toggle = contributor_commands.add_parser(name, help=text)
        toggle.add_argument("name")
        toggle.set_defaults(handler=handler)
    rotate = contributor_commands.add_parser("rotate", help="add a token and print it")
    rotate.add_argument("name")
    rotate.add_argument("--revoke-old", action="store_true", help="revoke the account's others")
    rotate.set_defaults(handler=contributors_rotate_command)

    webhook = commands.add_parser("webhook", help="webhook helpers")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", required=True)
    secret = webhook_commands.add_parser(
        "new-secret", help="print a new Standard Webhooks secret (whsec_...)"
    )
    secret.set_defaults(handler=webhook_secret_command)
    retry = webhook_commands.add_parser(
        "retry", help="make the events waiting in the outbox due now (after fixing a receiver)"
    )
    retry.add_argument("--dead", action="store_true", help="also events already given up")
    retry.set_defaults(handler=webhook_retry_command)

    task = commands.add_parser("task", help="task files")
    task_commands = task.add_subparsers(dest="task_command", required=True)
    task_check = task_commands.add_parser(
        "check", help="validate a task file and its reference data; print what it says"
    )
    task_check.add_argument("file", type=Path)
    task_check.add_argument("--json", action="store_true", help="print one JSON object")
    task_check.set_defaults(handler=task_check_command)

    serve = commands.add_parser("serve", help="run the prediction API (serves the champion)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=serve_command)

    portal = commands.add_parser(
        "portal", help="run the contributors' upload API (and portal) with uvicorn"
    )
    portal.add_argument("--host", default="127.0.0.1")
    portal.add_argument("--port", type=int, default=8080)
    portal.set_defaults(handler=portal_command)

    args = parser.parse_args(argv)
    # SIGTERM ends the command like Ctrl-C does: every temporary folder is removed on the way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    prepare_process()
    try:
        return args.handler(args, Settings.from_env())
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
