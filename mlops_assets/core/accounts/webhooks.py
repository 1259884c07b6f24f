"""Per-account webhooks: a contributor registers a URL of its own and hears, as Standard
Webhooks signed with a secret of its own, when each of its contributions is checked, valued,
trained on, excluded or withdrawn. Events go through the registry's outbox (same retries).

A contributor's URL is a request the server makes on their behalf: it must never reach the
server's own network. A URL is refused unless every address its host resolves to is public
(not loopback, private, link-local, metadata, multicast, reserved), checked when it is
registered and again at every delivery, and the connection goes to the address that was
checked (no second lookup a rebinding DNS could answer differently); redirects are never
followed. ``allow_private`` (``MLOPS_WEBHOOK_ALLOW_PRIVATE``) lifts this for trusted setups.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlops_assets.core.catalog.catalog import engine
from mlops_assets.core.registry.webhooks import (
    RETRYABLE_STATUSES,
    Attempt,
    DeliveryPolicy,
    Outbox,
    WebhookEvent,
    new_secret,
    parse_secrets,
    signed_headers,
)
from mlops_assets.errors import NotFoundError, UploadRefusedError

if TYPE_CHECKING:
    from mlops_assets.core.accounts.store import AccountStore
    from mlops_assets.core.catalog.catalog import ContributionCatalog

MAX_URL = 2000
# Timeline steps (see ``timeline``) and the event each is told as.
EVENTS = {
    "ingested": "contribution.checked",
    "refused": "contribution.checked",
    "duplicate": "contribution.checked",
    "valued": "contribution.valued",
    "excluded": "contribution.excluded",
    "trained_on": "contribution.trained_on",
    "withdrawn": "contribution.withdrawn",
}


class WebhookRefusedError(UploadRefusedError):
    """A webhook URL that will not be called (its scheme, or where it leads)."""

    code = "WEBHOOK_REFUSED"


def _refused(url: str, why: str) -> WebhookRefusedError:
    return WebhookRefusedError(
        f"the webhook URL is refused: {why}",
        hint="give a public http(s) URL of a receiver of yours",
    )


def vetted_address(url: str, *, allow_private: bool) -> str:
    """The address to connect to for ``url``: its host resolved, every address checked.
    Raises :class:`WebhookRefusedError` naming why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise _refused(url, "only http and https URLs are called")
    if not parts.hostname:
        raise _refused(url, "it names no host")
    if parts.username or parts.password:
        raise _refused(url, "credentials in a URL would be sent to whoever serves it")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise _refused(url, f"its host cannot be resolved ({exc})") from exc
    addresses = sorted({info[4][0] for info in found})
    if not addresses:
        raise _refused(url, "its host resolves to no address")
    if not allow_private:
        for address in addresses:
            if problem := _private(address):
                raise _refused(url, f"its host resolves to {address}, {problem}")
    return addresses[0]


def _private(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "not a public address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "not a public address"
    return None


def guarded_attempt(allow_private: bool):
    """An attempt function for :meth:`Outbox.deliver` that vets the URL's address at every
    delivery, connects to that address, and follows no redirect."""

    def send(url: str, keys: list[bytes], event: WebhookEvent, *, timeout: float) -> Attempt:
        try:
            address = vetted_address(url, allow_private=allow_private)
        except WebhookRefusedError as exc:
            return Attempt(False, None, False, exc.message)
        parts = urlsplit(url)
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        extra = {"context": ssl.create_default_context()} if parts.scheme == "https" else {}
        connection = kind(parts.hostname, parts.port, timeout=timeout, **extra)
        # The checked address, not a second lookup; TLS still checks the URL's host name.
        connection._create_connection = lambda where, *args: socket.create_connection(  # type: ignore[attr-defined]
            (address, where[1]), *args
        )
        body = event.body()
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = signed_headers(keys, event, body)
        try:
            connection.request("POST", path, body=body, headers=headers)
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return Attempt(False, None, True, f"not reached ({type(exc).__name__}: {exc})")
        finally:
            connection.close()
        if 200 <= status < 300:
            return Attempt(True, status, False, f"delivered (HTTP {status})")
        if 300 <= status < 400:
            return Attempt(False, status, False, f"HTTP {status}: redirects are not followed")
        retryable = status >= 500 or status in RETRYABLE_STATUSES
        return Attempt(False, status, retryable, f"HTTP {status}")

    return send


@dataclass(frozen=True)
class AccountWebhook:
    account: str
    url: str
    secret: str
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "secret": self.secret, "created_at": self.created_at}


