"""Registry events as Standard Webhooks (https://www.standardwebhooks.com), delivered at least
once through an outbox.

Body (schema ``mlops-assets/webhook@2``)::

    {"schema": "mlops-assets/webhook@2", "id": "msg_<hex>", "type": "model_version.registered",
     "timestamp": "2026-11-23T12:00:00+00:00", "data": {...}}

Headers: ``webhook-id`` (the event id: the same on every attempt, so a receiver can ignore a
repeat), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``: one
``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` per active secret, space-separated,
so a secret can be rotated without a receiver missing an event. Secrets are ``whsec_`` and
base64, as the Standard Webhooks libraries take them; a receiver verifies with
``standardwebhooks.Webhook(secret).verify(body, headers)``.

Every event is written to the outbox before its first attempt. An attempt that times out,
cannot connect or gets 408, 429 or 5xx is retried later with capped exponential backoff until
the event is older than its maximum age; any other answer, or that age, moves it to ``dead/``
with the reason. Nothing here raises for a receiver's sake.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_assets.core.common.storage import write_json
from mlops_assets.errors import ConfigurationError

SCHEMA = "mlops-assets/webhook@2"
REGISTERED = "model_version.registered"
PROMOTED = "model_version.promoted"
SECRET_PREFIX = "whsec_"
# Answers that say "try again later"; every other 4xx is a refusal.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


def new_secret() -> str:
    """A fresh ``whsec_`` secret: 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def parse_secrets(text: str) -> list[bytes]:
    """The keys of a space-separated list of ``whsec_`` secrets (the first signs, all verify;
    list two while rotating). Raises :class:`ConfigurationError` naming a malformed one."""
    keys = []
    for position, secret in enumerate(text.split(), start=1):
        body = secret.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(body, validate=True) if secret.startswith(SECRET_PREFIX) else b""
        except (binascii.Error, ValueError):
            key = b""
        if len(key) < 16:
            raise ConfigurationError(
                f"MLOPS_WEBHOOK_SECRET: secret {position} is not a whsec_ secret of at least "
                "16 bytes (whsec_ followed by base64)",
                hint="create one with `mlops webhook new-secret`; give the receiver the same",
            )
        keys.append(key)
    return keys


@dataclass(frozen=True)
class WebhookEvent:
    type: str
    data: dict[str, Any]
    id: str = ""
    timestamp: str = ""

    @classmethod
    def new(cls, event_type: str, data: dict[str, Any]) -> WebhookEvent:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(event_type, data, id=f"msg_{uuid.uuid4().hex}", timestamp=now)

    def body(self) -> bytes:
        return json.dumps({"schema": SCHEMA, **asdict(self)}, sort_keys=True).encode()


@dataclass(frozen=True)
class VersionEvent:
    """The ``data`` of a ``model_version.*`` event: the one shape every sender uses (the
    registration, a cold start, a promotion or rollback by hand)."""

    model_name: str
    version: str
    aliases: list[str]
    promoted: bool
    reason: str
    model_uuid: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    contributions: list[str] = field(default_factory=list)
    # Per new contribution of a registration: value, interval, leave-one-out delta, status.
    contribution_values: list[dict[str, Any]] = field(default_factory=list)
    delta_intervals: dict[str, dict[str, float]] = field(default_factory=dict)
    attestation_sha256: str | None = None
    how: str = "pipeline"  # or "manual", "rollback"
    by: str | None = None  # who, for a change by hand
    previous_version: str | None = None  # the champion before, when it moved

    def types(self) -> list[str]:
        """The events it is: a registration (promoted or not), or a champion moved by hand."""
        if self.how != "pipeline":
            return [PROMOTED]
        return [REGISTERED, PROMOTED] if self.promoted else [REGISTERED]

    def data(self) -> dict[str, Any]:
        return asdict(self)


