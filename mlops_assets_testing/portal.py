"""The contributors' door on temporary state, for tests and benchmarks: a deployment's home
with the reference data stored, the pipeline's intake of a landed upload (what
`contributed_data` does, without Dagster), and the app served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets.core.data.reference_data import benchmark_split, load_reference_data
from mlops_assets.settings import Settings
from mlops_assets_testing.processes import free_port

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlops_assets.core.catalog.catalog import ContributionCatalog
    from mlops_assets.core.intake.report import ContributionReport


def portal_settings(home: Path, **env: str) -> Settings:
    """Settings of an embedded deployment at ``home`` whose store holds the reference parts,
    as the reference asset writes them (the catalog's import reads them)."""
    settings = Settings.from_env({"MLOPS_HOME": str(home), **env})
    split = benchmark_split(
        load_reference_data(settings.reference, settings.task),
        settings.task,
        fraction=settings.benchmark_fraction,
        seed=settings.seed,
    )
    reference = Path(settings.storage_uri) / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    split.train.to_parquet(reference / "train.parquet")
    split.benchmark.to_parquet(reference / "benchmark.parquet")
    return settings


def take_in(
    settings: Settings, catalog: ContributionCatalog, landing_path: str
) -> ContributionReport:
    """The pipeline's intake of the landed file at ``landing_path``, as `contributed_data`
    runs it (its sidecar read, its bytes kept, its outcome in the catalog)."""
    import pandas as pd

    from mlops_assets.core.data.precheck import Prechecker
    from mlops_assets.core.intake.landing import SIDECAR_SUFFIX, Sidecar, contribution_key
    from mlops_assets.core.intake.processing import process_contribution

    landing, store = Path(settings.landing_uri), Path(settings.storage_uri)
    sidecar_path = landing / (landing_path + SIDECAR_SUFFIX)
    sidecar = Sidecar.parse(sidecar_path.read_text()) if sidecar_path.exists() else None
    check = Prechecker.from_settings(settings)
    return process_contribution(
        landing / landing_path,
        settings.task,
        reference=pd.read_parquet(store / "reference" / "train.parquet"),
        benchmark=pd.read_parquet(store / "reference" / "benchmark.parquet"),
        contributions_root=store / "contributions",
        contribution_id=contribution_key(landing_path),
        contributor=landing_path.split("/")[0],
        policy=check.policy,
        limits=check.limits,
        landing_path=landing_path,
        records=catalog,
        landed_at=time.time(),
        snapshot_root=store / "originals",
        sidecar=sidecar,
    )


class Door:
    """The contributors' door over a deployment's home (the app under Starlette's
    TestClient, the portal's use cases), and the tokens of its accounts."""

    def __init__(
        self, home: Path, versions: list[tuple[str, dict[str, str], float | None]], **env: str
    ) -> None:
        """``versions`` stands for the registry (each version's number, tags, creation time),
        as a test sets it; the rest is real."""
        from fastapi.testclient import TestClient

        from mlops_assets.portal.app import create_app, portal_from_settings

        self.settings = portal_settings(home, **env)
        self.portal = portal_from_settings(self.settings)
        self.portal._versions = lambda: versions
        self.client = TestClient(create_app(self.settings, self.portal))
        self.tokens: dict[str, str] = {}

    def account(self, name: str, display_name: str = "") -> str:
        _, token = self.portal.accounts.add(name, display_name or name.title())
        self.tokens[name] = token
        return token

    def call(self, method: str, path: str, who: str | None, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(who, who)}"
        response = self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)
        return response.status_code, response.json()

    def upload(self, who: str, body, name: str, key: str | None = None, **params):
        query = {"filename": name, "license": "CC0-1.0", "consent": "true", **params}
        headers = {"Idempotency-Key": key} if key else {}
        return self.call("POST", "/uploads", who, params=query, content=body, headers=headers)

    def take_in(self, landing_path: str):
        return take_in(self.settings, self.portal.catalog(), landing_path)


@contextlib.contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free port of 127.0.0.1; its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the portal did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def valued_version(
    number: str, cid: str, value: float, interval: tuple[float, float], created_at: float
) -> tuple[str, dict[str, str], float]:
    """A registry version as the portal reads it (number, tags, creation time): trained on
    ``cid`` alone, which it valued at ``value`` with ``interval``."""
    import json

    valued = {
        "contribution_id": cid,
        "value": value,
        "value_interval": list(interval),
        "loo_delta": value,
        "reason": "improves log loss",
        "status": "included",
    }
    tags = {"contributions": json.dumps([cid]), "contribution_values": json.dumps([valued])}
    return number, tags, created_at
