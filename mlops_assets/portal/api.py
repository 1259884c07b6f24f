"""The upload API, ``/api/v1/``: a thin FastAPI router over :mod:`mlops_assets.core.accounts`.

Every route but the docs needs ``Authorization: Bearer <token>``. Errors are JSON with a
``detail`` that names the problem and a ``hint`` that says what to do; no stack trace is ever
sent, and tokens are never logged (the access log is off; only the account name is).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mlops_assets.core.accounts.checks import CHECKING
from mlops_assets.core.accounts.limits import RateLimit
from mlops_assets.core.accounts.portal import Portal
from mlops_assets.core.accounts.spool import Spool
from mlops_assets.core.accounts.store import Account
from mlops_assets.errors import AuthenticationError, UploadTooLargeError
from mlops_assets.portal.models import (
    AccountInfo,
    ContributionDetail,
    ContributionList,
    Deliveries,
    Error,
    ReportAnswer,
    UploadAnswer,
    UploadChecking,
    Webhook,
    WebhookTarget,
)

log = logging.getLogger("mlops_assets.portal.api")
router = APIRouter(prefix="/api/v1", tags=["contributors"])
bearer = HTTPBearer(auto_error=False, description="The token `mlops contributors add` printed")


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "model": Error}


UNAUTHORIZED = _error("No token, or one no account has (AUTH_FAILED)")
DISABLED = _error("The account is disabled (ACCOUNT_DISABLED)")
NOT_FOUND = _error("No such contribution of yours (another account's is not found either)")
RATE_LIMITED = _error("Too many failed sign-ins from this address, or uploads of this account")
BINARY = {"type": "string", "format": "binary"}
LICENSE_PARAMETER = "license"
INVALID = _error("A query parameter or header is invalid (each is named)")
SIGNED_IN = {401: UNAUTHORIZED, 403: DISABLED, 422: INVALID, 429: RATE_LIMITED}
# What a file name may hold, as far as a pattern can say it: no path separator, no control
# or direction-override character, not hidden (the landing zone's own rules decide the rest).
FILE_NAME = r"^[^./\\\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
FILE_NAME += r"[^/\\\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]*$"


def _status_url(contribution_id: str) -> str:
    return f"{router.prefix}/uploads/{quote(contribution_id, safe='')}"


def _answered(answer: dict[str, Any], *, fresh: int = 200) -> JSONResponse:
    """An upload's answer: 202 with a status URL while it is checked, else ``fresh`` (201
    for a new upload, 200 for one answered before or a copy)."""
    if answer["status"] != CHECKING:
        return JSONResponse(answer, status_code=fresh)
    url = _status_url(answer["contribution_id"])
    return JSONResponse({**answer, "status_url": url}, status_code=202, headers={"Location": url})


def _portal(request: Request) -> Portal:
    return request.app.state.portal


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def signed_in(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Account:
    """The account of the bearer token. An address that keeps failing is refused for a
    while before its token is even looked at."""
    failures: RateLimit = request.app.state.auth_failures
    client = _client(request)
    failures.check(client)
    token = credentials.credentials if credentials is not None else None
    try:
        return await run_in_threadpool(_portal(request).authenticate, token)
    except AuthenticationError:
        failures.hit(client)
        raise


Me = Annotated[Account, Depends(signed_in)]


@router.get("/account", response_model=AccountInfo, responses=SIGNED_IN)
def account(request: Request, me: Me) -> AccountInfo:
    """Who the token is, and what an upload may be."""
    config = _portal(request).config
    return AccountInfo(
        name=me.name,
        display_name=me.display_name,
        public=me.public,
        licenses=list(config.licenses),
        max_upload_bytes=config.max_upload_bytes,
    )


@router.post(
    "/uploads",
    status_code=201,
    response_model=UploadAnswer,
    responses={
        200: {"description": "A replayed answer, or bytes sent before", "model": UploadAnswer},
        202: {
            "description": "Larger than MLOPS_PORTAL_CHECK_INLINE_BYTES: landed, its pre-check "
            "under way; ask its `status_url` (also the `Location` header) for the verdict",
            "model": UploadChecking,
        },
        **SIGNED_IN,
        409: _error("The Idempotency-Key is in use by another upload, or the file name is taken"),
        413: _error("Larger than MLOPS_PORTAL_MAX_UPLOAD_BYTES (reading stopped there)"),
        422: _error("The file name, license or consent is refused, or the body is empty"),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {**BINARY, "minLength": 1}}},
        }
    },
)
async def upload(
    request: Request,
    me: Me,
    filename: Annotated[
        str,
        # Documented, not enforced by the pattern: the use case refuses a bad name saying why.
        Query(
            min_length=1,
            max_length=200,
            json_schema_extra={"pattern": FILE_NAME},
            description="The file's name, e.g. flowers.csv: its extension says its format",
        ),
    ],
    license: Annotated[str, Query(description="One of the offered licenses (GET /account)")],
    consent: Annotated[
        bool,
        Query(
            description="true: you agree that this file may be used to train models",
            json_schema_extra={"enum": [True]},  # nothing is taken without it
        ),
    ],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            pattern=r"^[!-~]+$",
            description="Any key of yours (a UUID): a retry with the same key is one upload",
        ),
    ] = None,
) -> JSONResponse:
    """Upload a file as the raw request body (streamed to disk, never held in memory); it is
    pre-checked as the pipeline will judge it and placed in the landing zone as
    `<account>/<filename>`, with its license and consent beside it. The answer is the
    pre-check's verdict (201); follow the contribution at `GET /contributions/{id}`. A file
    larger than the server's `MLOPS_PORTAL_CHECK_INLINE_BYTES` is landed and answered at once
    (202) with a `status_url` that gives its pre-check's progress, then its verdict."""
    portal = _portal(request)
    uploads: RateLimit = request.app.state.uploads
    uploads.check(me.name)
    prepared = portal.prepare_upload(me, filename, license, consent)
    limit = portal.config.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLargeError(
            f"the upload is {declared} bytes; at most {limit} are taken",
            hint="split the file, or compress it (gzip or zip)",
        )
    uploads.hit(me.name)
    with Spool(filename, limit, request.app.state.scratch) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        answer = await run_in_threadpool(
            portal.upload, prepared, spool, idempotency_key=idempotency_key
        )
    log.info("upload by %s: %s %s", me.name, answer["status"], answer["contribution_id"])
    fresh = answer["status"] == "received" and not answer["replayed"]
    return _answered(answer, fresh=201 if fresh else 200)


