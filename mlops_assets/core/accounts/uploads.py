"""Uploading: a contribution's bytes received (:class:`Spool`), checked on what the request
says before a byte is read (:meth:`UploadDesk.prepare_upload`), pre-checked (a large one in
the background, :mod:`~mlops_assets.core.accounts.checks`), placed in the landing zone with
its sidecar, and answered once per idempotency key (:meth:`UploadDesk.upload`)."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.core.accounts.checks import CHECKING, BackgroundChecks, checking_answer
from mlops_assets.core.accounts.spool import Spool
from mlops_assets.core.accounts.store import Account, AccountStore, UploadRecord
from mlops_assets.core.common.names import safe_text
from mlops_assets.core.intake.landing import (
    SIDECAR_SUFFIX,
    contribution_key,
    entry_problem,
    is_waiting,
)
from mlops_assets.errors import (
    ConflictError,
    ContributionTooLargeError,
    ContributionUnreadableError,
    NotFoundError,
    UploadRefusedError,
)

if TYPE_CHECKING:
    from mlops_assets.core.catalog.catalog import ContributionCatalog
    from mlops_assets.core.intake.report import ContributionReport
    from mlops_assets.core.storage.places import Landing

MAX_FILE_NAME = 200


def verdict_of(report: ContributionReport) -> dict[str, Any]:
    """What an upload's answer says of its report."""
    return {
        "accepted": report.accepted,
        "decision": report.decision,
        "hint": report.hint,
        "hints": report.hints,
        "rows_in": report.rows_in,
        "rows_clean": report.rows_clean,
        "rows_rejected": report.rows_rejected,
        "rejection_reasons": report.rejection_reasons,
        "quality_score": report.quality_score,
    }


@dataclass(frozen=True)
class UploadRequest:
    """An upload checked before a byte of it is read: who, under which name, license and
    consent."""

    account: str
    file_name: str
    license: str
    consent_at: float

    @property
    def landing_path(self) -> str:
        return f"{self.account}/{self.file_name}"

    @property
    def contribution_id(self) -> str:
        # The key the landing-zone sensor gives the file: one id from upload to model.
        return contribution_key(self.landing_path)


@dataclass(frozen=True)
class PortalConfig:
    licenses: tuple[str, ...]
    max_upload_bytes: int
    # Larger uploads are answered at once and checked in the background (None: never).
    check_inline_bytes: int | None = None


# An upload's verdict while its pre-check runs in the background, and its status meanwhile.
PENDING: dict[str, Any] = {}


