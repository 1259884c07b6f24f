"""Every setting of a deployment, each declared once: its variable, type, default and meaning.

A field of :class:`Settings` is declared with :func:`setting`; from that one declaration come
reading the environment (:meth:`Settings.from_env`), the resources' configuration (their fields
are named after these: ``mlops_assets.resources``) and the README's settings table
(``python -m mlops_assets.settings --markdown``; a test fails when the README's is stale).

Reading settings has no side effect: loading ``.env`` into the process, MLflow's process
defaults and moving credentials out of the tracking URI are :mod:`mlops_assets.process`'s.

Long on purpose: it is the table, about 50 declarations of five to seven lines each,
which read best together, in the README's order; the code around them is under 300 lines.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys
import typing
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_assets.errors import ConfigurationError
from mlops_assets.task import TaskSchema

REPO_ROOT = Path(__file__).resolve().parent.parent

PROMOTION_METRICS = (
    "log_loss",
    "brier",
    "accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "roc_auc_ovr",
)

# A default is the text a variable would hold, or a function of the settings read before it.
Default = str | Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default, meaning and (for renamed ones) old name."""

    name: str
    default: Default
    doc: str
    shown: str  # the default as the README shows it
    parse: Callable[[str], Any] | None = None  # else by the field's type
    old_name: str | None = None  # still read, with a warning, for one release

    def markdown_row(self, kind: str) -> str:
        return f"| `{self.name}` | {kind} | {self.shown} | {self.doc} |"


def setting(
    name: str,
    default: Default,
    doc: str,
    *,
    shown: str | None = None,
    parse: Callable[[str], Any] | None = None,
    old_name: str | None = None,
) -> Any:
    """A field of :class:`Settings` read from the variable ``name``."""
    if shown is None:
        shown = default if isinstance(default, str) and default else "none"
    return dataclasses.field(
        metadata={"setting": Setting(name, default, doc, shown, parse, old_name)}
    )


def derived(compute: Callable[[Mapping[str, Any]], Any]) -> Any:
    """A field of :class:`Settings` computed from the settings read before it."""
    return dataclasses.field(metadata={"derived": compute}, repr=False, compare=False)


def _resolved_path(raw: str) -> Path:
    return Path(raw).expanduser().resolve()


def _without_credentials(raw: str) -> str:
    # Links and URIs go into metadata and logs: never with credentials.
    return split_credentials(raw)[0]


def _is_server(read: Mapping[str, Any]) -> bool:
    return read["tracking_uri"].startswith(("http://", "https://"))


def _default_artifacts(read: Mapping[str, Any]) -> str:
    # A server keeps artifacts where it was told to (--artifacts-destination), served through
    # it; a local path here would scatter them over the clients' disks.
    return "" if _is_server(read) else str(read["home"] / "mlflow" / "artifacts")


def _comma_separated(raw: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in raw.split(",") if v.strip())