@router.get(
    "/uploads/{contribution_id}",
    response_model=UploadAnswer,
    responses={
        202: {"description": "Still being checked: its progress", "model": UploadChecking},
        **SIGNED_IN,
        404: _error("No such upload of yours (another account's is not found either)"),
    },
)
def upload_status(request: Request, me: Me, contribution_id: str) -> JSONResponse:
    """An upload's verdict (200: the answer its `POST` had, or would have had were it small
    enough to be checked at once), or, while its pre-check runs, where it stands (202)."""
    return _answered(_portal(request).upload_status(me, contribution_id))


@router.get("/contributions", response_model=ContributionList, responses=SIGNED_IN)
def contributions(
    request: Request,
    me: Me,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Your contributions in landing order, a page at a time: status, reasons, the hint,
    rows, quality, value with its interval, the model versions trained on each."""
    rows = _portal(request).my_contributions(me, limit=limit, offset=offset)
    return {"contributions": rows, "limit": limit, "offset": offset}


@router.get(
    "/contributions/{contribution_id}",
    response_model=ContributionDetail,
    responses={**SIGNED_IN, 404: NOT_FOUND},
)
def contribution(request: Request, me: Me, contribution_id: str) -> dict[str, Any]:
    """One of your contributions, with its timeline."""
    return _portal(request).contribution(me, contribution_id)


@router.get(
    "/contributions/{contribution_id}/report",
    response_model=ReportAnswer,
    responses={**SIGNED_IN, 404: NOT_FOUND},
)
def report(request: Request, me: Me, contribution_id: str) -> dict[str, Any]:
    """Its intake's report and a sample of its quarantined rows with their reasons."""
    return _portal(request).report(me, contribution_id)


@router.post(
    "/contributions/{contribution_id}/withdraw",
    response_model=ContributionDetail,
    responses={**SIGNED_IN, 404: NOT_FOUND, 409: _error("Still being checked: try again soon")},
)
def withdraw(request: Request, me: Me, contribution_id: str) -> dict[str, Any]:
    """Withdraw it: left out of the next retrain and every later one, its rows deleted, its
    history and credit kept and marked withdrawn. Withdrawing again answers the same."""
    log.info("withdrawal by %s of %s", me.name, contribution_id)
    return _portal(request).withdraw(me, contribution_id)


NO_WEBHOOK = _error("No webhook is registered")


@router.get("/webhook", response_model=Webhook, responses={**SIGNED_IN, 404: NO_WEBHOOK})
def webhook(request: Request, me: Me) -> dict[str, Any]:
    """Your webhook: where events about your contributions are sent (contribution.checked,
    .valued, .trained_on, .excluded, .withdrawn), as Standard Webhooks signed with its
    secret."""
    return _portal(request).webhook(me)


@router.put(
    "/webhook",
    response_model=Webhook,
    responses={**SIGNED_IN, 400: _error("The body is not JSON"), 404: NO_WEBHOOK},
)
def set_webhook(request: Request, me: Me, target: WebhookTarget) -> dict[str, Any]:
    """Register your webhook, or move it (its secret is kept). A URL whose host resolves to a
    loopback, private, link-local or metadata address is refused (422)."""
    log.info("webhook of %s set", me.name)
    return _portal(request).set_webhook(me, target.url)


@router.delete(
    "/webhook", status_code=204, response_model=None, responses={**SIGNED_IN, 404: NO_WEBHOOK}
)
def remove_webhook(request: Request, me: Me) -> Response:
    """Stop sending events to your webhook."""
    _portal(request).remove_webhook(me)
    return Response(status_code=204)


@router.get(
    "/webhook/deliveries", response_model=Deliveries, responses={**SIGNED_IN, 404: NO_WEBHOOK}
)
def deliveries(
    request: Request, me: Me, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """The latest attempts to deliver events to your webhook, newest first."""
    return {"deliveries": _portal(request).deliveries(me, limit=limit)}
