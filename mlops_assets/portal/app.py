"""The contributors' door as one FastAPI application: the upload API's router and the portal's
pages, over one :class:`~mlops_assets.core.accounts.portal.Portal`."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from mlops_assets.core.accounts.limits import RateLimit
from mlops_assets.core.accounts.portal import Portal
from mlops_assets.core.accounts.uploads import PortalConfig
from mlops_assets.core.accounts.webhooks import ContributorNotifier
from mlops_assets.errors import (
    AccountDisabledError,
    AccountInvalidError,
    AuthenticationError,
    ConflictError,
    MlopsError,
    NotFoundError,
    RateLimitedError,
    StorageUnavailableError,
    UploadRefusedError,
    UploadTooLargeError,
)
from mlops_assets.portal import api, pages
from mlops_assets.settings import Settings

log = logging.getLogger("mlops_assets.portal")
DOCS_PAGES = ("/docs", "/redoc")
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)
# Each error of the door, the HTTP status it is answered with.
STATUSES: dict[type[MlopsError], int] = {
    AuthenticationError: 401,
    AccountDisabledError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    UploadTooLargeError: 413,
    UploadRefusedError: 422,
    AccountInvalidError: 422,
    RateLimitedError: 429,
    StorageUnavailableError: 503,
}


def portal_from_settings(settings: Settings) -> Portal:
    """The use cases over the deployment's catalog database, landing zone, dataset store,
    pre-check and registry."""
    from mlops_assets.core.accounts.checks import BackgroundChecks
    from mlops_assets.core.accounts.store import AccountStore
    from mlops_assets.core.accounts.webhooks import WebhookStore
    from mlops_assets.core.catalog.sync import open_catalog
    from mlops_assets.core.data.precheck import Prechecker
    from mlops_assets.core.registry.reader import model_versions
    from mlops_assets.core.storage.places import open_landing, open_store

    store = open_store(settings.storage_uri, settings.s3_endpoint_url)
    prechecker = Prechecker.from_settings(settings)
    cached: dict[str, Any] = {"at": 0.0, "versions": []}

    def versions() -> list[tuple[str, dict[str, str], float | None]]:
        # The registry is read at most every 5 s: a page of contributions and its detail
        # pages need the same few versions.
        if time.monotonic() - cached["at"] > 5.0:
            found = model_versions(settings.tracking_uri, settings.model_name)
            cached["versions"] = [(v.version, v.tags, v.created_at) for v in found]
            cached["at"] = time.monotonic()
        return cached["versions"]

    return Portal(
        accounts=AccountStore(settings.catalog_url),
        catalog=lambda: open_catalog(settings.catalog_url, settings.task, store),
        landing=open_landing(settings.landing_uri, settings.s3_endpoint_url),
        store=store,
        check=prechecker.check,
        versions=versions,
        config=PortalConfig(
            settings.portal_licenses,
            settings.portal_max_upload_bytes,
            settings.portal_check_inline_bytes,
        ),
        hooks=WebhookStore(settings.catalog_url),
        allow_private=settings.webhook_allow_private,
        checks=BackgroundChecks(settings.portal_check_workers),
        warm_up=prechecker.split,
    )


def notifier_for(settings: Settings, portal: Portal) -> ContributorNotifier:
    """What tells accounts' webhooks about their contributions, through outboxes under
    ``$MLOPS_HOME/webhooks/accounts/<account>/``."""
    from mlops_assets.core.registry.webhooks import DeliveryPolicy

    return ContributorNotifier(
        portal.hooks,  # type: ignore[arg-type]
        portal.accounts,
        portal.catalog,
        portal.timeline_of,
        settings.home / "webhooks" / "accounts",
        allow_private=settings.webhook_allow_private,
        policy=DeliveryPolicy(max_age=settings.webhook_max_age),
    )


class NotifierThread:
    """Runs the notifier every ``seconds`` in the background of the portal's process; a
    failing tick is logged and the next one tries again."""

    def __init__(self, notifier: ContributorNotifier, seconds: float) -> None:
        self.notifier, self.seconds = notifier, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                counts = self.notifier.tick()
                if any(counts.values()):
                    log.info("contributors' webhooks: %s", counts)
            except Exception:
                log.exception("contributors' webhooks: the tick failed; trying again later")


def _warm_up(warm_up: Callable[[], object]) -> None:
    """Done before the first upload needs it; when it fails, that upload does it (and says
    why)."""
    try:
        warm_up()
    except Exception:
        log.warning("warming the pre-check up failed; the first upload will", exc_info=True)


def _document_licenses(app: FastAPI, licenses: tuple[str, ...]) -> None:
    """The upload's ``license`` parameter, in the OpenAPI document, as the list this
    deployment offers (the router is the same for every deployment)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for item in document["paths"].values():
                for operation in item.values():
                    for parameter in operation.get("parameters", []):
                        if parameter["name"] == api.LICENSE_PARAMETER:
                            parameter["schema"] = {"type": "string", "enum": list(licenses)}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings, portal: Portal | None = None) -> FastAPI:
    """The application ``mlops portal`` serves: the upload API under ``/api/v1/`` and the
    portal's pages beside it."""
    portal = portal or portal_from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if portal.warm_up is not None:
            threading.Thread(target=_warm_up, args=(portal.warm_up,), daemon=True).start()
        thread = None
        if settings.portal_notify_seconds > 0 and portal.hooks is not None:
            thread = NotifierThread(notifier_for(settings, portal), settings.portal_notify_seconds)
            thread.start()
        yield
        if thread is not None:
            thread.stop()
        portal.uploads.checks.close()

    app = FastAPIOffline(
        lifespan=lifespan,
        title="mlops_assets contributors' API",
        summary="Upload contributions, follow them, withdraw them.",
        version="1",
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.portal = portal
    app.state.uploads = RateLimit(settings.portal_uploads_per_hour, 3600.0, what="uploads")
    app.state.auth_failures = RateLimit(
        settings.portal_auth_failures_per_minute, 60.0, what="failed sign-ins"
    )
    scratch = settings.home / "uploads"
    scratch.mkdir(parents=True, exist_ok=True)
    # Spools a killed portal left (one portal process per home): their files had landed or
    # were never answered, so nothing needs them.
    for leftover in scratch.glob("mlops-upload-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    app.state.scratch = scratch
    app.include_router(api.router)

    @app.get("/health", summary="Whether the portal is up", tags=["service"])
    def health() -> dict[str, str]:
        """For container health checks: answered once the app serves requests."""
        return {"status": "ok"}

    _document_licenses(app, settings.portal_licenses)
    # The portal's pages, their static files, sessions and security headers.
    pages.install(app, settings, STATUSES)

    @app.middleware("http")
    async def docs_stay_here(request: Request, call_next: Any) -> Any:
        """The docs pages load nothing from elsewhere (no CDN)."""
        response = await call_next(request)
        if request.url.path in DOCS_PAGES:
            response.headers["Content-Security-Policy"] = DOCS_POLICY
        return response

    @app.middleware("http")
    async def allow_every_method(request: Request, call_next: Any) -> Any:
        """A 405 names every method of the path (Starlette's names only the first route's)."""
        response = await call_next(request)
        if response.status_code == 405:
            methods = {
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.path_regex.match(request.url.path)
                for method in route.methods
            }
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response

    @app.exception_handler(MlopsError)
    async def known(_: Request, exc: MlopsError) -> JSONResponse:
        status = next((s for kind, s in STATUSES.items() if isinstance(exc, kind)), 503)
        headers = {}
        if isinstance(exc, AuthenticationError):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(int(exc.retry_after + 0.999))
        return JSONResponse(
            {"detail": exc.message, "hint": exc.hint or None}, status_code=status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:5]
        )
        return JSONResponse({"detail": problems or "invalid request"}, status_code=422)

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    return app
