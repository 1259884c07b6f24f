"""The portal's pages: server-rendered HTML over the same use cases as the upload API
(:class:`~mlops_assets.core.accounts.portal.Portal`), usable without JavaScript (one static
script only adds drag-and-drop and a progress bar to the upload form).

Signing in takes a token once, in a form, and opens a server-side session: the cookie holds a
random id (HttpOnly, SameSite=Lax, Secure over https), never the token. Every form carries the
session's CSRF token (sign-in: a double-submitted one). Every contributor-supplied string
goes through Jinja2's autoescaping; nothing is marked safe. One account never sees another's
contribution: it is "not found", as one that does not exist.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from mlops_assets.core.accounts.limits import RateLimit
from mlops_assets.core.accounts.portal import Portal
from mlops_assets.core.accounts.sessions import Session, Sessions, same_token
from mlops_assets.core.accounts.showcase import public_scoreboard, value_history
from mlops_assets.core.accounts.store import Account
from mlops_assets.core.accounts.uploads import Spool
from mlops_assets.errors import (
    AccountDisabledError,
    AuthenticationError,
    MlopsError,
    NotFoundError,
    RateLimitedError,
    UploadTooLargeError,
)
from mlops_assets.settings import Settings

log = logging.getLogger("mlops_assets.portal.pages")
HERE = Path(__file__).parent
SESSION_COOKIE = "mlops_portal_session"
SIGN_IN_COOKIE = "mlops_portal_sign_in"  # the sign-in form's CSRF token, double-submitted
PAGE_SIZE = 20
CHUNK = 1 << 20
# No inline script or style anywhere: the one script and the one stylesheet are static files.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
STEP_NAMES = {
    "received": "Received",
    "checked": "Checked",
    "ingested": "Taken in",
    "refused": "Refused",
    "duplicate": "Duplicate",
    "valued": "Valued",
    "excluded": "Left out",
    "trained_on": "In a model",
    "withdrawn": "Withdrawn",
}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class PageSettings:
    metric: str
    secure_cookie: str  # auto | true | false
    licenses: tuple[str, ...]


class SignInNeeded(Exception):
    """A page that needs a session was asked for without one."""


class PageError(Exception):
    """A page's use case said no: shown as an HTML page with its status."""

    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


def _when(at: float | None) -> str:
    if at is None:
        return "time not recorded"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _signed(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:+.{digits}f}"


