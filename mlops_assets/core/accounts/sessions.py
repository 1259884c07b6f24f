"""The portal's sign-in sessions: a random id (the cookie) for an account, with its own CSRF
token, kept in this process's memory (one process serves the portal). The token that signed
in is never kept, only its sha256 (as the account store keeps it): a session lasts only as
long as that token is not revoked and the account not disabled."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_assets.errors import NotFoundError

if TYPE_CHECKING:
    from mlops_assets.core.accounts.store import Account, AccountStore

# A session ends after this long without a request, and after a working day whatever happens.
IDLE_SECONDS = 2 * 3600.0
MAX_SECONDS = 12 * 3600.0
MAX_SESSIONS = 100_000


@dataclass
class Session:
    """One signed-in browser: ``account`` (the name), ``token_sha256`` (of the token that
    signed in), ``csrf`` (the token every form of the session carries), and what the last
    upload answered (shown after its redirect)."""

    id: str
    account: str
    token_sha256: str
    csrf: str
    created_at: float
    seen_at: float
    last_upload: dict[str, Any] | None = field(default=None)


def same_token(given: str | None, expected: str) -> bool:
    """Whether a form's CSRF token is the session's, compared in constant time."""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())  # type: ignore[union-attr]


class Sessions:
    """Sessions by id; an expired one is gone, as one that never existed."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, account: str, token_sha256: str) -> Session:
        """A new session for ``account``, signed in with the token of ``token_sha256`` (a new
        id at every sign-in: no fixation)."""
        now = self._clock()
        session = Session(
            secrets.token_urlsafe(32), account, token_sha256, secrets.token_urlsafe(32), now, now
        )
        with self._lock:
            if len(self._by_id) >= MAX_SESSIONS:
                self._forget_expired(now)
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of ``session_id`` (its idle time starts again), or None."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if now - session.seen_at > IDLE_SECONDS or now - session.created_at > MAX_SECONDS:
                del self._by_id[session_id]
                return None
            session.seen_at = now
            return session

    def close(self, session_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(session_id or "", None)

    def _forget_expired(self, now: float) -> None:
        for sid, s in list(self._by_id.items()):
            if now - s.seen_at > IDLE_SECONDS or now - s.created_at > MAX_SECONDS:
                del self._by_id[sid]
        if len(self._by_id) >= MAX_SESSIONS:  # all live: the oldest go
            for sid in sorted(self._by_id, key=lambda s: self._by_id[s].seen_at)[
                : MAX_SESSIONS // 10
            ]:
                del self._by_id[sid]


def session_account(accounts: AccountStore, session: Session) -> Account | None:
    """The session's account while the token that opened it is still active and the account
    enabled; None otherwise (the session must end: a revoked token or a disabled account
    signs its browsers out at their next request)."""
    import sqlalchemy as sa

    from mlops_assets.core.catalog.catalog import engine

    t = accounts.tokens.c
    with engine(accounts.url).connect() as db:
        owner = db.execute(
            sa.select(t.account).where(
                t.token_sha256 == session.token_sha256, t.revoked_at.is_(None)
            )
        ).scalar()
    if owner != session.account:
        return None
    try:
        account = accounts.get(session.account)
    except NotFoundError:
        return None
    return None if account.disabled else account
