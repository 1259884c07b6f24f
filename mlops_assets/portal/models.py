"""The upload API's request and response bodies, as its OpenAPI document shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Error(BaseModel):
    detail: str = Field(description="What is wrong, in words.")
    hint: str | None = Field(default=None, description="What to do about it, when known.")


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


class UploadChecking(BaseModel):
    contribution_id: str
    landing_path: str
    status: str = Field(description="`checking`: landed, its pre-check not done yet.")
    stage: str = Field(
        description="`queued` (waiting for a free checker), `checking` (being checked), or "
        "`waiting_for_intake` (the portal restarted meanwhile, or the check could not finish: "
        "the pipeline's intake gives the verdict, here too)."
    )
    detail: str = Field(description="The stage in words.")
    queue_position: int | None = Field(description="While queued: 1 = next.")
    seconds: float = Field(description="Seconds in this stage so far.")
    received_at: float = Field(description="When it was received (seconds since the epoch).")
    sha256: str
    size: int
    license: str
    status_url: str = Field(
        description="Where to ask again: answered 202 with this body while it is checked, "
        "then 200 with the verdict (the body a smaller upload is answered with at once)."
    )
    replayed: bool


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
