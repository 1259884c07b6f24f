"""All configuration, read from environment variables (and a ``.env`` file when present).

Every variable is documented in the README's configuration table; ``SETTINGS_DOC`` below is
the source of that table and a test keeps the two in step.

Long on purpose: every setting, its parsing and its documentation in one place.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlops_assets.errors import ConfigurationError
from mlops_assets.task import TaskSchema

REPO_ROOT = Path(__file__).resolve().parent.parent

# name -> (default shown in the README, meaning)
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "MLOPS_HOME": (
        "./var",
        "Directory holding all embedded state: Dagster home, MLflow, landing zone, Parquet storage.",
    ),
    "MLFLOW_TRACKING_URI": (
        "sqlite:///$MLOPS_HOME/mlflow/mlflow.db",
        "MLflow tracking and registry store (a SQLite file or an `http(s)://` MLflow server). Credentials in it (`https://user:password@host`) are moved to MLflow's `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD` when it is read, so no URI shown or logged carries them.",
    ),
    "MLOPS_MLFLOW_ARTIFACTS": (
        "$MLOPS_HOME/mlflow/artifacts with a SQLite store; the server's own with an MLflow server",
        "Artifact location of the experiment when this system creates it.",
    ),
    "MLOPS_MLFLOW_UI_URL": (
        "the tracking URI when it is `http(s)://`, else none",
        "Base URL of an MLflow UI, used for links in Dagster metadata.",
    ),
    "MLOPS_LANDING_URI": (
        "$MLOPS_HOME/landing",
        "Landing zone contributors drop files into: `<landing>/<contributor_id>/<file>`.",
    ),
    "MLOPS_S3_ENDPOINT_URL": (
        "none (AWS)",
        "S3 endpoint for an `s3://` landing zone or dataset store on MinIO or another S3-compatible server; credentials come from the standard `AWS_*` variables.",
    ),
    "MLOPS_STORAGE_URI": (
        "$MLOPS_HOME/storage",
        "Where datasets are written as Parquet (and contribution reports as JSON): a folder, or `s3://bucket/prefix`, which every run reads and writes itself (no shared disk needed).",
    ),
    "MLOPS_TASK": (
        "tasks/iris.toml in the repository",
        'The task file: what a row looks like (features, label, classes) and its reference data (README, "Task files"). A home (`MLOPS_HOME`) and a registered model hold one task: a home or model of another task is refused.',
    ),
    "MLOPS_IRIS_CSV": (
        "the task's `reference`",
        "The reference data (a CSV or Parquet file, or `sklearn:<loader>`), overriding the task file's. For iris only, scikit-learn's copy is used when the file is missing or empty.",
    ),
    "MLOPS_MODEL_NAME": (
        "`<task>-classifier`",
        "Registered model name in the MLflow Model Registry (`iris-classifier` for the default task).",
    ),
    "MLOPS_EXPERIMENT": (
        "`<task>-continuous-training`",
        "MLflow experiment that training runs are logged to.",
    ),
    "MLOPS_BASELINE_SOURCE": (
        "models:/$MLOPS_MODEL_NAME@champion",
        "The model to beat: `models:/NAME@ALIAS`, `models:/NAME/VERSION`, or a local `.skops`, `.pkl`, `.pickle`, `.joblib` file or MLflow model directory (imported into the registry once).",
    ),
    "MLOPS_TRUSTED_MODEL_DIR": (
        "none (pickle and joblib refused)",
        "The only directory pickle/joblib models (and MLflow directories holding a pickle) are loaded from: unpickling runs code.",
    ),
    "MLOPS_BASELINE_SHA256": (
        "none",
        "When set, a local baseline file (or MLflow directory) must have this sha256, checked before anything is deserialized.",
    ),
    "MLOPS_BASELINE_VALIDATORS": (
        "none",
        "Comma-separated validation hooks `package.module:function`, each called with `(model, probe_rows, task)`; raising or returning False rejects the baseline.",
    ),
    "MLOPS_REGISTRY_RETRIES": (
        "6",
        "Attempts at a registry read (baseline lookup and download) when the server is unreachable or answers 5xx, with waits of 1, 2, 4, 8 s.",
    ),
    "MLOPS_REGISTRY_RETRY_SECONDS": (
        "60",
        'Time after which registry reads stop being retried; "not found" and 401/403 are never retried.',
    ),
    "MLOPS_PRIMARY_METRIC": (
        "log_loss",
        'Benchmark metric deciding promotion and valuing contributions (`log_loss`, `brier`, `accuracy`, `f1_macro`, `precision_macro`, `recall_macro`, `roc_auc_ovr`). Log loss separates real improvements from noise best on the iris benchmark (README, "How a contribution is valued").',
    ),
    "MLOPS_MIN_IMPROVEMENT": (
        "0.0",
        "Minimum improvement of the primary metric over the champion to promote; the candidate must also be strictly better.",
    ),
    "MLOPS_SIGNIFICANCE": (
        "0.05",
        "A candidate must also be better than the champion at this level: the two-sided paired bootstrap over benchmark rows, whose interval (shown at `1 -` this level) excludes zero exactly when the test passes; 0 turns the test off (strictly better is enough).",
    ),
    "MLOPS_VALUATION_EXACT_MAX": (
        "8",
        "Up to this many new contributions in one retrain, their Shapley values are exact (2^n models trained); beyond, they are estimated from sampled permutations with a standard error.",
    ),
    "MLOPS_VALUATION_BUDGET_SECONDS": (
        "60",
        "Time after which sampling permutations for an estimated valuation stops (at least 2 are sampled).",
    ),
    "MLOPS_VALUATION_MAX_PERMUTATIONS": (
        "200",
        "Most permutations sampled for an estimated valuation.",
    ),
    "MLOPS_VALUATION_MAX_ROWS": (
        "50000",
        "Training rows each valuation model is trained on at most: a larger training set is valued on one seeded sample of this many rows.",
    ),
    "MLOPS_EXCLUDE_HARMFUL": (
        "true",
        "Leave a new contribution out of the candidate's training data when its value is negative beyond its 95 % interval; it is valued again in the next retrain.",
    ),
    "MLOPS_MIN_BENCHMARK_ROWS": (
        "30",
        "Benchmark rows needed to decide a promotion at all; a smaller benchmark promotes nothing.",
    ),
    "MLOPS_WEBHOOK_URL": (
        "none (off)",
        "Where `model_version.registered` / `model_version.promoted` events are POSTed as Standard Webhooks.",
    ),
    "MLOPS_WEBHOOK_SECRET": (
        "none",
        "Standard Webhooks secret(s), `whsec_` + base64 (`mlops webhook new-secret` makes one), space-separated while rotating: every event carries a signature for each. Required when `MLOPS_WEBHOOK_URL` is set; reaches Dagster only as an `EnvVar`.",
    ),
    "MLOPS_WEBHOOK_MAX_AGE": (
        "86400",
        "Seconds an undelivered webhook event is retried (backoff from 10 s, capped at 10 min) before it moves to the outbox's `dead/`.",
    ),
    "MLOPS_API_KEY": (
        "none (open)",
        "When set, `/predict` and `/model` need this value in an `X-API-Key` header (401 otherwise); `/health` and the docs stay open.",
    ),
    "MLOPS_API_POLL_SECONDS": (
        "10",
        "How often the prediction API checks whether `champion` moved, to load and swap in the new version (the fallback when it is not told: `MLOPS_API_URL`).",
    ),
    "MLOPS_API_URL": (
        "none (`make run`: its own API)",
        "The prediction API (space-separated for several), told at once (`POST /refresh`) when the pipeline or `mlops model` moves `champion`, so it need not wait for its poll.",
    ),
    "MLOPS_API_MAX_BATCH": ("1000", "Most instances one `/predict` request may carry (413 above)."),
    "MLOPS_API_MAX_BODY_BYTES": (
        "1048576",
        "Largest request body the prediction API reads, however it is sent (413 above; reading stops at the limit).",
    ),
    "MLOPS_API_BODY_TIMEOUT": (
        "10",
        "Seconds the prediction API waits for each part of a request body (408 after).",
    ),
    "MLOPS_API_MAX_CONNECTIONS": (
        "64",
        "Connections and requests the prediction API serves at once; beyond it answers 503 at once.",
    ),
    "MLOPS_ACCURACY_FLOOR": (
        "0.9",
        "Benchmark accuracy below which a candidate fails its blocking check and is not registered.",
    ),
    "MLOPS_MIN_VALID_SHARE": (
        "0.5",
        "Share of a contribution's rows that must be clean for it to be accepted.",
    ),
    "MLOPS_MIN_QUALITY": ("50", "Quality score (0-100) a contribution needs to be accepted."),
    "MLOPS_MIN_ROWS": ("1", "Clean rows a contribution needs to be accepted."),
    "MLOPS_MAX_DECOMPRESSED_BYTES": (
        "20000000000",
        "Most bytes one contribution may expand to (gzip or zip); counted while it streams, and a file past it is rejected unread as `too_large_when_decompressed`.",
    ),
    "MLOPS_MAX_COMPRESSION_RATIO": (
        "250",
        "Most times a compressed contribution may expand (a zip or gzip bomb expands thousands of times); rejected like the above.",
    ),
    "MLOPS_INTAKE_TIMEOUT": (
        "3600",
        "Seconds one intake may take before it is stopped with `INTAKE_TIMEOUT`.",
    ),
    "MLOPS_KEEP_OUTLIERS": (
        "true",
        "Keep rows flagged as outliers against the reference (`false` rejects them).",
    ),
    "MLOPS_MIN_CLASS_SHARE": (
        "0.15",
        "Smallest share of the training set any class may have (a blocking check).",
    ),
    "MLOPS_MIN_TRAINING_ROWS": ("30", "Fewest rows the training set may have (a blocking check)."),
    "MLOPS_SEED": ("42", "Seed for the benchmark split, shuffling and estimators."),
    "MLOPS_BENCHMARK_FRACTION": (
        "0.3",
        "Share of iris held out, stratified, as the fixed benchmark.",
    ),
    "MLOPS_SENSOR_INTERVAL": (
        "5",
        "Seconds between ticks of the landing-zone, retrain and automation sensors (Dagster's daemon looks at sensors every 5 s at most).",
    ),
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": (
        "2",
        "MLflow's own retry count for HTTP calls; kept low so a dead server fails fast.",
    ),
    "MLFLOW_HTTP_REQUEST_TIMEOUT": ("10", "Seconds before one MLflow HTTP call times out."),
}

# Defaults applied to the process environment before MLflow or Great Expectations is used:
# bounded retries against a dead tracking server, and no telemetry (only 127.0.0.1 is reachable
# in CI, and a pipeline should not phone home).
PROCESS_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # Progress bars are noise in logs and command output.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DAGSTER_DISABLE_TELEMETRY": "true",
}

PROMOTION_METRICS = (
    "log_loss",
    "brier",
    "accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "roc_auc_ovr",
)


@dataclass(frozen=True)
class Settings:
    """Every setting of a deployment; defaults are in ``SETTINGS_DOC`` and applied by
    :meth:`from_env`."""

    home: Path
    tracking_uri: str
    mlflow_artifacts: str | None
    mlflow_ui_url: str | None
    landing_uri: str
    s3_endpoint_url: str | None
    storage_uri: str
    task_file: Path
    task: TaskSchema
    iris_csv: Path
    model_name: str
    experiment: str
    primary_metric: str
    min_improvement: float
    significance: float
    min_benchmark_rows: int
    valuation_exact_max: int
    valuation_budget_seconds: float
    valuation_max_permutations: int
    valuation_max_rows: int
    exclude_harmful: bool
    accuracy_floor: float
    min_valid_share: float
    min_quality: float
    min_rows: int
    keep_outliers: bool
    min_class_share: float
    min_training_rows: int
    seed: int
    benchmark_fraction: float
    sensor_interval: int
    baseline_source: str
    trusted_model_dir: Path | None
    baseline_sha256: str | None
    baseline_validators: tuple[str, ...]
    registry_retries: int
    registry_retry_seconds: float
    webhook_url: str | None
    webhook_secret: str | None
    webhook_max_age: float
    api_key: str | None
    api_urls: tuple[str, ...]
    api_poll_seconds: float
    api_max_batch: int
    api_max_body_bytes: int
    max_decompressed_bytes: int
    max_compression_ratio: float
    intake_timeout: float
    api_body_timeout: float
    api_max_connections: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: the process environment after loading ``.env``)."""
        if env is None:
            load_dotenv_once()
            env = os.environ  # type: ignore[assignment]

        def get(name: str, default: str | None = None) -> str:
            """The variable's value, else ``default``, else its documented default: each
            literal default is written once, in ``SETTINGS_DOC``."""
            value = env.get(name, "").strip()
            return value or (SETTINGS_DOC[name][0] if default is None else default)

        home = Path(get("MLOPS_HOME")).expanduser().resolve()
        tracking_uri = get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
        tracking_uri, credentials = split_credentials(tracking_uri)
        if credentials and env is os.environ:
            move_credentials_to_mlflow(tracking_uri, *credentials)
        is_server = tracking_uri.startswith(("http://", "https://"))
        task_file = Path(get("MLOPS_TASK", str(REPO_ROOT / "tasks" / "iris.toml"))).expanduser()
        task = _load_task(task_file)
        model_name = get("MLOPS_MODEL_NAME", f"{task.name}-classifier")
        settings = cls(
            home=home,
            tracking_uri=tracking_uri,
            # A server keeps artifacts where it was told to (--artifacts-destination), served
            # through it; a local path here would scatter them over the clients' disks.
            mlflow_artifacts=get(
                "MLOPS_MLFLOW_ARTIFACTS", "" if is_server else str(home / "mlflow" / "artifacts")
            )
            or None,
            # Links go into metadata and logs: never with credentials.
            mlflow_ui_url=split_credentials(
                get("MLOPS_MLFLOW_UI_URL", tracking_uri if is_server else "")
            )[0]
            or None,
            landing_uri=get("MLOPS_LANDING_URI", str(home / "landing")),
            s3_endpoint_url=get("MLOPS_S3_ENDPOINT_URL", "") or None,
            storage_uri=get("MLOPS_STORAGE_URI", str(home / "storage")),
            task_file=task_file.resolve(),
            task=task,
            iris_csv=Path(get("MLOPS_IRIS_CSV", task.reference)),
            model_name=model_name,
            experiment=get("MLOPS_EXPERIMENT", f"{task.name}-continuous-training"),
            # The task file's metric, when it names one, before the product's default.
            primary_metric=get("MLOPS_PRIMARY_METRIC", task.primary_metric or None),
            min_improvement=_number(get, "MLOPS_MIN_IMPROVEMENT", float),
            significance=_number(get, "MLOPS_SIGNIFICANCE", float),
            min_benchmark_rows=_number(get, "MLOPS_MIN_BENCHMARK_ROWS", int),
            valuation_exact_max=_number(get, "MLOPS_VALUATION_EXACT_MAX", int),
            valuation_budget_seconds=_number(get, "MLOPS_VALUATION_BUDGET_SECONDS", float),
            valuation_max_permutations=_number(get, "MLOPS_VALUATION_MAX_PERMUTATIONS", int),
            valuation_max_rows=_number(get, "MLOPS_VALUATION_MAX_ROWS", int),
            exclude_harmful=_flag(get, "MLOPS_EXCLUDE_HARMFUL"),
            accuracy_floor=_number(get, "MLOPS_ACCURACY_FLOOR", float),
            min_valid_share=_number(get, "MLOPS_MIN_VALID_SHARE", float),
            min_quality=_number(get, "MLOPS_MIN_QUALITY", float),
            min_rows=_number(get, "MLOPS_MIN_ROWS", int),
            keep_outliers=_flag(get, "MLOPS_KEEP_OUTLIERS"),
            min_class_share=_number(get, "MLOPS_MIN_CLASS_SHARE", float),
            min_training_rows=_number(get, "MLOPS_MIN_TRAINING_ROWS", int),
            seed=_number(get, "MLOPS_SEED", int),
            benchmark_fraction=_number(get, "MLOPS_BENCHMARK_FRACTION", float),
            sensor_interval=_number(get, "MLOPS_SENSOR_INTERVAL", int),
            baseline_source=get("MLOPS_BASELINE_SOURCE", f"models:/{model_name}@champion"),
            trusted_model_dir=Path(trusted).expanduser()
            if (trusted := get("MLOPS_TRUSTED_MODEL_DIR", ""))
            else None,
            baseline_sha256=get("MLOPS_BASELINE_SHA256", "") or None,
            baseline_validators=tuple(
                v.strip() for v in get("MLOPS_BASELINE_VALIDATORS", "").split(",") if v.strip()
            ),
            registry_retries=_number(get, "MLOPS_REGISTRY_RETRIES", int),
            registry_retry_seconds=_number(get, "MLOPS_REGISTRY_RETRY_SECONDS", float),
            webhook_url=get("MLOPS_WEBHOOK_URL", "") or None,
            webhook_secret=get("MLOPS_WEBHOOK_SECRET", "") or None,
            webhook_max_age=_number(get, "MLOPS_WEBHOOK_MAX_AGE", float),
            api_key=get("MLOPS_API_KEY", "") or None,
            api_urls=tuple(get("MLOPS_API_URL", "").split()),
            api_poll_seconds=_number(get, "MLOPS_API_POLL_SECONDS", float),
            api_max_batch=_number(get, "MLOPS_API_MAX_BATCH", int),
            api_max_body_bytes=_number(get, "MLOPS_API_MAX_BODY_BYTES", int),
            max_decompressed_bytes=_number(get, "MLOPS_MAX_DECOMPRESSED_BYTES", int),
            max_compression_ratio=_number(get, "MLOPS_MAX_COMPRESSION_RATIO", float),
            intake_timeout=_number(get, "MLOPS_INTAKE_TIMEOUT", float),
            api_body_timeout=_number(get, "MLOPS_API_BODY_TIMEOUT", float),
            api_max_connections=_number(get, "MLOPS_API_MAX_CONNECTIONS", int),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.task.primary_metric and self.task.primary_metric not in PROMOTION_METRICS:
            raise ConfigurationError(
                f"{self.task_file}: task.primary_metric={self.task.primary_metric!r} is not a "
                "benchmark metric",
                hint=f"use one of {', '.join(PROMOTION_METRICS)}",
            )
        if self.primary_metric not in PROMOTION_METRICS:
            raise ConfigurationError(
                f"MLOPS_PRIMARY_METRIC={self.primary_metric!r} is not a benchmark metric",
                hint=f"use one of {', '.join(PROMOTION_METRICS)}",
            )
        for name, value in (
            ("MLOPS_ACCURACY_FLOOR", self.accuracy_floor),
            ("MLOPS_MIN_VALID_SHARE", self.min_valid_share),
            ("MLOPS_SIGNIFICANCE", self.significance),
        ):
            if not 0.0 <= value <= 1.0:
                raise ConfigurationError(
                    f"{name}={value} is outside [0, 1]", hint="use a share such as 0.9"
                )
        if not 0.05 <= self.benchmark_fraction <= 0.5:
            raise ConfigurationError(
                f"MLOPS_BENCHMARK_FRACTION={self.benchmark_fraction} is outside [0.05, 0.5]",
                hint="the benchmark needs enough rows per class and must leave most rows to train on",
            )
        if self.webhook_url and not self.webhook_secret:
            raise ConfigurationError(
                "MLOPS_WEBHOOK_URL is set but MLOPS_WEBHOOK_SECRET is not",
                hint="make one with `mlops webhook new-secret` and give the receiver the same: "
                "it checks every event's signature with it",
            )
        if self.webhook_secret:
            from mlops_assets.core.registry.webhooks import parse_secrets

            parse_secrets(self.webhook_secret)
        if self.baseline_sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", self.baseline_sha256):
            raise ConfigurationError(
                f"MLOPS_BASELINE_SHA256={self.baseline_sha256!r} is not a sha256",
                hint="use the 64 hex digits printed by `sha256sum FILE`",
            )
        if (
            min(self.valuation_exact_max, self.valuation_max_permutations - 1) < 0
            or min(self.valuation_budget_seconds, self.valuation_max_rows) <= 0
        ):
            raise ConfigurationError(
                "MLOPS_VALUATION_EXACT_MAX must be at least 0, MLOPS_VALUATION_MAX_PERMUTATIONS "
                "at least 1, MLOPS_VALUATION_BUDGET_SECONDS and MLOPS_VALUATION_MAX_ROWS above 0",
                hint="see the README's settings table for the defaults",
            )
        if self.registry_retries < 1 or self.registry_retry_seconds <= 0:
            raise ConfigurationError(
                "MLOPS_REGISTRY_RETRIES must be at least 1 and MLOPS_REGISTRY_RETRY_SECONDS "
                "above 0",
                hint="use 1 to turn retries off",
            )
        api_limits = (
            self.api_poll_seconds,
            self.api_max_batch,
            self.api_max_body_bytes,
            self.api_body_timeout,
            self.api_max_connections,
        )
        if min(api_limits) <= 0:
            raise ConfigurationError(
                "MLOPS_API_POLL_SECONDS, MLOPS_API_MAX_BATCH, MLOPS_API_MAX_BODY_BYTES, "
                "MLOPS_API_BODY_TIMEOUT and MLOPS_API_MAX_CONNECTIONS must be positive",
                hint="e.g. 10, 1000, 1048576, 10 and 64",
            )
        if min(self.max_decompressed_bytes, self.max_compression_ratio, self.intake_timeout) <= 0:
            raise ConfigurationError(
                "MLOPS_MAX_DECOMPRESSED_BYTES, MLOPS_MAX_COMPRESSION_RATIO and "
                "MLOPS_INTAKE_TIMEOUT must be positive",
                hint="e.g. 20000000000, 250 and 3600",
            )
        if self.sensor_interval < 1:
            raise ConfigurationError(
                "MLOPS_SENSOR_INTERVAL must be at least 1 second", hint="use e.g. 15"
            )

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def split_credentials(uri: str) -> tuple[str, tuple[str, str] | None]:
    """``https://user:secret@host/path`` -> (``https://host/path``, (user, secret))."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if not parts.scheme.startswith("http") or "@" not in parts.netloc:
        return uri, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def move_credentials_to_mlflow(clean_uri: str, user: str, password: str) -> None:
    """Give MLflow the URI's credentials through its own variables (unless set already) and
    the URI without them: MLflow then authenticates, and prints and raises only clean URIs."""
    os.environ["MLFLOW_TRACKING_URI"] = clean_uri
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", user)
    if password:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", password)


def _number(get, name: str, kind: type) -> float | int:
    raw = get(name)
    try:
        return kind(raw)
    except ValueError:
        raise ConfigurationError(
            f"{name}={raw!r} is not a valid {kind.__name__}",
            hint=f"set it to a number such as {SETTINGS_DOC[name][0]}",
        ) from None


@functools.cache
def current_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings.from_env()


_dotenv_loaded = False


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


def _flag(get, name: str) -> bool:
    raw = get(name).strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(
        f"{name}={raw!r} is neither true nor false", hint="set it to true or false"
    )


def _load_task(path: Path) -> TaskSchema:
    from mlops_assets.task import TaskFileError, load_task

    try:
        return load_task(path)
    except TaskFileError as exc:
        raise ConfigurationError(
            f"MLOPS_TASK: {exc}", hint="`mlops task check FILE` explains a task file"
        ) from None
