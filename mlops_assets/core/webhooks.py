"""Signed webhooks for registry events, with retries and an outbox for later redelivery.

Payload (schema ``mlops-assets/webhook@1``)::

    {"schema": "mlops-assets/webhook@1", "id": "<event id>", "type": "model_version.registered",
     "created_at": "2026-11-23T12:00:00+00:00", "data": {...}}

Headers: ``X-Mlops-Event-Id``, ``X-Mlops-Event-Type`` and ``X-Mlops-Signature: t=<unix
time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the shared secret>``. A receiver recomputes the
HMAC, rejects stale timestamps, and uses the event id to ignore a redelivered event it already
handled. Delivery never raises: an event that cannot be delivered now is kept in the outbox.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_assets.core.storage import write_json

SCHEMA = "mlops-assets/webhook@1"
REGISTERED = "model_version.registered"
PROMOTED = "model_version.promoted"
SIGNATURE_HEADER = "X-Mlops-Signature"


@dataclass(frozen=True)
class WebhookEvent:
    type: str
    data: dict[str, Any]
    id: str = ""
    created_at: str = ""

    @classmethod
    def new(cls, event_type: str, data: dict[str, Any]) -> WebhookEvent:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(event_type, data, id=uuid.uuid4().hex, created_at=now)

    def body(self) -> bytes:
        return json.dumps({"schema": SCHEMA, **asdict(self)}, sort_keys=True).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Mlops-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def signature_is_valid(secret: str, header: str, body: bytes, *, tolerance: int = 300) -> bool:
    """What a receiver checks: the HMAC matches and the timestamp is recent."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    fresh = abs(time.time() - timestamp) <= tolerance
    return fresh and hmac.compare_digest(signature(secret, timestamp, body), header)


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    status: int | None  # the last HTTP status, None when the receiver was unreachable
    retryable: bool  # worth trying again later (unreachable, timeout, 5xx); a 4xx is not
    detail: str


def deliver(
    url: str,
    secret: str,
    event: WebhookEvent,
    *,
    attempts: int = 4,
    first_delay: float = 0.5,
    timeout: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST ``event`` to ``url``, retrying timeouts, connection errors and 5xx answers with
    exponential backoff (``first_delay``, doubled each time); a 4xx answer is final."""
    body = event.body()
    status, detail = None, ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Mlops-Event-Id": event.id,
                "X-Mlops-Event-Type": event.type,
                SIGNATURE_HEADER: signature(secret, int(time.time()), body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Delivery(True, attempt, response.status, False, "delivered")
        except urllib.error.HTTPError as exc:
            status, detail = exc.code, f"HTTP {exc.code}"
            if exc.code < 500:
                return Delivery(False, attempt, status, False, f"{detail}: refused, not retried")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            status, detail = None, f"unreachable ({getattr(exc, 'reason', exc)})"
        if attempt < attempts:
            sleep(first_delay * 2 ** (attempt - 1))
    return Delivery(False, attempts, status, True, f"{detail} after {attempts} attempt(s)")


class Outbox:
    """Events waiting for redelivery, one JSON file each under ``root/pending``; events a
    receiver refused (4xx) are kept under ``root/refused`` for a person to look at."""

    def __init__(self, root: Path) -> None:
        self.pending = root / "pending"
        self.refused = root / "refused"

    def keep(self, event: WebhookEvent, why: str, *, refused: bool = False) -> Path:
        folder = self.refused if refused else self.pending
        path = folder / f"{event.id}.json"
        write_json({"event": asdict(event), "why": why}, path)
        return path

    def waiting(self) -> list[tuple[WebhookEvent, Path]]:
        events = []
        for path in sorted(self.pending.glob("*.json")):
            stored = json.loads(path.read_text())["event"]
            events.append((WebhookEvent(**stored), path))
        return events


def notify(url: str, secret: str, outbox: Outbox, event: WebhookEvent, **delivery: Any) -> str:
    """Deliver ``event`` now, or keep it for later; one line saying which. Never raises."""
    result = deliver(url, secret, event, **delivery)
    if result.delivered:
        return f"{event.type} {event.id} delivered"
    outbox.keep(event, result.detail, refused=not result.retryable)
    where = "refused" if not result.retryable else "kept for redelivery"
    return f"{event.type} {event.id} not delivered ({result.detail}): {where}"


def redeliver(url: str, secret: str, outbox: Outbox, **delivery: Any) -> dict[str, int]:
    """Try every waiting event once more: delivered ones leave the outbox."""
    counts = {"delivered": 0, "waiting": 0, "refused": 0}
    for event, path in outbox.waiting():
        result = deliver(url, secret, event, **delivery)
        if result.delivered:
            path.unlink()
            counts["delivered"] += 1
        elif result.retryable:
            counts["waiting"] += 1
        else:
            outbox.keep(event, result.detail, refused=True)
            path.unlink()
            counts["refused"] += 1
    return counts
