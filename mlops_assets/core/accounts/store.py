"""Contributor accounts, their tokens, their uploads and idempotency keys, in the contribution
catalog's database (``mlops_`` tables beside the catalog's; SQLite or PostgreSQL).

A token is shown once and stored only as its sha256: 32 random bytes
(``secrets.token_urlsafe``) need no slow hash, since no dictionary can guess them. An account
may hold several tokens, so one can be rotated without locking its scripts out.

Long on purpose: one schema of four tables, and the reads and writes that keep them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_assets.core.catalog.catalog import engine
from mlops_assets.core.common.names import unsafe_characters
from mlops_assets.core.intake.landing import entry_problem
from mlops_assets.errors import (
    AccountDisabledError,
    AccountInvalidError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

TOKEN_PREFIX = "mlops_"
MAX_ACCOUNT_NAME = 64
MAX_DISPLAY_NAME = 100
# An account name is a contributor folder, a URL segment and a tag value: plain characters.
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# An upload still "in progress" after this long was cut off (the process died): its key may
# be used again.
STALE_CLAIM_SECONDS = 3600.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_account_name(name: str) -> None:
    """Refuse a name the landing zone would refuse as a contributor folder, or one that is
    not plain letters, digits, ``.``, ``_`` and ``-`` (it names a folder, URLs and tags)."""
    problem = entry_problem([name, "file"]) if name else "an empty name"
    if problem is None and (len(name) > MAX_ACCOUNT_NAME or not _ACCOUNT_NAME.fullmatch(name)):
        problem = (
            f"use 1 to {MAX_ACCOUNT_NAME} letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    if problem:
        raise AccountInvalidError(
            f"the account name is refused: {problem}",
            hint="pick a plain name such as alice or lab-42",
        )


def check_display_name(display_name: str) -> None:
    """A display name is shown to others (the scoreboard): any text but control or invisible
    characters (a right-to-left override would reverse what it shows), within 100
    characters. Markup is kept as text: every page escapes it."""
    if not display_name.strip():
        raise AccountInvalidError("the display name is empty", hint="give a name people know")
    if len(display_name) > MAX_DISPLAY_NAME:
        raise AccountInvalidError(
            f"the display name is {len(display_name)} characters long; at most "
            f"{MAX_DISPLAY_NAME} are allowed",
            hint="shorten it",
        )
    if unsafe := unsafe_characters(display_name):
        raise AccountInvalidError(
            f"the display name holds control or invisible characters ({', '.join(unsafe)})",
            hint="type it again without them (a right-to-left override reverses what it shows)",
        )


@dataclass(frozen=True)
class Account:
    """A contributor: its id is the contributor id everywhere (the landing folder, reports,
    registry tags, attestations)."""

    name: str
    display_name: str
    public: bool
    disabled: bool
    created_at: float
    tokens: int = 0  # how many tokens are active

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "public": self.public,
            "disabled": self.disabled,
            "created_at": self.created_at,
            "tokens": self.tokens,
        }


@dataclass(frozen=True)
class UploadRecord:
    """One upload through the API: where it landed and what the pre-check said."""

    account: str
    contribution_id: str
    landing_path: str
    file_name: str
    sha256: str
    size: int
    license: str
    consent_at: float
    uploaded_at: float
    verdict: dict[str, Any]


class AccountStore:
    """The accounts' tables in the database at ``url`` (the catalog's); created on first
    use."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self._engine = engine(url)
        meta = sa.MetaData()
        name = sa.String(MAX_ACCOUNT_NAME)
        self.accounts = sa.Table(
            "mlops_accounts",
            meta,
            sa.Column("name", name, primary_key=True),
            sa.Column("display_name", sa.String(MAX_DISPLAY_NAME * 4), nullable=False),
            sa.Column("public", sa.Boolean, nullable=False, default=False),
            sa.Column("disabled", sa.Boolean, nullable=False, default=False),
            sa.Column("created_at", sa.Float, nullable=False),
        )
        self.tokens = sa.Table(
            "mlops_tokens",
            meta,
            sa.Column("token_sha256", sa.String(64), primary_key=True),
            sa.Column("account", name, nullable=False, index=True),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("revoked_at", sa.Float),
        )
        self.idempotency = sa.Table(
            "mlops_idempotency_keys",
            meta,
            sa.Column("account", name, primary_key=True),
            sa.Column("key", sa.String(200), primary_key=True),
            # What the key was first used for: the same key for another upload is a conflict.
            sa.Column("fingerprint", sa.String(64), nullable=False),
            sa.Column("claimed_at", sa.Float, nullable=False),
            sa.Column("response", sa.Text),  # None while the upload is under way
        )
        self.uploads = sa.Table(
            "mlops_uploads",
            meta,
            sa.Column("contribution_id", sa.String(300), primary_key=True),
            sa.Column("account", name, nullable=False, index=True),
            sa.Column("landing_path", sa.Text, nullable=False),
            sa.Column("file_name", sa.Text, nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False, index=True),
            sa.Column("size", sa.BigInteger, nullable=False),
            sa.Column("license", sa.String(100), nullable=False),
            sa.Column("consent_at", sa.Float, nullable=False),
            sa.Column("uploaded_at", sa.Float, nullable=False, index=True),
            sa.Column("verdict", sa.Text, nullable=False),
        )
        try:
            meta.create_all(self._engine, checkfirst=True)
        except (sa.exc.ProgrammingError, sa.exc.IntegrityError):
            meta.create_all(self._engine, checkfirst=True)  # another process made them first

    # ---- accounts (the operator's) ------------------------------------------------------

    def add(self, name: str, display_name: str, *, public: bool = False) -> tuple[Account, str]:
        """A new account and its first token (shown once, stored as a hash)."""
        import sqlalchemy as sa

        check_account_name(name)
        check_display_name(display_name)
        now, token = time.time(), new_token()
        try:
            with self._engine.begin() as db:
                db.execute(
                    self.accounts.insert().values(
                        name=name,
                        display_name=display_name,
                        public=public,
                        disabled=False,
                        created_at=now,
                    )
                )
                db.execute(
                    self.tokens.insert().values(
                        token_sha256=token_hash(token), account=name, created_at=now
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise ConflictError(
                f"an account named {name} exists already",
                hint="pick another name, or `mlops contributors rotate NAME` for a new token",
            ) from exc
        return self.get(name), token

    def get(self, name: str) -> Account:
        accounts = self.list(names=[name])
        if not accounts:
            raise NotFoundError(
                f"no account named {name}", hint="`mlops contributors list` shows them"
            )
        return accounts[0]

    def list(self, *, names: list[str] | None = None) -> list[Account]:
        import sqlalchemy as sa

        a, t = self.accounts.c, self.tokens.c
        active = (
            sa.select(sa.func.count())
            .where(t.account == a.name, t.revoked_at.is_(None))
            .scalar_subquery()
        )
        query = sa.select(self.accounts, active.label("active")).order_by(a.name)
        if names is not None:
            query = query.where(a.name.in_(names))
        with self._engine.connect() as db:
            return [
                Account(
                    r.name, r.display_name, bool(r.public), bool(r.disabled), r.created_at, r.active
                )
                for r in db.execute(query)
            ]

    def set_disabled(self, name: str, disabled: bool) -> Account:
        self.get(name)
        with self._engine.begin() as db:
            where = self.accounts.c.name == name
            db.execute(self.accounts.update().where(where).values(disabled=disabled))
        return self.get(name)

    def rotate(self, name: str, *, revoke_old: bool = False) -> str:
        """A new token for ``name`` (the old ones stay valid unless ``revoke_old``)."""
        self.get(name)
        now, token = time.time(), new_token()
        t = self.tokens.c
        with self._engine.begin() as db:
            if revoke_old:
                db.execute(
                    self.tokens.update()
                    .where(t.account == name, t.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
            db.execute(
                self.tokens.insert().values(
                    token_sha256=token_hash(token), account=name, created_at=now
                )
            )
        return token

    # ---- signing in ---------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Account:
        """The account ``token`` belongs to. The stored hash is found by index, then compared
        in constant time; an unknown or revoked token and a malformed one fail alike."""
        failed = AuthenticationError(
            "missing or unknown token", hint="send `Authorization: Bearer <your token>`"
        )
        if not token or len(token) > 200:
            raise failed
        digest = token_hash(token)
        t = self.tokens.c
        with self._engine.connect() as db:
            row = db.execute(
                self.tokens.select().where(t.token_sha256 == digest, t.revoked_at.is_(None))
            ).first()
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            raise failed
        account = self.get(row.account)
        if account.disabled:
            raise AccountDisabledError(
                f"the account {account.name} is disabled",
                hint="ask the operator to enable it (`mlops contributors enable`)",
            )
        return account

    # ---- idempotency keys ---------------------------------------------------------------

    def claim(self, account: str, key: str, fingerprint: str) -> dict[str, Any] | None:
        """Take ``key`` for an upload of ``fingerprint``: None when it is new (the caller
        uploads, then :meth:`settle`), the stored answer when that upload is done. The
        database's primary key decides a race: of two requests with one key, one claims it
        and the other is told it is in progress (409)."""
        import sqlalchemy as sa

        i = self.idempotency.c
        where = (i.account == account) & (i.key == key)
        now = time.time()
        try:
            with self._engine.begin() as db:
                db.execute(
                    self.idempotency.insert().values(
                        account=account, key=key, fingerprint=fingerprint, claimed_at=now
                    )
                )
            return None
        except sa.exc.IntegrityError:
            pass
        with self._engine.begin() as db:
            row = db.execute(self.idempotency.select().where(where)).first()
            if row is None:  # released meanwhile: take it
                db.execute(
                    self.idempotency.insert().values(
                        account=account, key=key, fingerprint=fingerprint, claimed_at=now
                    )
                )
                return None
            if row.fingerprint != fingerprint:
                raise ConflictError(
                    "this Idempotency-Key was used for another upload (another file name, "
                    "license or content)",
                    hint="use a new key for each new upload; the same key only to retry one",
                )
            if row.response is not None:
                return json.loads(row.response)
            if now - row.claimed_at > STALE_CLAIM_SECONDS:  # its process died: take it over
                db.execute(self.idempotency.update().where(where).values(claimed_at=now))
                return None
        raise ConflictError(
            "an upload with this Idempotency-Key is still in progress",
            hint="wait for it to finish, then retry with the same key for its answer",
        )

    def settle(self, account: str, key: str, response: dict[str, Any]) -> None:
        i = self.idempotency.c
        with self._engine.begin() as db:
            db.execute(
                self.idempotency.update()
                .where((i.account == account) & (i.key == key))
                .values(response=json.dumps(response, sort_keys=True))
            )

    def release(self, account: str, key: str) -> None:
        """Forget a claim whose upload failed: a retry with the key uploads again."""
        i = self.idempotency.c
        with self._engine.begin() as db:
            db.execute(
                self.idempotency.delete().where(
                    (i.account == account) & (i.key == key) & i.response.is_(None)
                )
            )

    # ---- uploads ------------------------------------------------------------------------

    def record_upload(self, upload: UploadRecord) -> None:
        values = {**upload.__dict__, "verdict": json.dumps(upload.verdict, sort_keys=True)}
        with self._engine.begin() as db:
            db.execute(self.uploads.insert().values(**values))

    def set_verdict(self, contribution_id: str, verdict: dict[str, Any]) -> None:
        """Record the pre-check's verdict of an upload checked after it was answered."""
        u = self.uploads.c
        with self._engine.begin() as db:
            db.execute(
                self.uploads.update()
                .where(u.contribution_id == contribution_id)
                .values(verdict=json.dumps(verdict, sort_keys=True))
            )

    def forget_upload(self, contribution_id: str) -> None:
        """Drop the record of an upload that did not land (the landing zone failed)."""
        with self._engine.begin() as db:
            db.execute(
                self.uploads.delete().where(self.uploads.c.contribution_id == contribution_id)
            )

    def uploads_of(
        self, account: str, *, ids: list[str] | None = None, sha256: str | None = None
    ) -> list[UploadRecord]:
        u = self.uploads.c
        query = self.uploads.select().where(u.account == account).order_by(u.uploaded_at)
        if ids is not None:
            query = query.where(u.contribution_id.in_(ids))
        if sha256 is not None:
            query = query.where(u.sha256 == sha256)
        with self._engine.connect() as db:
            return [self._upload(row) for row in db.execute(query)]

    def upload(self, contribution_id: str) -> UploadRecord | None:
        with self._engine.connect() as db:
            row = db.execute(
                self.uploads.select().where(self.uploads.c.contribution_id == contribution_id)
            ).first()
        return self._upload(row) if row is not None else None

    def any_upload_of(self, sha256: str) -> UploadRecord | None:
        """The first upload of these bytes, by any account."""
        u = self.uploads.c
        with self._engine.connect() as db:
            row = db.execute(
                self.uploads.select().where(u.sha256 == sha256).order_by(u.uploaded_at).limit(1)
            ).first()
        return self._upload(row) if row is not None else None

    @staticmethod
    def _upload(row: sa.Row) -> UploadRecord:
        values = dict(row._mapping)
        values["verdict"] = json.loads(values["verdict"])
        return UploadRecord(**values)
