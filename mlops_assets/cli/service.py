"""``mlops webhook``, ``mlops task check`` and ``mlops serve``: the webhook outbox, task
files, and the prediction API."""

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from mlops_assets.errors import MlopsError
from mlops_assets.process import apply_process_defaults
from mlops_assets.settings import Settings


def webhook_retry_command(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.core.registry.webhooks import Outbox

    count = Outbox(settings.home / "webhooks").retry_now(dead_too=args.dead)
    print(f"{count} event(s) due now: webhook_redelivery_sensor sends them on its next tick")
    return 0


def webhook_secret_command(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.core.registry.webhooks import new_secret

    print(new_secret())
    return 0


def task_check_command(args: argparse.Namespace, settings: Settings) -> int:
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


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_assets.serving.api import app_from_settings

    return serve_http(lambda: app_from_settings(settings), args, settings)


def serve_http(make_app: Callable[[], Any], args: argparse.Namespace, settings: Settings) -> int:
    """Run the ASGI app ``make_app()`` makes with uvicorn on ``--host``/``--port``."""
    apply_process_defaults()
    import logging

    import uvicorn

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        make_app(),
        host=args.host,
        port=args.port,
        # No access log: a URL is never logged with what a client put in it.
        access_log=False,
        # Bounded: beyond this many connections uvicorn answers 503 at once.
        limit_concurrency=settings.api_max_connections,
        timeout_keep_alive=5,
    )
    return 0