class UploadDesk:
    """The upload use case over the accounts' tables, the catalog (``catalog()``), the
    landing zone and the pre-check (``check``)."""

    def __init__(
        self,
        accounts: AccountStore,
        catalog: Callable[[], ContributionCatalog],
        landing: Landing,
        check: Callable[[Path, str], ContributionReport],
        config: PortalConfig,
        checks: BackgroundChecks | None = None,
    ) -> None:
        self.accounts, self.catalog, self.landing = accounts, catalog, landing
        self._check, self.config = check, config
        self.checks = checks or BackgroundChecks()

    def prepare_upload(
        self, account: Account, file_name: str, license: str, consent: bool
    ) -> UploadRequest:
        """Refuse an upload on what its request says, before its body is read: a name the
        landing zone would refuse, a license not offered, no consent."""
        problem = entry_problem([account.name, file_name]) if file_name else "an empty name"
        if problem is None and is_waiting(file_name):
            problem = f"names ending {SIDECAR_SUFFIX}, .part, .tmp or ~ are not contributions"
        if problem is None and len(file_name) > MAX_FILE_NAME:
            problem = f"longer than {MAX_FILE_NAME} characters"
        if problem:
            raise UploadRefusedError(
                f"the file name {safe_text(file_name, limit=80)!r} is refused: {problem}",
                hint="rename the file with a plain name, e.g. flowers-2026.csv",
            )
        if license not in self.config.licenses:
            raise UploadRefusedError(
                f"the license {safe_text(license, limit=40)!r} is not offered",
                hint=f"choose one of {', '.join(self.config.licenses)}",
            )
        if not consent:
            raise UploadRefusedError(
                "consent was not given: data is used to train and evaluate models only with "
                "its contributor's consent",
                hint="send consent=true to agree that this file may be used to train models",
            )
        return UploadRequest(account.name, file_name, license, time.time())

    def upload(
        self,
        request: UploadRequest,
        spool: Spool,
        *,
        idempotency_key: str | None = None,
        wait: bool = False,
    ) -> dict[str, Any]:
        """Take a fully received upload: pre-check it, place it in the landing zone as
        ``<account>/<file>`` with its sidecar (license, consent), and answer with the
        pre-check's verdict. The same ``idempotency_key`` gives the same answer (the upload
        is done once); the same bytes as an earlier contribution give that one back, not
        landed again.

        An upload larger than ``config.check_inline_bytes`` (unless ``wait``) is landed and
        answered at once with ``status: checking`` (see :meth:`status`); its pre-check runs
        in the background and its verdict is then the answer, under its key too."""
        sha256 = spool.finish()
        if spool.size == 0:
            raise UploadRefusedError(
                "the upload is empty", hint="send the file's bytes as the request body"
            )
        fingerprint = hashlib.sha256(
            f"{request.file_name}\0{request.license}\0{sha256}".encode()
        ).hexdigest()
        if idempotency_key is not None:
            if not re.fullmatch(r"[!-~]{1,200}", idempotency_key):
                raise UploadRefusedError(
                    "the Idempotency-Key must be 1 to 200 printable ASCII characters, no spaces",
                    hint="send a UUID",
                )
            stored = self.accounts.claim(request.account, idempotency_key, fingerprint)
            if stored is not None and stored["status"] == CHECKING:
                return {**self.status(request.account, stored["contribution_id"]), "replayed": True}
            if stored is not None:
                return {**stored, "replayed": True}
        inline = self.config.check_inline_bytes
        later = not wait and inline is not None and spool.size > inline
        try:
            answer = self._take(request, spool, sha256, later=later)
        except BaseException:
            if idempotency_key is not None:
                self.accounts.release(request.account, idempotency_key)
            raise
        if idempotency_key is not None:
            self.accounts.settle(request.account, idempotency_key, answer)
        if answer["status"] == CHECKING:
            self._check_later(answer["contribution_id"], spool, idempotency_key)
        return answer

    def status(self, account: str, contribution_id: str) -> dict[str, Any]:
        """Where an upload of ``account``'s stands: the answer its request had when it was
        checked then (or once its background check is done: the same verdict); while it is
        being checked, ``status: checking`` with its ``stage`` (``queued``, ``checking``), and
        ``waiting_for_intake`` when this process no longer checks it (it restarted, or the
        check failed) and the pipeline's intake has not decided yet. Another account's upload
        is not found, as one that does not exist."""
        record = self.accounts.upload(contribution_id)
        if record is None or record.account != account:
            raise NotFoundError(
                "no such upload of yours", hint="list yours with GET /api/v1/contributions"
            )
        if record.verdict:
            return self._answer(record, status="received")
        progress = self.checks.progress(contribution_id)
        if progress is not None:
            return checking_answer(record, **progress)
        entry = self.catalog().entries(ids=[contribution_id])
        if entry and entry[0].recorded:
            # The pipeline's intake judged it in the meantime: the same verdict, from there.
            return self._answer(replace(record, verdict=verdict_of(entry[0].report)), "received")
        return checking_answer(record, stage="waiting_for_intake", queue_position=None, seconds=0)

    def _check_later(self, cid: str, spool: Spool, idempotency_key: str | None) -> None:
        """The pre-check of a landed upload, in the background: its verdict recorded with the
        upload and under its idempotency key, then its spooled file removed."""
        path, cleanup = spool.path, spool.keep()
        record = self.accounts.upload(cid)
        if record is None:  # withdrawn already: nothing to check
            cleanup()
            return

        def check() -> None:
            verdict = self._verdict(path, record.account)
            self.accounts.set_verdict(cid, verdict)
            if idempotency_key is not None:
                done = self._answer(replace(record, verdict=verdict), status="received")
                self.accounts.settle(record.account, idempotency_key, done)

        self.checks.submit(cid, record.account, check, cleanup)

    def _take(
        self, request: UploadRequest, spool: Spool, sha256: str, *, later: bool = False
    ) -> dict[str, Any]:
        if (earlier := self._earlier_copy(request.account, sha256)) is not None:
            return earlier
        cid = request.contribution_id
        taken = self.accounts.upload(cid) is not None or self.catalog().entries(ids=[cid])
        # A file the operator put in the zone by hand is there before the pipeline knows it.
        if taken or self.landing.exists(request.landing_path):
            raise ConflictError(
                f"a file named {safe_text(request.file_name, limit=80)!r} was contributed already",
                hint="rename the new file: each contribution keeps its own name",
            )
        verdict = PENDING if later else self._verdict(spool.path, request.account)
        now = time.time()
        record = UploadRecord(
            request.account,
            cid,
            request.landing_path,
            request.file_name,
            sha256,
            spool.size,
            request.license,
            request.consent_at,
            now,
            verdict,
        )
        # Recorded before it lands: of two uploads of one name, the database lets one in.
        try:
            self.accounts.record_upload(record)
        except Exception as exc:
            import sqlalchemy as sa

            if isinstance(exc, sa.exc.IntegrityError):
                raise ConflictError(
                    f"a file named {safe_text(request.file_name, limit=80)!r} is being "
                    "contributed already",
                    hint="rename the new file",
                ) from exc
            raise
        try:
            self._land(record, spool.path)
        except BaseException:
            self.accounts.forget_upload(cid)
            raise
        if later:
            return checking_answer(record, stage="queued", queue_position=None, seconds=0)
        return self._answer(record, status="received")

    def _verdict(self, path: Path, account: str) -> dict[str, Any]:
        """What the pre-check says, as the answer carries it."""
        try:
            report = self._check(path, account)
        except (ContributionUnreadableError, ContributionTooLargeError) as exc:
            return {
                "accepted": False,
                "decision": f"rejected: {exc.message}",
                "hint": exc.hint,
                "hints": [],
                "rows_in": 0,
                "rows_clean": 0,
                "rows_rejected": 0,
                "rejection_reasons": {getattr(exc, "reason", exc.code): 1},
                "quality_score": 0.0,
            }
        return verdict_of(report)

    def _land(self, record: UploadRecord, path: Path) -> None:
        """The sidecar first, then the file: the sensor takes the file, and by then its
        license and consent are beside it."""
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        consent = datetime.fromtimestamp(record.consent_at, UTC).isoformat(timespec="seconds")
        from mlops_assets.core.common.storage import write_json

        write_json(
            {
                "contributor": record.account,
                "license": record.license,
                "consent": {"given": True, "at": consent},
                "sha256": record.sha256,
                "via": "upload API",
            },
            sidecar,
        )
        self.landing.put(sidecar, record.landing_path + SIDECAR_SUFFIX)
        self.landing.put(path, record.landing_path)

    def _earlier_copy(self, account: str, sha256: str) -> dict[str, Any] | None:
        """The answer for bytes contributed before: this account's earlier contribution, or
        a refusal that names no other account's."""
        own = self.accounts.uploads_of(account, sha256=sha256)
        if own:
            return self._answer(own[0], status="duplicate", duplicate_of=own[0].contribution_id)
        earlier = self.catalog().find_by_sha256(sha256, exclude="")
        if earlier is None and self.accounts.any_upload_of(sha256) is None:
            return None
        entry = self.catalog().entries(ids=[earlier]) if earlier else []
        if entry and entry[0].report.contributor == account:
            return {
                **self._empty_answer(earlier, entry[0].report.landing_path or "", sha256),
                "status": "duplicate",
                "duplicate_of": earlier,
                "decision": f"the same bytes were contributed before, as {earlier}",
                "hint": "nothing to do: these bytes are taken once",
            }
        return {
            **self._empty_answer(None, None, sha256),
            "status": "duplicate",
            "decision": "rejected: these bytes were contributed before by another account",
            "hint": "send measurements of your own: the same bytes are taken once, and "
            "credit goes to whoever sent them first",
        }

    @staticmethod
    def _empty_answer(cid: str | None, landing_path: str | None, sha256: str) -> dict[str, Any]:
        return {
            "contribution_id": cid,
            "landing_path": landing_path,
            "sha256": sha256,
            "size": None,
            "license": None,
            "accepted": False,
            "decision": "",
            "hint": "",
            "hints": [],
            "rows_in": 0,
            "rows_clean": 0,
            "rows_rejected": 0,
            "rejection_reasons": {},
            "quality_score": None,
            "duplicate_of": None,
            "replayed": False,
        }

    @classmethod
    def _answer(
        cls, record: UploadRecord, status: str, *, duplicate_of: str | None = None
    ) -> dict[str, Any]:
        answer = {
            # A verdict still pending (an earlier copy being checked) says nothing yet.
            **cls._empty_answer(record.contribution_id, record.landing_path, record.sha256),
            "contribution_id": record.contribution_id,
            "landing_path": record.landing_path,
            "sha256": record.sha256,
            "size": record.size,
            "license": record.license,
            **record.verdict,
            "status": status,
            "duplicate_of": duplicate_of,
            "replayed": False,
        }
        if duplicate_of:
            answer["decision"] = f"the same bytes were uploaded before, as {duplicate_of}"
            answer["hint"] = "nothing to do: these bytes are taken once"
        return answer
