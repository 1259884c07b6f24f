"""The portal's pages: server-rendered HTML over the same use cases as the upload API
(:class:`~mlops_assets.core.accounts.portal.Portal`), usable without JavaScript (one static
script only adds drag-and-drop and a progress bar to the upload form). Sessions, forms and
rendering are in :mod:`mlops_assets.portal.web`; the value's chart in
:mod:`mlops_assets.portal.chart`.

Signing in takes a token once, in a form, and opens a server-side session: the cookie holds a
random id (HttpOnly, SameSite=Lax, Secure over https), never the token. Every form carries the
session's CSRF token (sign-in: a double-submitted one). Every contributor-supplied string
goes through Jinja2's autoescaping; nothing is marked safe. One account never sees another's
contribution: it is "not found", as one that does not exist.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from mlops_assets.core.accounts.limits import RateLimit
from mlops_assets.core.accounts.sessions import Session, Sessions
from mlops_assets.core.accounts.showcase import public_scoreboard, value_history
from mlops_assets.core.accounts.spool import Spool
from mlops_assets.core.accounts.store import Account
from mlops_assets.errors import (
    MlopsError,
    NotFoundError,
    UploadTooLargeError,
)
from mlops_assets.portal import signing_in
from mlops_assets.portal.chart import history_chart
from mlops_assets.portal.web import (
    HEADERS,
    HERE,
    PageError,
    PageSettings,
    SignInNeeded,
    checked_form,
    form_text,
    portal_of,
    refused,
    render,
    session_of,
    signed_in,
    size_in_words,
)
from mlops_assets.settings import Settings

log = logging.getLogger("mlops_assets.portal.pages")
PAGE_SIZE = 20
CHUNK = 1 << 20

router = APIRouter(include_in_schema=False)


def install(app: FastAPI, settings: Settings, statuses: dict[type[MlopsError], int]) -> None:
    """The pages, their static files, sessions and security headers on ``app`` (the
    upload API's application: its ``portal``, rate limits and scratch folder are shared;
    ``statuses``: the HTTP status of each refusal, as the API answers it)."""
    app.state.sessions = Sessions()
    app.state.statuses = statuses
    app.state.pages = PageSettings(
        settings.primary_metric, settings.portal_secure_cookie, settings.portal_licenses
    )
    app.include_router(signing_in.router)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith(("/static/", "/api/")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(SignInNeeded)
    async def sign_in_first(request: Request, _: SignInNeeded) -> Response:
        return RedirectResponse("/sign-in", status_code=303)

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        return render(
            request,
            "error.html",
            status=exc.status,
            title=exc.message,
            message=exc.message,
            hint=exc.hint,
        )


# ---- my contributions ---------------------------------------------------------------------


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/contributions" if session_of(request) else "/sign-in", 303)


@router.get("/contributions")
def contributions(request: Request, page: int = 1) -> Response:
    session, account = signed_in(request)
    page = max(1, min(page, 1_000_000))
    rows = portal_of(request).my_contributions(
        account, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    taken_in = sum(row["status"] != "pending" for row in rows)
    return render(
        request,
        "contributions.html",
        session=session,
        account=account,
        title="My contributions",
        rows=rows,
        page=page,
        has_next=taken_in >= PAGE_SIZE,
    )


@router.get("/contributions/{contribution_id}")
def contribution(request: Request, contribution_id: str) -> Response:
    session, account = signed_in(request)
    portal = portal_of(request)
    try:
        row = portal.contribution(account, contribution_id)
    except NotFoundError as exc:
        raise PageError(404, "No such contribution of yours", "see the list of yours") from exc
    try:
        report = portal.report(account, contribution_id)
    except NotFoundError:
        report = None
    # The registry's versions, as the Portal reads them (cached a few seconds).
    versions = portal.versions()
    history = value_history(versions, contribution_id, request.app.state.pages.metric)
    latest = max((v for v, _, _ in versions), key=int, default=None)
    return render(
        request,
        "contribution.html",
        session=session,
        account=account,
        title=row.get("landing_path") or contribution_id,
        row=row,
        report=report,
        history=history,
        chart=history_chart(history),
        preview_columns=_columns_with_values(report["quarantine_sample"] if report else []),
        metric=request.app.state.pages.metric,
        latest=latest,
        withdrawn=request.query_params.get("withdrawn") == "1",
        problem="",
    )


@router.post("/contributions/{contribution_id}/withdraw")
async def withdraw(request: Request, contribution_id: str) -> Response:
    session, account = signed_in(request)
    form = await checked_form(request, session, max_files=0, max_fields=3)
    if form.get("confirm") != "yes":
        raise PageError(
            422,
            "Nothing was withdrawn: tick the box that says you understand first",
            "go back and tick it",
        )
    try:
        await run_in_threadpool(portal_of(request).withdraw, account, contribution_id)
    except NotFoundError as exc:
        raise PageError(404, "No such contribution of yours", "see the list of yours") from exc
    except MlopsError as exc:
        raise refused(request, exc) from exc
    log.info("portal: withdrawal by %s of %s", account.name, contribution_id)
    return RedirectResponse(f"/contributions/{contribution_id}?withdrawn=1", 303)


# ---- uploading ----------------------------------------------------------------------------


@router.get("/upload")
def upload_form(request: Request) -> Response:
    session, account = signed_in(request)
    return _upload_page(request, session, account)


def _upload_page(
    request: Request, session: Session, account: Account, *, status: int = 200, problem: str = ""
) -> Response:
    portal = portal_of(request)
    return render(
        request,
        "upload.html",
        status=status,
        session=session,
        account=account,
        title="Upload a file",
        licenses=portal.config.licenses,
        max_bytes=portal.config.max_upload_bytes,
        problem=problem,
    )


@router.post("/upload")
async def upload(request: Request) -> Response:
    session, account = signed_in(request)
    portal = portal_of(request)
    limit = portal.config.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:  # the form's own fields
        return _upload_page(
            request,
            session,
            account,
            status=413,
            problem=f"The file is larger than the {size_in_words(limit)} an upload may be.",
        )
    form = await checked_form(request, session, max_files=1, max_fields=4)
    upload_file = form.get("file")
    if upload_file is None or isinstance(upload_file, str) or not upload_file.filename:
        return _upload_page(request, session, account, status=422, problem="Choose a file.")
    name = Path(upload_file.filename).name  # a browser may send a path
    try:
        limits: RateLimit = request.app.state.uploads
        limits.check(account.name)
        prepared = portal.prepare_upload(
            account, name, form_text(form.get("license")), form.get("consent") == "yes"
        )
        limits.hit(account.name)
        with Spool(name, limit, request.app.state.scratch) as spool:
            while chunk := await upload_file.read(CHUNK):
                spool.write(chunk)
            # The form waits for the verdict whatever the size (its progress bar shows the
            # sending; the result page then has the verdict, as for any file).
            answer = await run_in_threadpool(portal.upload, prepared, spool, wait=True)
    except UploadTooLargeError as exc:
        return _upload_page(request, session, account, status=413, problem=exc.message)
    except MlopsError as exc:
        status = refused(request, exc).status
        problem = f"{exc.message}." + (f" What to do: {exc.hint}." if exc.hint else "")
        return _upload_page(request, session, account, status=status, problem=problem)
    finally:
        await upload_file.close()
    log.info("portal: upload by %s: %s", account.name, answer["status"])
    session.last_upload = {**answer, "file_name": name}
    return RedirectResponse("/upload/result", 303)


@router.get("/upload/result")
def upload_result(request: Request) -> Response:
    session, account = signed_in(request)
    if session.last_upload is None:
        return RedirectResponse("/upload", 303)
    return render(
        request,
        "upload_result.html",
        session=session,
        account=account,
        title="Pre-check report",
        answer=session.last_upload,
    )


# ---- the webhook --------------------------------------------------------------------------


@router.get("/webhook")
def webhook(request: Request) -> Response:
    session, account = signed_in(request)
    return _webhook_page(request, session, account)


def _webhook_page(
    request: Request, session: Session, account: Account, *, status: int = 200, problem: str = ""
) -> Response:
    portal = portal_of(request)
    try:
        hook = portal.webhook(account)
    except NotFoundError:
        hook = None
    deliveries = portal.deliveries(account, limit=50) if hook is not None else []
    return render(
        request,
        "webhook.html",
        status=status,
        session=session,
        account=account,
        title="Webhook",
        hook=hook,
        deliveries=deliveries,
        problem=problem,
    )


@router.post("/webhook")
async def set_webhook(request: Request) -> Response:
    session, account = signed_in(request)
    form = await checked_form(request, session, max_files=0, max_fields=3)
    url = form_text(form.get("url")).strip()
    if form.get("remove") == "yes":
        with contextlib.suppress(NotFoundError):  # none registered: nothing to stop
            await run_in_threadpool(portal_of(request).remove_webhook, account)
        return RedirectResponse("/webhook", 303)
    if not url or len(url) > 2000:
        return _webhook_page(
            request, session, account, status=422, problem="Give a URL of at most 2,000 characters."
        )
    try:
        await run_in_threadpool(portal_of(request).set_webhook, account, url)
    except MlopsError as exc:
        problem = f"{exc.message}." + (f" What to do: {exc.hint}." if exc.hint else "")
        return _webhook_page(
            request, session, account, status=refused(request, exc).status, problem=problem
        )
    log.info("portal: webhook of %s set", account.name)
    return RedirectResponse("/webhook", 303)


# ---- public pages -------------------------------------------------------------------------


@router.get("/scoreboard")
def scoreboard(request: Request) -> Response:
    portal = portal_of(request)
    rows = public_scoreboard(portal.accounts, portal.store)
    return render(request, "scoreboard.html", title="Scoreboard", rows=rows)


@router.get("/how-value-is-computed")
def how_value_is_computed(request: Request) -> Response:
    return render(
        request,
        "how_value.html",
        title="How value is computed",
        metric=request.app.state.pages.metric,
    )


def _columns_with_values(rows: list[dict[str, Any]]) -> list[str]:
    """The preview's columns, in order, but those empty in every row shown."""
    columns = list(rows[0]) if rows else []
    return [c for c in columns if any(row.get(c) not in (None, "") for row in rows)]
