"""The process's own environment: the one module of the product that writes ``os.environ``.

Every entry point (the code location's ``defs``, the ``mlops`` command) calls
:func:`prepare_process` before MLflow or Great Expectations is used: it loads ``.env`` (real
variables win, so boto3 and MLflow see what it sets too), sets bounded-retry and no-telemetry
defaults unless the user set them, and moves credentials out of ``MLFLOW_TRACKING_URI`` into
MLflow's own variables, so every URI MLflow prints or raises is the clean one.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlops_assets.settings import MLFLOW_DEFAULTS, split_credentials

# MLflow's defaults from the settings table, and the rest: no telemetry (a pipeline should
# not phone home), no progress bars (noise in logs and command output).
PROCESS_ENV_DEFAULTS = {
    **{spec.name: str(spec.default) for spec in MLFLOW_DEFAULTS},
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DAGSTER_DISABLE_TELEMETRY": "true",
}

_dotenv_loaded = False


def prepare_process() -> None:
    """Load ``.env``, set the process defaults and move the tracking URI's credentials."""
    load_dotenv_once()
    apply_process_defaults()
    move_credentials_to_mlflow()


def load_dotenv_once() -> None:
    """Load ``.env`` from the working directory; real environment variables win."""
    global _dotenv_loaded
    if not _dotenv_loaded:
        from dotenv import load_dotenv

        load_dotenv(Path.cwd() / ".env", override=False)
        _dotenv_loaded = True


def apply_process_defaults() -> None:
    """Set bounded-retry and no-telemetry defaults unless the user set them."""
    for name, value in PROCESS_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


def move_credentials_to_mlflow() -> None:
    """``MLFLOW_TRACKING_URI=https://user:secret@host`` -> the URI without them, and the user
    and secret in MLflow's ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` (unless set already):
    MLflow then authenticates, and prints and raises only clean URIs."""
    clean, credentials = split_credentials(os.environ.get("MLFLOW_TRACKING_URI", ""))
    if credentials is None:
        return
    user, password = credentials
    os.environ["MLFLOW_TRACKING_URI"] = clean
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", user)
    if password:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", password)
