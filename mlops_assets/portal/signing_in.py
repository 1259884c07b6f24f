"""Signing in to the portal with a token, and out: the token is checked once (failed attempts
count against the client's limit, as the API's do) and a session opened; its random id is
the cookie, never the token. The sign-in form's CSRF token is double-submitted (a cookie of
its own, path /sign-in), since there is no session yet to hold it."""

from __future__ import annotations

import logging
import secrets

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from mlops_assets.core.accounts.limits import RateLimit
from mlops_assets.core.accounts.store import token_hash
from mlops_assets.errors import AccountDisabledError, AuthenticationError, RateLimitedError
from mlops_assets.portal.web import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    checked_form,
    form_text,
    portal_of,
    render,
    secure_cookie,
    session_of,
    sessions_of,
    signed_in,
)

log = logging.getLogger("mlops_assets.portal.pages")
router = APIRouter(include_in_schema=False)


@router.get("/sign-in")
def sign_in_form(request: Request) -> Response:
    if session_of(request) is not None:
        return RedirectResponse("/contributions", 303)
    return _sign_in_page(request)


def _sign_in_page(request: Request, *, status: int = 200, problem: str = "") -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request, "sign_in.html", status=status, title="Sign in", sign_in_csrf=token, problem=problem
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
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
    form = await checked_form(request, None, max_files=0, max_fields=3)
    token = form_text(form.get("token")).strip()
    try:
        account = await run_in_threadpool(portal_of(request).authenticate, token or None)
    except AuthenticationError:
        failures.hit(client)
        return _sign_in_page(
            request, status=401, problem="That token is not one of ours. Check it and try again."
        )
    except AccountDisabledError:
        return _sign_in_page(
            request, status=403, problem="This account is disabled: ask the operator."
        )
    session = sessions_of(request).open(account.name, token_hash(token))
    log.info("portal: %s signed in", account.name)
    response = RedirectResponse("/contributions", 303)
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request),
        path="/",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    session, _ = signed_in(request)
    await checked_form(request, session, max_files=0, max_fields=2)
    sessions_of(request).close(session.id)
    response = RedirectResponse("/sign-in", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
