"""The upload API, ``/api/v1/``: a thin FastAPI router over :mod:`mlops_assets.core.accounts`.

Every route but the docs needs ``Authorization: Bearer <token>``. Errors are JSON with a
``detail`` that names the problem and a ``hint`` that says what to do; no stack trace is ever
sent, and tokens are never logged (the access log is off; only the account name is).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from mlops_assets.core.accounts.limits import RateLimit
from mlops_assets.core.accounts.portal import Portal
from mlops_assets.core.accounts.store import Account
from mlops_assets.core.accounts.uploads import Spool
from mlops_assets.errors import AuthenticationError, UploadTooLargeError

log = logging.getLogger("mlops_assets.portal.api")
router = APIRouter(prefix="/api/v1", tags=["contributors"])
bearer = HTTPBearer(auto_error=False, description="The token `mlops contributors add` printed")


class Error(BaseModel):
    detail: str = Field(description="What is wrong, in words.")
    hint: str | None = Field(default=None, description="What to do about it, when known.")


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


class AccountInfo(BaseModel):
    name: str = Field(description="The account id: the contributor id everywhere.")
    display_name: str
    public: bool = Field(description="Shown on the public scoreboard.")
    licenses: list[str] = Field(description="The licenses an upload may be given under.")
    max_upload_bytes: int


class UploadAnswer(BaseModel):
    contribution_id: str | None = Field(
        description="The contribution's id (None for bytes another account sent first)."
    )
    landing_path: str | None
    status: str = Field(
        description="`received` (landed; the pipeline takes it in next) or `duplicate` (the "
        "same bytes were contributed before: not landed again)."
    )
    accepted: bool = Field(description="The pre-check's verdict: would the pipeline accept it.")
    decision: str
    hint: str = Field(description="What to do about a rejection, in one sentence.")
    hints: list[str]
    rows_in: int
    rows_clean: int
    rows_rejected: int
    rejection_reasons: dict[str, int]
    quality_score: float | None
    sha256: str
    size: int | None
    license: str | None
    duplicate_of: str | None = Field(description="Your earlier contribution of these bytes.")
    replayed: bool = Field(description="The stored answer of an earlier request with this key.")


class Contribution(BaseModel):
    contribution_id: str | None
    contributor: str | None
    landing_path: str | None
    status: str = Field(
        description="pending, accepted, rejected, duplicate, excluded, nothing_new, failed, "
        "withdrawn"
    )
    decision: str
    hint: str
    withdrawn_at: float | None
    reasons: dict[str, int]
    quality_score: float | None
    rows_in: int | None
    rows_accepted: int
    model_versions: list[str]
    value: float | None
    value_interval: list[float] | None
    loo_delta: float | None
    valued_in_version: str | None
    value_reason: str | None
    license: str
    landed_at: float | None


class Step(BaseModel):
    step: str = Field(
        description="received, checked, ingested, refused, duplicate, valued, excluded, "
        "trained_on or withdrawn"
    )
    at: float | None = Field(description="Seconds since the epoch, when known.")
    detail: str
    version: str | None = None


class ContributionDetail(Contribution):
    timeline: list[Step]


class ContributionList(BaseModel):
    contributions: list[Contribution]
    limit: int
    offset: int


class ReportAnswer(BaseModel):
    report: dict[str, Any] = Field(description="The intake's report, as `mlops check --json`.")
    quarantine_sample: list[dict[str, str | None]] = Field(
        description="The first quarantined rows, values as text, with their reasons."
    )
    quarantined_rows: int
    withdrawn_at: float | None


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
    pre-check's verdict; follow the contribution at `GET /contributions/{id}`."""
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
    return JSONResponse(answer, status_code=201 if fresh else 200)


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


class Webhook(BaseModel):
    url: str
    secret: str = Field(description="whsec_...: verify each event's signature with it.")
    created_at: float


class WebhookTarget(BaseModel):
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="A public http(s) URL of your receiver (private addresses are refused).",
    )


class Delivery(BaseModel):
    event_id: str
    event_type: str
    contribution_id: str | None
    attempted_at: float
    outcome: str = Field(description="delivered, waiting (retried later) or dead (given up)")
    detail: str


class Deliveries(BaseModel):
    deliveries: list[Delivery]


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