def sign(keys: list[bytes], event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<base64>`` for each key, space-separated."""
    import hashlib
    import hmac

    content = f"{event_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        for key in keys
    )


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    status: int | None  # the HTTP status, None when the receiver was not reached
    retryable: bool
    detail: str


def signed_headers(keys: list[bytes], event: WebhookEvent, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of ``event`` sent now with ``body``, signed with every
    key."""
    now = int(time.time())
    return {
        "Content-Type": "application/json",
        "webhook-id": event.id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(keys, event.id, now, body),
    }


def attempt(url: str, keys: list[bytes], event: WebhookEvent, *, timeout: float) -> Attempt:
    """POST ``event`` once, signed with every key."""
    body = event.body()
    headers = signed_headers(keys, event, body)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Attempt(True, response.status, False, f"delivered (HTTP {response.status})")
    except urllib.error.HTTPError as exc:
        retryable = exc.code >= 500 or exc.code in RETRYABLE_STATUSES
        return Attempt(False, exc.code, retryable, f"HTTP {exc.code}")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(False, None, True, f"not reached ({type(reason).__name__}: {reason})")


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try: each attempt's timeout, the wait after the n-th failure
    (``first_wait * 2**(n-1)``, at most ``max_wait``), and the age after which an event is
    given up (moved to ``dead/``)."""

    timeout: float = 5.0
    first_wait: float = 10.0
    max_wait: float = 600.0
    max_age: float = 24 * 3600.0

    def wait_after(self, failures: int) -> float:
        return min(self.max_wait, self.first_wait * 2 ** max(0, failures - 1))


@dataclass(frozen=True)
class Pending:
    """An event in the outbox with what happened to it so far."""

    event: WebhookEvent
    queued_at: float
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""
    history: list[str] = field(default_factory=list)


class Outbox:
    """Events waiting for delivery, one JSON file each under ``root/pending``; events given up
    (refused, or too old) under ``root/dead`` with the reason, for a person to look at."""

    def __init__(self, root: Path) -> None:
        self.pending = root / "pending"
        self.dead = root / "dead"

    def put(self, event: WebhookEvent) -> Pending:
        """Keep ``event`` for delivery: written (atomically) before anything is sent."""
        entry = Pending(event, queued_at=time.time())
        self._write(entry)
        return entry

    def _write(self, entry: Pending) -> None:
        write_json(asdict(entry), self.pending / f"{entry.event.id}.json")

    def waiting(self) -> list[Pending]:
        """Every pending event, oldest first."""
        entries = []
        for path in self.pending.glob("*.json"):
            try:
                stored = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # being written or removed by another process
            stored["event"] = WebhookEvent(**stored["event"])
            entries.append(Pending(**stored))
        return sorted(entries, key=lambda entry: (entry.queued_at, entry.event.id))

    def dead_events(self) -> list[dict[str, Any]]:
        return [json.loads(path.read_text()) for path in sorted(self.dead.glob("*.json"))]

    def deliver(
        self,
        entry: Pending,
        url: str,
        keys: list[bytes],
        policy: DeliveryPolicy,
        send: Callable[..., Attempt] | None = None,
    ) -> tuple[str, str]:
        """One attempt at ``entry``; returns (outcome, line for the log), outcome being
        ``delivered``, ``waiting`` or ``dead``. The outbox records the outcome. ``send``
        makes the attempt (default :func:`attempt`; a contributor's URL is sent to by one
        that guards against requests to private addresses)."""
        result = (send or attempt)(url, keys, entry.event, timeout=policy.timeout)
        path = self.pending / f"{entry.event.id}.json"
        label = f"{entry.event.type} {entry.event.id}"
        if result.delivered:
            path.unlink(missing_ok=True)
            return "delivered", f"{label} delivered"
        failures = entry.attempts + 1
        now = time.time()
        stamped = f"{datetime.now(UTC).isoformat(timespec='seconds')} {result.detail}"
        updated = replace(
            entry,
            attempts=failures,
            next_attempt_at=now + policy.wait_after(failures),
            last_error=result.detail,
            history=[*entry.history, stamped][-20:],
        )
        too_old = now - entry.queued_at > policy.max_age
        if not result.retryable or too_old:
            why = result.detail + (
                f"; given up after {failures} attempt(s) over {policy.max_age:.0f} s"
                if result.retryable
                else ": refused by the receiver, not retried"
            )
            write_json({**asdict(updated), "why": why}, self.dead / f"{entry.event.id}.json")
            path.unlink(missing_ok=True)
            return "dead", f"{label} not delivered: {why}"
        self._write(updated)
        wait = policy.wait_after(failures)
        return "waiting", f"{label} not delivered ({result.detail}); next attempt in {wait:.0f} s"

    def retry_now(self, *, dead_too: bool = False) -> int:
        """Make every pending event (and, with ``dead_too``, every given-up one, its age
        restarted) due at once, after a receiver is fixed; returns how many."""
        entries = self.waiting()
        for entry in entries:
            self._write(replace(entry, next_attempt_at=0.0))
        if dead_too:
            for path in sorted(self.dead.glob("*.json")):
                stored = json.loads(path.read_text())
                stored.pop("why", None)
                stored["event"] = WebhookEvent(**stored["event"])
                revived = replace(Pending(**stored), queued_at=time.time(), next_attempt_at=0.0)
                self._write(revived)
                path.unlink()
                entries.append(revived)
        return len(entries)


def send(
    outbox: Outbox,
    url: str,
    keys: list[bytes],
    event: WebhookEvent,
    policy: DeliveryPolicy,
) -> str:
    """Put ``event`` in the outbox, then try it once; a line saying what happened. A failed
    attempt leaves it for :func:`deliver_due`."""
    return outbox.deliver(outbox.put(event), url, keys, policy)[1]


def deliver_due(
    outbox: Outbox,
    url: str,
    keys: list[bytes],
    policy: DeliveryPolicy,
    *,
    budget_seconds: float = 20.0,
) -> dict[str, int]:
    """Try every event whose next attempt is due, oldest first, within ``budget_seconds``
    (a slow receiver cannot hold the caller longer than that and one attempt's timeout)."""
    counts = {"delivered": 0, "waiting": 0, "dead": 0, "not_due": 0}
    started = time.monotonic()
    waiting = outbox.waiting()
    now = time.time()
    for entry in waiting:
        if entry.next_attempt_at > now or time.monotonic() - started > budget_seconds:
            counts["not_due"] += 1
            continue
        outcome, _ = outbox.deliver(entry, url, keys, policy)
        counts[outcome] += 1
    return counts


def announce(
    event: VersionEvent,
    *,
    url: str,
    secret: str,
    outbox: Path,
    max_age: float,
    timeout: float = 2.0,
) -> list[str]:
    """Queue every event ``event`` is (``VersionEvent.types``) and try each once within
    ``timeout`` seconds; lines for the log. What the command line announces a champion it
    moved with, as the ``Webhooks`` resource does for the pipeline."""
    keys, policy = parse_secrets(secret), DeliveryPolicy(timeout=timeout, max_age=max_age)
    box = Outbox(outbox)
    lines = [
        send(box, url, keys, WebhookEvent.new(event_type, event.data()), policy)
        for event_type in event.types()
    ]
    return [line for line in lines if line]