def _size(count: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def _metric_name(metric: str) -> str:
    return metric.replace("_", " ")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name: nothing reaches a page unescaped
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["signed"] = _signed
    env.filters["size"] = _size
    env.filters["metric_name"] = _metric_name
    env.globals["step_names"] = STEP_NAMES
    return env


TEMPLATES = _environment()


def install(app: FastAPI, settings: Settings) -> None:
    """The pages, their static files, sessions and security headers on ``app`` (the
    upload API's application: its ``portal``, rate limits and scratch folder are shared)."""
    app.state.sessions = Sessions()
    app.state.pages = PageSettings(
        settings.primary_metric, settings.portal_secure_cookie, settings.portal_licenses
    )
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
        return _render(
            request,
            "error.html",
            status=exc.status,
            title=exc.message,
            message=exc.message,
            hint=exc.hint,
        )


# ---- sessions -----------------------------------------------------------------------------


def _portal(request: Request) -> Portal:
    return request.app.state.portal


def _sessions(request: Request) -> Sessions:
    return request.app.state.sessions


def _session(request: Request) -> Session | None:
    return _sessions(request).get(request.cookies.get(SESSION_COOKIE))


def _signed_in(request: Request) -> tuple[Session, Account]:
    """The session and its account; a disabled or removed account's session ends."""
    session = _session(request)
    if session is None:
        raise SignInNeeded
    try:
        account = _portal(request).accounts.get(session.account)
    except NotFoundError:
        account = None
    if account is None or account.disabled:
        _sessions(request).close(session.id)
        raise SignInNeeded
    return session, account


def _secure(request: Request) -> bool:
    mode = request.app.state.pages.secure_cookie
    return mode == "true" or (mode == "auto" and request.url.scheme == "https")


async def _form(request: Request, session: Session | None, **limits: int) -> Any:
    """The form, once its CSRF token is the session's (403 otherwise)."""
    form = await request.form(**limits)
    expected = session.csrf if session else request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not same_token(_text(form.get("csrf")), expected):
        raise PageError(
            403,
            "This form has expired or did not come from this site",
            "go back, reload the page and send it again",
        )
    return form


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _render(request: Request, template: str, *, status: int = 200, **context: Any) -> Response:
    session = context.pop("session", None) or _session(request)
    account = context.pop("account", None)
    if account is None and session is not None:
        try:
            account = _portal(request).accounts.get(session.account)
        except NotFoundError:
            account = None
    html = TEMPLATES.get_template(template).render(
        session=session,
        account=account,
        csrf=session.csrf if session else "",
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def _refused(exc: MlopsError) -> PageError:
    from mlops_assets.portal.app import STATUSES

    status = next((s for kind, s in STATUSES.items() if isinstance(exc, kind)), 503)
    return PageError(status, exc.message, exc.hint or "")


# ---- signing in and out -------------------------------------------------------------------


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/contributions" if _session(request) else "/sign-in", 303)


@router.get("/sign-in")
def sign_in_form(request: Request) -> Response:
    if _session(request) is not None:
        return RedirectResponse("/contributions", 303)
    return _sign_in_page(request)


def _sign_in_page(request: Request, *, status: int = 200, problem: str = "") -> Response:
    token = secrets.token_urlsafe(32)
    response = _render(
        request, "sign_in.html", status=status, title="Sign in", sign_in_csrf=token, problem=problem
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/sign-in",
    )
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    failures: RateLimit = request.app.state.auth_failures
    client = request.client.host if request.client else "unknown"
    try:
        failures.check(client)
    except RateLimitedError as exc:
        response = _sign_in_page(request, status=429, problem=f"{exc.message}; {exc.hint}.")
        response.headers["Retry-After"] = str(int(exc.retry_after + 0.999))
        return response
    form = await _form(request, None, max_files=0, max_fields=3)
    token = _text(form.get("token")).strip()
    try:
        account = await run_in_threadpool(_portal(request).authenticate, token or None)
    except AuthenticationError:
        failures.hit(client)
        return _sign_in_page(
            request, status=401, problem="That token is not one of ours. Check it and try again."
        )
    except AccountDisabledError:
        return _sign_in_page(
            request, status=403, problem="This account is disabled: ask the operator."
        )
    session = _sessions(request).open(account.name)
    log.info("portal: %s signed in", account.name)
    response = RedirectResponse("/contributions", 303)
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    session, _ = _signed_in(request)
    await _form(request, session, max_files=0, max_fields=2)
    _sessions(request).close(session.id)
    response = RedirectResponse("/sign-in", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---- my contributions ---------------------------------------------------------------------


@router.get("/contributions")
def contributions(request: Request, page: int = 1) -> Response:
    session, account = _signed_in(request)
    page = max(1, min(page, 1_000_000))
    rows = _portal(request).my_contributions(
        account, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    taken_in = sum(row["status"] != "pending" for row in rows)
    return _render(
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
    session, account = _signed_in(request)
    portal = _portal(request)
    try:
        row = portal.contribution(account, contribution_id)
    except NotFoundError as exc:
        raise PageError(404, "No such contribution of yours", "see the list of yours") from exc
    try:
        report = portal.report(account, contribution_id)
    except NotFoundError:
        report = None
    # The registry's versions, as the Portal reads them (cached a few seconds).
    versions = portal._versions()
    history = value_history(versions, contribution_id, request.app.state.pages.metric)
    latest = max((v for v, _, _ in versions), key=int, default=None)
    return _render(
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
    session, account = _signed_in(request)
    form = await _form(request, session, max_files=0, max_fields=3)
    if form.get("confirm") != "yes":
        raise PageError(
            422,
            "Nothing was withdrawn: tick the box that says you understand first",
            "go back and tick it",
        )
    try:
        await run_in_threadpool(_portal(request).withdraw, account, contribution_id)
    except NotFoundError as exc:
        raise PageError(404, "No such contribution of yours", "see the list of yours") from exc
    except MlopsError as exc:
        raise _refused(exc) from exc
    log.info("portal: withdrawal by %s of %s", account.name, contribution_id)
    return RedirectResponse(f"/contributions/{contribution_id}?withdrawn=1", 303)


# ---- uploading ----------------------------------------------------------------------------


@router.get("/upload")
def upload_form(request: Request) -> Response:
    session, account = _signed_in(request)
    return _upload_page(request, session, account)


def _upload_page(
    request: Request, session: Session, account: Account, *, status: int = 200, problem: str = ""
) -> Response:
    portal = _portal(request)
    return _render(
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
    session, account = _signed_in(request)
    portal = _portal(request)
    limit = portal.config.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:  # the form's own fields
        return _upload_page(
            request,
            session,
            account,
            status=413,
            problem=f"The file is larger than the {_size(limit)} an upload may be.",
        )
    form = await _form(request, session, max_files=1, max_fields=4)
    upload_file = form.get("file")
    if upload_file is None or isinstance(upload_file, str) or not upload_file.filename:
        return _upload_page(request, session, account, status=422, problem="Choose a file.")
    name = Path(upload_file.filename).name  # a browser may send a path
    try:
        limits: RateLimit = request.app.state.uploads
        limits.check(account.name)
        prepared = portal.prepare_upload(
            account, name, _text(form.get("license")), form.get("consent") == "yes"
        )
        limits.hit(account.name)
        with Spool(name, limit, request.app.state.scratch) as spool:
            while chunk := await upload_file.read(CHUNK):
                spool.write(chunk)
            answer = await run_in_threadpool(portal.upload, prepared, spool)
    except UploadTooLargeError as exc:
        return _upload_page(request, session, account, status=413, problem=exc.message)
    except MlopsError as exc:
        refused = _refused(exc)
        problem = f"{exc.message}." + (f" What to do: {exc.hint}." if exc.hint else "")
        return _upload_page(request, session, account, status=refused.status, problem=problem)
    finally:
        await upload_file.close()
    log.info("portal: upload by %s: %s", account.name, answer["status"])
    session.last_upload = {**answer, "file_name": name}
    return RedirectResponse("/upload/result", 303)


@router.get("/upload/result")
def upload_result(request: Request) -> Response:
    session, account = _signed_in(request)
    if session.last_upload is None:
        return RedirectResponse("/upload", 303)
    return _render(
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
    session, account = _signed_in(request)
    return _webhook_page(request, session, account)


def _webhook_page(
    request: Request, session: Session, account: Account, *, status: int = 200, problem: str = ""
) -> Response:
    portal = _portal(request)
    try:
        hook = portal.webhook(account)
    except NotFoundError:
        hook = None
    deliveries = portal.deliveries(account, limit=50) if hook is not None else []
    return _render(
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
    session, account = _signed_in(request)
    form = await _form(request, session, max_files=0, max_fields=3)
    url = _text(form.get("url")).strip()
    if form.get("remove") == "yes":
        with contextlib.suppress(NotFoundError):  # none registered: nothing to stop
            await run_in_threadpool(_portal(request).remove_webhook, account)
        return RedirectResponse("/webhook", 303)
    if not url or len(url) > 2000:
        return _webhook_page(
            request, session, account, status=422, problem="Give a URL of at most 2,000 characters."
        )
    try:
        await run_in_threadpool(_portal(request).set_webhook, account, url)
    except MlopsError as exc:
        problem = f"{exc.message}." + (f" What to do: {exc.hint}." if exc.hint else "")
        return _webhook_page(
            request, session, account, status=_refused(exc).status, problem=problem
        )
    log.info("portal: webhook of %s set", account.name)
    return RedirectResponse("/webhook", 303)


# ---- public pages -------------------------------------------------------------------------


@router.get("/scoreboard")
def scoreboard(request: Request) -> Response:
    portal = _portal(request)
    rows = public_scoreboard(portal.accounts, portal.store)
    return _render(request, "scoreboard.html", title="Scoreboard", rows=rows)


@router.get("/how-value-is-computed")
def how_value_is_computed(request: Request) -> Response:
    return _render(
        request,
        "how_value.html",
        title="How value is computed",
        metric=request.app.state.pages.metric,
    )


def _columns_with_values(rows: list[dict[str, Any]]) -> list[str]:
    """The preview's columns, in order, but those empty in every row shown."""
    columns = list(rows[0]) if rows else []
    return [c for c in columns if any(row.get(c) not in (None, "") for row in rows)]


# ---- the value's history as a chart -------------------------------------------------------

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 560, 220, 70, 20, 20, 40


def history_chart(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where each of the history's values, its interval and the zero line go on an SVG of
    :data:`WIDTH` x :data:`HEIGHT` (the template draws it; nothing here is markup)."""
    if not points:
        return None
    lows = [p["value_interval"][0] if p["value_interval"] else p["value"] for p in points]
    highs = [p["value_interval"][1] if p["value_interval"] else p["value"] for p in points]
    low, high = min([0.0, *lows]), max([0.0, *highs])
    if math.isclose(low, high):
        low, high = low - 1e-3, high + 1e-3
    pad = (high - low) * 0.1
    low, high = low - pad, high + pad

    def y(value: float) -> float:
        return round(TOP + (high - value) / (high - low) * (HEIGHT - TOP - BOTTOM), 1)

    span = WIDTH - LEFT - RIGHT
    step = span / len(points)
    marks = []
    for i, (p, lo, hi) in enumerate(zip(points, lows, highs, strict=True)):
        x = round(LEFT + step * (i + 0.5), 1)
        marks.append(
            {"x": x, "y": y(p["value"]), "low": y(lo), "high": y(hi), "label": f"v{p['version']}"}
        )
    ticks = [{"y": y(v), "label": f"{v:+.3f}"} for v in (high - pad, 0.0, low + pad)]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "zero": y(0.0),
        "marks": marks,
        "ticks": ticks,
        "generated": time.time(),
    }