def _secure_cookie(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("auto", "true", "false"):
        raise ValueError(f"{raw!r} is not one of auto, true, false")
    return value


def _space_separated(raw: str) -> tuple[str, ...]:
    return tuple(raw.split())


# MLflow's own variables the product gives a default to (``mlops_assets.process`` sets them),
# shown in the README's table: only
# 127.0.0.1 is reachable in CI, and a dead tracking server should fail fast.
MLFLOW_DEFAULTS = (
    Setting(
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "2",
        "MLflow's own retry count for HTTP calls; kept low so a dead server fails fast.",
        shown="2",
    ),
    Setting(
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "10",
        "Seconds before one MLflow HTTP call times out.",
        shown="10",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Every setting of a deployment, in the README's order: build one with :meth:`from_env`."""

    home: Path = setting(
        "MLOPS_HOME",
        "./var",
        "Directory holding all embedded state: Dagster home, MLflow, landing zone, Parquet storage.",
        parse=_resolved_path,
    )
    tracking_uri: str = setting(
        "MLFLOW_TRACKING_URI",
        lambda s: f"sqlite:///{s['home'] / 'mlflow' / 'mlflow.db'}",
        "MLflow tracking and registry store (a SQLite file or an `http(s)://` MLflow server). Credentials in it (`https://user:password@host`) are moved to MLflow's `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD` when a process starts, so no URI shown or logged carries them.",
        shown="sqlite:///$MLOPS_HOME/mlflow/mlflow.db",
        parse=_without_credentials,
    )
    mlflow_artifacts: str | None = setting(
        "MLOPS_MLFLOW_ARTIFACTS",
        _default_artifacts,
        "Artifact location of the experiment when this system creates it.",
        shown="$MLOPS_HOME/mlflow/artifacts with a SQLite store; the server's own with an MLflow server",
    )
    mlflow_ui_url: str | None = setting(
        "MLOPS_MLFLOW_UI_URL",
        lambda s: s["tracking_uri"] if _is_server(s) else "",
        "Base URL of an MLflow UI, used for links in Dagster metadata.",
        shown="the tracking URI when it is `http(s)://`, else none",
        parse=_without_credentials,
    )
    landing_uri: str = setting(
        "MLOPS_LANDING_URI",
        lambda s: str(s["home"] / "landing"),
        "Landing zone contributors drop files into: `<landing>/<contributor_id>/<file>`.",
        shown="$MLOPS_HOME/landing",
    )
    s3_endpoint_url: str | None = setting(
        "MLOPS_S3_ENDPOINT_URL",
        "",
        "S3 endpoint for an `s3://` landing zone or dataset store on MinIO or another S3-compatible server; credentials come from the standard `AWS_*` variables.",
        shown="none (AWS)",
    )
    storage_uri: str = setting(
        "MLOPS_STORAGE_URI",
        lambda s: str(s["home"] / "storage"),
        "Where datasets are written as Parquet (and contribution reports as JSON): a folder, or `s3://bucket/prefix`, which every run reads and writes itself (no shared disk needed).",
        shown="$MLOPS_HOME/storage",
    )
    catalog_url: str = setting(
        "MLOPS_CATALOG_URL",
        lambda s: f"sqlite:///{s['home'] / 'catalog.sqlite'}",
        "The contribution catalog's database (an SQLAlchemy URL): every contribution's state, report and accepted rows, indexed, so an intake, a retrain and `mlops contributions` read it instead of every report file. Production: the PostgreSQL database Dagster uses (`postgresql+psycopg2://user:password@host/db`); read by resources only as `dg.EnvVar`.",
        shown="sqlite:///$MLOPS_HOME/catalog.sqlite",
    )
    task_file: Path = setting(
        "MLOPS_TASK",
        str(REPO_ROOT / "tasks" / "iris.toml"),
        'The task file: what a row looks like (features, label, classes) and its reference data (README, "Task files"). A home (`MLOPS_HOME`) and a registered model hold one task: a home or model of another task is refused.',
        shown="tasks/iris.toml in the repository",
        parse=_resolved_path,
    )
    task: TaskSchema = derived(lambda s: _load_task(s["task_file"]))
    reference: str = setting(
        "MLOPS_REFERENCE",
        lambda s: s["task"].reference,
        "The reference data (a CSV or Parquet file, or `sklearn:<loader>`), overriding the task file's. For iris only, scikit-learn's copy is used when the file is missing or empty. Its old name, `MLOPS_IRIS_CSV`, is still read for one release, with a warning.",
        shown="the task's `reference`",
        old_name="MLOPS_IRIS_CSV",
    )
    model_name: str = setting(
        "MLOPS_MODEL_NAME",
        lambda s: f"{s['task'].name}-classifier",
        "Registered model name in the MLflow Model Registry (`iris-classifier` for the default task).",
        shown="`<task>-classifier`",
    )
    experiment: str = setting(
        "MLOPS_EXPERIMENT",
        lambda s: f"{s['task'].name}-continuous-training",
        "MLflow experiment that training runs are logged to.",
        shown="`<task>-continuous-training`",
    )
    baseline_source: str = setting(
        "MLOPS_BASELINE_SOURCE",
        lambda s: f"models:/{s['model_name']}@champion",
        "The model to beat: `models:/NAME@ALIAS`, `models:/NAME/VERSION`, or a local `.skops`, `.pkl`, `.pickle`, `.joblib` file or MLflow model directory (imported into the registry once).",
        shown="models:/$MLOPS_MODEL_NAME@champion",
    )
    trusted_model_dir: Path | None = setting(
        "MLOPS_TRUSTED_MODEL_DIR",
        "",
        "The only directory pickle/joblib models (and MLflow directories holding a pickle) are loaded from: unpickling runs code.",
        shown="none (pickle and joblib refused)",
    )
    baseline_sha256: str | None = setting(
        "MLOPS_BASELINE_SHA256",
        "",
        "When set, a local baseline file (or MLflow directory) must have this sha256, checked before anything is deserialized.",
        shown="none",
    )
    baseline_validators: tuple[str, ...] = setting(
        "MLOPS_BASELINE_VALIDATORS",
        "",
        "Comma-separated validation hooks `package.module:function`, each called with `(model, probe_rows, task)`; raising or returning False rejects the baseline.",
        shown="none",
        parse=_comma_separated,
    )
    registry_retries: int = setting(
        "MLOPS_REGISTRY_RETRIES",
        "6",
        "Attempts at a registry read (baseline lookup and download) when the server is unreachable or answers 5xx, with waits of 1, 2, 4, 8 s.",
    )
    registry_retry_seconds: float = setting(
        "MLOPS_REGISTRY_RETRY_SECONDS",
        "60",
        'Time after which registry reads stop being retried; "not found" and 401/403 are never retried.',
    )
    primary_metric: str = setting(
        "MLOPS_PRIMARY_METRIC",
        lambda s: s["task"].primary_metric or "log_loss",
        'Benchmark metric deciding promotion and valuing contributions (`log_loss`, `brier`, `accuracy`, `f1_macro`, `precision_macro`, `recall_macro`, `roc_auc_ovr`). Log loss separates real improvements from noise best on the iris benchmark (README, "How a contribution is valued").',
        shown="log_loss",
    )
    min_improvement: float = setting(
        "MLOPS_MIN_IMPROVEMENT",
        "0.0",
        "Minimum improvement of the primary metric over the champion to promote; the candidate must also be strictly better.",
    )
    significance: float = setting(
        "MLOPS_SIGNIFICANCE",
        "0.05",
        "A candidate must also be better than the champion at this level: the two-sided paired bootstrap over benchmark rows, whose interval (shown at `1 -` this level) excludes zero exactly when the test passes; 0 turns the test off (strictly better is enough).",
    )
    valuation_exact_max: int = setting(
        "MLOPS_VALUATION_EXACT_MAX",
        "8",
        "Up to this many new contributions in one retrain, their Shapley values are exact (2^n models trained); beyond, they are estimated from sampled permutations with a standard error.",
    )
    valuation_budget_seconds: float = setting(
        "MLOPS_VALUATION_BUDGET_SECONDS",
        "60",
        "Time a valuation may take: no coalition model is started past it (beyond the first two, the base and all new contributions together); sampling stops there, and what it cut short is played with fewer batches.",
    )
    valuation_max_players: int = setting(
        "MLOPS_VALUATION_MAX_PLAYERS",
        "24",
        "Most players in one retrain's game: beyond, new contributions are valued in this many batches (by contributor, then contribution id), each batch's value split among its members by rows.",
    )
    valuation_min_orders: int = setting(
        "MLOPS_VALUATION_MIN_ORDERS",
        "200",
        "Sampled orders the budget must afford (judged by the time of the first models): when fewer would fit, contributions are valued in fewer batches, so each value's standard error stays small next to it.",
    )
    valuation_max_permutations: int = setting(
        "MLOPS_VALUATION_MAX_PERMUTATIONS",
        "200",
        "Most permutations sampled for an estimated valuation.",
    )
    valuation_max_rows: int = setting(
        "MLOPS_VALUATION_MAX_ROWS",
        "50000",
        "Training rows each valuation model is trained on at most: a larger training set is valued on one seeded sample of this many rows.",
    )
    exclude_harmful: bool = setting(
        "MLOPS_EXCLUDE_HARMFUL",
        "true",
        "Leave a new contribution out of the candidate's training data when its value is negative beyond its 95 % interval; it is valued again in the next retrain.",
    )
    min_benchmark_rows: int = setting(
        "MLOPS_MIN_BENCHMARK_ROWS",
        "30",
        "Benchmark rows needed to decide a promotion at all; a smaller benchmark promotes nothing.",
    )
    webhook_url: str | None = setting(
        "MLOPS_WEBHOOK_URL",
        "",
        "Where `model_version.registered` / `model_version.promoted` events are POSTed as Standard Webhooks.",
        shown="none (off)",
    )
    webhook_secret: str | None = setting(
        "MLOPS_WEBHOOK_SECRET",
        "",
        "Standard Webhooks secret(s), `whsec_` + base64 (`mlops webhook new-secret` makes one), space-separated while rotating: every event carries a signature for each. Required when `MLOPS_WEBHOOK_URL` is set; reaches Dagster only as an `EnvVar`.",
        shown="none",
    )
    webhook_max_age: float = setting(
        "MLOPS_WEBHOOK_MAX_AGE",
        "86400",
        "Seconds an undelivered webhook event is retried (backoff from 10 s, capped at 10 min) before it moves to the outbox's `dead/`.",
    )
    api_key: str | None = setting(
        "MLOPS_API_KEY",
        "",
        "When set, `/predict` and `/model` need this value in an `X-API-Key` header (401 otherwise); `/health` and the docs stay open.",
        shown="none (open)",
    )
    api_poll_seconds: float = setting(
        "MLOPS_API_POLL_SECONDS",
        "10",
        "How often the prediction API checks whether `champion` moved, to load and swap in the new version (the fallback when it is not told: `MLOPS_API_URL`).",
    )
    api_urls: tuple[str, ...] = setting(
        "MLOPS_API_URL",
        "",
        "The prediction API (space-separated for several), told at once (`POST /refresh`) when the pipeline or `mlops model` moves `champion`, so it need not wait for its poll.",
        shown="none (`make run`: its own API)",
        parse=_space_separated,
    )
    api_max_batch: int = setting(
        "MLOPS_API_MAX_BATCH",
        "1000",
        "Most instances one `/predict` request may carry (413 above).",
    )
    api_max_body_bytes: int = setting(
        "MLOPS_API_MAX_BODY_BYTES",
        "1048576",
        "Largest request body the prediction API reads, however it is sent (413 above; reading stops at the limit).",
    )
    api_body_timeout: float = setting(
        "MLOPS_API_BODY_TIMEOUT",
        "10",
        "Seconds the prediction API waits for each part of a request body (408 after).",
    )
    api_max_connections: int = setting(
        "MLOPS_API_MAX_CONNECTIONS",
        "64",
        "Connections and requests the prediction API serves at once; beyond it answers 503 at once.",
    )
    portal_licenses: tuple[str, ...] = setting(
        "MLOPS_PORTAL_LICENSES",
        "CC0-1.0,CC-BY-4.0",
        "The licenses (SPDX ids, comma-separated) a contributor may give an upload under; the choice is recorded with its consent in the file's sidecar and its report.",
        parse=_comma_separated,
    )
    portal_max_upload_bytes: int = setting(
        "MLOPS_PORTAL_MAX_UPLOAD_BYTES",
        "1073741824",
        "Largest file the upload API takes (413 above; reading stops at the limit). A compressed upload is also held to `MLOPS_MAX_DECOMPRESSED_BYTES` by its pre-check.",
    )
    portal_check_inline_bytes: int = setting(
        "MLOPS_PORTAL_CHECK_INLINE_BYTES",
        "5242880",
        "Largest upload the upload API pre-checks while its request waits (201 with the verdict). A larger one is landed and answered at once (202 with a status URL, `GET /api/v1/uploads/{id}`), and checked in the background by `MLOPS_PORTAL_CHECK_WORKERS` threads.",
    )
    portal_check_workers: int = setting(
        "MLOPS_PORTAL_CHECK_WORKERS",
        "1",
        "Threads of the upload API's process that pre-check large uploads in the background (the rest wait their turn, in order).",
    )
    portal_uploads_per_hour: int = setting(
        "MLOPS_PORTAL_UPLOADS_PER_HOUR",
        "60",
        "Uploads one account may make in an hour (429 with `Retry-After` beyond).",
    )
    portal_auth_failures_per_minute: int = setting(
        "MLOPS_PORTAL_AUTH_FAILURES_PER_MINUTE",
        "10",
        "Failed sign-ins (unknown tokens) one client address may make in a minute before the upload API answers it 429 for the rest of the minute.",
    )
    portal_notify_seconds: float = setting(
        "MLOPS_PORTAL_NOTIFY_SECONDS",
        "10",
        "How often the upload API's process looks for what happened to the contributions of accounts with a webhook, and sends the events (`0`: never).",
    )
    portal_secure_cookie: str = setting(
        "MLOPS_PORTAL_SECURE_COOKIE",
        "auto",
        "When the portal's session cookie is marked `Secure` (sent over https only): `auto` when the request came over https (behind a proxy, as uvicorn's `--proxy-headers` reports it), `true` always, `false` never.",
        parse=_secure_cookie,
    )
    webhook_allow_private: bool = setting(
        "MLOPS_WEBHOOK_ALLOW_PRIVATE",
        "false",
        "Let contributors' webhook URLs lead to loopback, private and link-local addresses (refused by default: a contributor's URL is a request this server makes on their behalf).",
    )
    accuracy_floor: float = setting(
        "MLOPS_ACCURACY_FLOOR",
        "0.9",
        "Benchmark accuracy below which a candidate fails its blocking check and is not registered.",
    )
    min_valid_share: float = setting(
        "MLOPS_MIN_VALID_SHARE",
        "0.5",
        "Share of a contribution's rows that must be clean for it to be accepted.",
    )
    min_quality: float = setting(
        "MLOPS_MIN_QUALITY",
        "50",
        "Quality score (0-100) a contribution needs to be accepted.",
    )
    min_rows: int = setting(
        "MLOPS_MIN_ROWS",
        "1",
        "Clean rows a contribution needs to be accepted.",
    )
    max_decompressed_bytes: int = setting(
        "MLOPS_MAX_DECOMPRESSED_BYTES",
        "20000000000",
        "Most bytes one contribution may expand to (gzip or zip); counted while it streams, and a file past it is rejected unread as `too_large_when_decompressed`.",
    )
    max_compression_ratio: float = setting(
        "MLOPS_MAX_COMPRESSION_RATIO",
        "250",
        "Most times a compressed contribution may expand (a zip or gzip bomb expands thousands of times); rejected like the above.",
    )
    intake_timeout: float = setting(
        "MLOPS_INTAKE_TIMEOUT",
        "3600",
        "Seconds one intake may take before it is stopped with `INTAKE_TIMEOUT`.",
    )
    keep_outliers: bool = setting(
        "MLOPS_KEEP_OUTLIERS",
        "true",
        "Keep rows flagged as outliers against the reference (`false` rejects them).",
    )
    min_class_share: float = setting(
        "MLOPS_MIN_CLASS_SHARE",
        "0.15",
        "Smallest share of the training set any class may have (a blocking check).",
    )
    min_training_rows: int = setting(
        "MLOPS_MIN_TRAINING_ROWS",
        "30",
        "Fewest rows the training set may have (a blocking check).",
    )
    seed: int = setting(
        "MLOPS_SEED",
        "42",
        "Seed for the benchmark split, shuffling and estimators.",
    )
    benchmark_fraction: float = setting(
        "MLOPS_BENCHMARK_FRACTION",
        "0.3",
        "Share of iris held out, stratified, as the fixed benchmark.",
    )
    sensor_interval: int = setting(
        "MLOPS_SENSOR_INTERVAL",
        "5",
        "Seconds between ticks of the landing-zone, retrain and automation sensors (Dagster's daemon looks at sensors every 5 s at most).",
    )
    sensor_max_files_per_tick: int = setting(
        "MLOPS_SENSOR_MAX_FILES_PER_TICK",
        "500",
        "Most files the landing-zone sensor takes in one tick (new partitions and intake runs); a larger backlog is taken oldest first over the next ticks.",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env``; by default the process environment over a ``.env`` file in
        the working directory (real variables win). Nothing is written anywhere."""
        env = read_environment() if env is None else env
        hints = typing.get_type_hints(cls)
        read: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if "derived" in field.metadata:
                read[field.name] = field.metadata["derived"](read)
                continue
            spec: Setting = field.metadata["setting"]
            raw = _raw(env, spec)
            if not raw:
                raw = spec.default(read) if callable(spec.default) else spec.default
            read[field.name] = _parse(spec, hints[field.name], raw)
        settings = cls(**read)
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
            or min(self.valuation_max_players, self.valuation_min_orders) < 1
        ):
            raise ConfigurationError(
                "MLOPS_VALUATION_EXACT_MAX must be at least 0, MLOPS_VALUATION_MAX_PERMUTATIONS "
                "at least 1, MLOPS_VALUATION_BUDGET_SECONDS and MLOPS_VALUATION_MAX_ROWS above 0, "
                "MLOPS_VALUATION_MAX_PLAYERS and MLOPS_VALUATION_MIN_ORDERS at least 1",
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
        if self.portal_check_inline_bytes < 0 or not 1 <= self.portal_check_workers <= 8:
            raise ConfigurationError(
                "MLOPS_PORTAL_CHECK_INLINE_BYTES must be at least 0 and "
                "MLOPS_PORTAL_CHECK_WORKERS 1 to 8",
                hint="e.g. 5242880 and 1 (each worker checks one file at a time, on a core)",
            )
        if self.sensor_interval < 1:
            raise ConfigurationError(
                "MLOPS_SENSOR_INTERVAL must be at least 1 second", hint="use e.g. 15"
            )
        if self.sensor_max_files_per_tick < 1:
            raise ConfigurationError(
                "MLOPS_SENSOR_MAX_FILES_PER_TICK must be at least 1", hint="use e.g. 500"
            )

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def settings_of(cls: type = Settings) -> dict[str, Setting]:
    """Each field of ``cls`` read from a variable, with its declaration."""
    return {
        f.name: f.metadata["setting"] for f in dataclasses.fields(cls) if "setting" in f.metadata
    }


def variables() -> list[str]:
    """Every variable this product reads or sets for its processes, in the README's order."""
    return [s.name for s in settings_of().values()] + [s.name for s in MLFLOW_DEFAULTS]


def markdown_table() -> str:
    """The README's settings table, made from the declarations."""
    hints = typing.get_type_hints(Settings)
    rows = [spec.markdown_row(_kind(hints[name], spec)) for name, spec in settings_of().items()]
    rows += [spec.markdown_row(_kind(int, spec)) for spec in MLFLOW_DEFAULTS]
    return "\n".join(["| variable | type | default | meaning |", "|---|---|---|---|", *rows])


def read_environment() -> dict[str, str]:
    """The process environment over ``.env`` in the working directory (real variables win)."""
    from dotenv import dotenv_values

    dotenv = {k: v for k, v in dotenv_values(Path.cwd() / ".env").items() if v is not None}
    return {**dotenv, **os.environ}


@functools.cache
def current_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings.from_env()


def _raw(env: Mapping[str, str], spec: Setting) -> str:
    value = env.get(spec.name, "").strip()
    if spec.old_name and (old := env.get(spec.old_name, "").strip()):
        warnings.warn(
            f"{spec.old_name} is renamed {spec.name}"
            + (f" and is ignored: {spec.name} is set" if value else "")
            + f"; {spec.old_name} will not be read after the next release",
            FutureWarning,
            stacklevel=3,
        )
        return value or old
    return value


def _parse(spec: Setting, kind: Any, raw: str) -> Any:
    if spec.parse is not None:
        value = spec.parse(raw)
    elif kind is bool or kind == (bool | None):
        value = _flag(spec.name, raw)
    elif kind in (int, float):
        value = _number(spec, raw, kind)
    elif kind in (Path, Path | None):
        value = Path(raw).expanduser() if raw else None
    else:
        value = raw
    optional = type(None) in typing.get_args(kind)
    return value if value or not optional else None


def _kind(kind: Any, spec: Setting) -> str:
    """The type of a variable as the README's table says it."""
    base = next((k for k in typing.get_args(kind) if k is not type(None)), kind)
    if typing.get_origin(base) is tuple:
        return "list"
    return {int: "integer", float: "number", bool: "true/false", Path: "path"}.get(base, "text")


def _number(spec: Setting, raw: str, kind: type) -> float | int:
    try:
        return kind(raw)
    except ValueError:
        raise ConfigurationError(
            f"{spec.name}={raw!r} is not a valid {kind.__name__}",
            hint=f"set it to a number such as {spec.shown}",
        ) from None


def _flag(name: str, raw: str) -> bool:
    raw = raw.strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(
        f"{name}={raw!r} is neither true nor false", hint="set it to true or false"
    )


def split_credentials(uri: str) -> tuple[str, tuple[str, str] | None]:
    """``https://user:secret@host/path`` -> (``https://host/path``, (user, secret))."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if not parts.scheme.startswith("http") or "@" not in parts.netloc:
        return uri, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def _load_task(path: Path) -> TaskSchema:
    from mlops_assets.task import TaskFileError, load_task

    try:
        return load_task(path)
    except TaskFileError as exc:
        raise ConfigurationError(
            f"MLOPS_TASK: {exc}", hint="`mlops task check FILE` explains a task file"
        ) from None


TABLE_START = "<!-- settings table: made from mlops_assets/settings.py by `make settings-table` -->"
TABLE_END = "<!-- end of settings table -->"


def with_markdown_table(readme: str) -> str:
    """``readme`` with the text between its table markers made anew."""
    before, start, rest = readme.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not (start and end):
        raise ValueError(f"no {TABLE_START!r} ... {TABLE_END!r} in the README")
    return f"{before}{TABLE_START}\n{markdown_table()}\n{TABLE_END}{after}"


def main(argv: list[str] | None = None) -> int:
    """``python -m mlops_assets.settings --markdown``: print the settings table;
    ``--readme FILE``: write it into FILE between its markers."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--markdown"]:
        print(markdown_table())
    elif len(args) == 2 and args[0] == "--readme":
        readme = Path(args[1])
        readme.write_text(with_markdown_table(readme.read_text()))
    else:
        print("usage: python -m mlops_assets.settings --markdown | --readme FILE", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