class WebhookStore:
    """Accounts' webhooks, the events already queued for them and every delivery attempt, in
    the catalog's database."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self._engine = engine(url)
        meta = sa.MetaData()
        self.hooks = sa.Table(
            "mlops_account_webhooks",
            meta,
            sa.Column("account", sa.String(64), primary_key=True),
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("secret", sa.String(100), nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
        )
        # One row per event ever queued: its id is made from what it tells, so it is queued
        # once however many processes look.
        self.events = sa.Table(
            "mlops_webhook_events",
            meta,
            sa.Column("event_id", sa.String(80), primary_key=True),
            sa.Column("account", sa.String(64), nullable=False, index=True),
            sa.Column("queued_at", sa.Float, nullable=False),
        )
        self.deliveries = sa.Table(
            "mlops_webhook_deliveries",
            meta,
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
            sa.Column("account", sa.String(64), nullable=False, index=True),
            sa.Column("event_id", sa.String(80), nullable=False),
            sa.Column("event_type", sa.String(60), nullable=False),
            sa.Column("contribution_id", sa.String(300)),
            sa.Column("attempted_at", sa.Float, nullable=False),
            sa.Column("outcome", sa.String(20), nullable=False),
            sa.Column("detail", sa.Text, nullable=False),
        )
        try:
            meta.create_all(self._engine, checkfirst=True)
        except (sa.exc.ProgrammingError, sa.exc.IntegrityError):
            meta.create_all(self._engine, checkfirst=True)

    def put(self, account: str, url: str, *, allow_private: bool) -> AccountWebhook:
        """Register (or move) ``account``'s webhook; its secret is kept when the URL moves."""
        if len(url) > MAX_URL:
            raise _refused(url, f"longer than {MAX_URL} characters")
        vetted_address(url, allow_private=allow_private)
        known = self.get(account, missing_ok=True)
        hook = AccountWebhook(
            account,
            url,
            known.secret if known else new_secret(),
            known.created_at if known else time.time(),
        )
        with self._engine.begin() as db:
            db.execute(self.hooks.delete().where(self.hooks.c.account == account))
            db.execute(self.hooks.insert().values(**hook.__dict__))
        return hook

    def get(self, account: str, *, missing_ok: bool = False) -> AccountWebhook | None:
        with self._engine.connect() as db:
            row = db.execute(self.hooks.select().where(self.hooks.c.account == account)).first()
        if row is None and not missing_ok:
            raise NotFoundError("no webhook is registered", hint="PUT /api/v1/webhook {url}")
        return AccountWebhook(**row._mapping) if row is not None else None

    def delete(self, account: str) -> None:
        self.get(account)
        with self._engine.begin() as db:
            db.execute(self.hooks.delete().where(self.hooks.c.account == account))

    def all(self) -> list[AccountWebhook]:
        with self._engine.connect() as db:
            return [AccountWebhook(**row._mapping) for row in db.execute(self.hooks.select())]

    def first_time(self, event_id: str, account: str) -> bool:
        """Whether ``event_id`` is new (and now taken): the database lets one process in."""
        import sqlalchemy as sa

        try:
            with self._engine.begin() as db:
                db.execute(
                    self.events.insert().values(
                        event_id=event_id, account=account, queued_at=time.time()
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def log(self, account: str, event: WebhookEvent, outcome: str, detail: str) -> None:
        with self._engine.begin() as db:
            db.execute(
                self.deliveries.insert().values(
                    account=account,
                    event_id=event.id,
                    event_type=event.type,
                    contribution_id=event.data.get("contribution_id"),
                    attempted_at=time.time(),
                    outcome=outcome,
                    detail=detail,
                )
            )

    def deliveries_of(self, account: str, *, limit: int = 50) -> list[dict[str, Any]]:
        d = self.deliveries.c
        query = (
            self.deliveries.select()
            .where(d.account == account)
            .order_by(d.attempted_at.desc(), d.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as db:
            return [
                {k: v for k, v in row._mapping.items() if k not in ("id", "account")}
                for row in db.execute(query)
            ]


class ContributorNotifier:
    """Finds what is new on the timelines of the contributions of accounts with a webhook,
    queues one event per step (never twice), and delivers what is due. ``timeline_of``
    gives a contribution's timeline; ``catalog()`` the catalog."""

    def __init__(
        self,
        hooks: WebhookStore,
        accounts: AccountStore,
        catalog: Any,
        timeline_of: Any,
        outboxes: Path,
        *,
        allow_private: bool,
        policy: DeliveryPolicy,
    ) -> None:
        self.hooks, self.accounts, self.catalog, self.timeline_of = (
            hooks,
            accounts,
            catalog,
            timeline_of,
        )
        self.outboxes, self.allow_private, self.policy = outboxes, allow_private, policy

    def outbox(self, account: str) -> Outbox:
        return Outbox(self.outboxes / account)

    def tick(self, *, budget_seconds: float = 20.0) -> dict[str, int]:
        """Queue the new events of every account with a webhook, then try what is due."""
        counts = {"queued": 0, "delivered": 0, "waiting": 0, "dead": 0}
        started = time.monotonic()
        for hook in self.hooks.all():
            catalog: ContributionCatalog = self.catalog()
            box = self.outbox(hook.account)
            for entry in catalog.entries(contributor=hook.account):
                cid = entry.report.contribution_id
                for step in self.timeline_of(entry):
                    if step["step"] not in EVENTS or (step["at"] or time.time()) < hook.created_at:
                        continue
                    event = _event(hook.account, cid, step)
                    if self.hooks.first_time(event.id, hook.account):
                        box.put(event)
                        counts["queued"] += 1
            keys = parse_secrets(hook.secret)
            send = guarded_attempt(self.allow_private)
            for pending in box.waiting():
                if pending.next_attempt_at > time.time():
                    continue
                if time.monotonic() - started > budget_seconds:
                    break
                outcome, line = box.deliver(pending, hook.url, keys, self.policy, send)
                self.hooks.log(hook.account, pending.event, outcome, line)
                counts[outcome] += 1
        return counts


def _event(account: str, contribution_id: str, step: dict[str, Any]) -> WebhookEvent:
    """The event of one timeline step; its id is the same whoever makes it, whenever."""
    what = f"{account}\0{contribution_id}\0{step['step']}\0{step.get('version') or ''}"
    event = WebhookEvent.new(
        EVENTS[step["step"]],
        {
            "contribution_id": contribution_id,
            "contributor": account,
            "step": step["step"],
            "at": step["at"],
            "detail": step["detail"],
            "version": step.get("version"),
        },
    )
    return WebhookEvent(
        event.type,
        event.data,
        id=f"msg_{hashlib.sha256(what.encode()).hexdigest()[:32]}",
        timestamp=event.timestamp,
    )
