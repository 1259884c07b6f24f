"""What every page of the portal shares: the templates (Jinja2, autoescaped) and their
filters, the session of a request and its account, forms checked against the session's CSRF
token, the security headers, and refusals shown as pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from mlops_assets.core.accounts.portal import Portal
from mlops_assets.core.accounts.sessions import Session, Sessions, same_token, session_account
from mlops_assets.core.accounts.store import Account
from mlops_assets.errors import MlopsError

HERE = Path(__file__).parent
SESSION_COOKIE = "mlops_portal_session"
SIGN_IN_COOKIE = "mlops_portal_sign_in"  # the sign-in form's CSRF token, double-submitted
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


def _clip(text: object, limit: int = 200) -> str:
    """A contributor's cell or column name, cut to ``limit`` characters (a 5 MB cell is not
    sent whole to every browser that opens the page), saying how much was left out."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else f"{text[:limit]}…[{len(text) - limit} more]"


def size_in_words(count: int) -> str:
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
    env.filters["size"] = size_in_words
    env.filters["clip"] = _clip
    env.filters["metric_name"] = _metric_name
    env.globals["step_names"] = STEP_NAMES
    return env


TEMPLATES = _environment()


# ---- sessions -----------------------------------------------------------------------------


def portal_of(request: Request) -> Portal:
    return request.app.state.portal


def sessions_of(request: Request) -> Sessions:
    return request.app.state.sessions


def session_of(request: Request) -> Session | None:
    return sessions_of(request).get(request.cookies.get(SESSION_COOKIE))


def signed_in(request: Request) -> tuple[Session, Account]:
    """The session and its account; a session whose token was revoked or whose account was
    disabled ends here."""
    session = session_of(request)
    account = session_account(portal_of(request).accounts, session) if session else None
    if session is None or account is None:
        if session is not None:
            sessions_of(request).close(session.id)
        raise SignInNeeded
    return session, account


def secure_cookie(request: Request) -> bool:
    mode = request.app.state.pages.secure_cookie
    return mode == "true" or (mode == "auto" and request.url.scheme == "https")


async def checked_form(request: Request, session: Session | None, **limits: int) -> Any:
    """The form, once its CSRF token is the session's (403 otherwise)."""
    form = await request.form(**limits)
    expected = session.csrf if session else request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not same_token(form_text(form.get("csrf")), expected):
        raise PageError(
            403,
            "This form has expired or did not come from this site",
            "go back, reload the page and send it again",
        )
    return form


def form_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> Response:
    session = context.pop("session", None) or session_of(request)
    account = context.pop("account", None)
    if account is None and session is not None:
        account = session_account(portal_of(request).accounts, session)
        session = session if account is not None else None
    html = TEMPLATES.get_template(template).render(
        session=session,
        account=account,
        csrf=session.csrf if session else "",
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def refused(request: Request, exc: MlopsError) -> PageError:
    """A use case's refusal as a page, with the status the API answers it with."""
    statuses = request.app.state.statuses
    status = next((s for kind, s in statuses.items() if isinstance(exc, kind)), 503)
    return PageError(status, exc.message, exc.hint or "")
