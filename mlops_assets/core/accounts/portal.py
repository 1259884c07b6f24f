"""The contributors' door as use cases: sign in, upload, my contributions, one contribution
with its timeline, its report and quarantine sample, withdrawal. No web framework here: the
upload API (``mlops_assets.portal``) and the portal's pages call these.

Every read is of the signed-in account's own contributions: another account's is
:class:`NotFoundError`, exactly as one that does not exist, so nothing confirms it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.core.accounts.spool import Spool
from mlops_assets.core.accounts.store import Account, AccountStore, UploadRecord
from mlops_assets.core.accounts.timeline import timeline
from mlops_assets.core.accounts.uploads import PortalConfig, UploadDesk, UploadRequest
from mlops_assets.core.common import layout
from mlops_assets.core.common.names import safe_text
from mlops_assets.core.intake.landing import SIDECAR_SUFFIX
from mlops_assets.core.intake.overview import ContributionHistory, contribution_overview
from mlops_assets.errors import (
    ConflictError,
    NotFoundError,
)

if TYPE_CHECKING:
    from mlops_assets.core.accounts.checks import BackgroundChecks
    from mlops_assets.core.accounts.webhooks import WebhookStore
    from mlops_assets.core.catalog.catalog import CatalogEntry, ContributionCatalog
    from mlops_assets.core.intake.report import ContributionReport
    from mlops_assets.core.storage.places import Landing, Store

QUARANTINE_SAMPLE_ROWS = 20


def withdraw_contribution(
    catalog: ContributionCatalog, store: Store, landing: Landing, contribution_id: str
) -> CatalogEntry:
    """Withdraw a contribution: left out of every retrain from now on, its rows deleted (the
    catalog's, the stored clean and quarantined rows, the kept bytes, the landing file and
    its sidecar), its history and credit kept and marked withdrawn. Withdrawing it again
    changes nothing. Models already trained on it keep their record (their attestation
    names it), as history does."""
    found = catalog.entries(ids=[contribution_id])
    if not found:
        raise NotFoundError(
            f"no contribution {safe_text(contribution_id, limit=80)}",
            hint="`mlops contributions --json` lists them with their ids",
        )
    entry = found[0]
    if not entry.recorded:
        raise ConflictError(
            "this contribution is still being checked: it can be withdrawn once it has its outcome",
            hint="ask again in a few seconds",
        )
    if entry.withdrawn_at is not None:
        return entry
    catalog.withdraw(contribution_id)
    report = entry.report
    for name in ("clean.parquet", "rejected.parquet"):
        store.remove(layout.contribution(contribution_id, name))
    if report.snapshot:
        store.remove(f"{layout.ORIGINALS}/{report.snapshot}")
    if report.accepted:
        # The retrains' compacted copy of the accepted rows holds its rows too: it is a
        # cache, made again from the catalog by the next retrain.
        store.remove(layout.ACCEPTED_ROWS)
    if report.landing_path:
        landing.remove(report.landing_path)
        landing.remove(report.landing_path + SIDECAR_SUFFIX)
    return catalog.entries(ids=[contribution_id])[0]


class Portal:
    """The use cases over the accounts (``accounts``), the catalog (``catalog()`` opens it,
    caught up), the landing zone and the dataset store, the pre-check (``check``) and the
    registry's versions (``versions()``: each version's number, tags and creation time)."""

    def __init__(
        self,
        *,
        accounts: AccountStore,
        catalog: Callable[[], ContributionCatalog],
        landing: Landing,
        store: Store,
        check: Callable[[Path, str], ContributionReport],
        versions: Callable[[], list[tuple[str, dict[str, str], float | None]]],
        config: PortalConfig,
        hooks: WebhookStore | None = None,
        allow_private: bool = False,
        checks: BackgroundChecks | None = None,
        warm_up: Callable[[], object] | None = None,
    ) -> None:
        self.accounts, self._catalog, self.landing, self.store = accounts, catalog, landing, store
        self._check, self._versions, self.config = check, versions, config
        self._opened: ContributionCatalog | None = None
        self.uploads = UploadDesk(accounts, self.catalog, landing, check, config, checks)
        self.hooks, self.allow_private = hooks, allow_private
        # What the first pre-check would otherwise do while its upload waits (the reference
        # data split: a second); a server runs it once at start.
        self.warm_up = warm_up

    def catalog(self) -> ContributionCatalog:
        if self._opened is None:
            self._opened = self._catalog()
        return self._opened

    def versions(self) -> list[tuple[str, dict[str, str], float | None]]:
        """The registry's versions: each one's number, tags and creation time."""
        return self._versions()

    # ---- signing in -----------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Account:
        """The account of ``token``; :class:`AuthenticationError` or
        :class:`AccountDisabledError` otherwise."""
        return self.accounts.authenticate(token)

    # ---- uploading (see UploadDesk) ------------------------------------------------------

    def prepare_upload(
        self, account: Account, file_name: str, license: str, consent: bool
    ) -> UploadRequest:
        """See :meth:`UploadDesk.prepare_upload`."""
        return self.uploads.prepare_upload(account, file_name, license, consent)

    def upload(
        self,
        request: UploadRequest,
        spool: Spool,
        *,
        idempotency_key: str | None = None,
        wait: bool = False,
    ) -> dict[str, Any]:
        """See :meth:`UploadDesk.upload`."""
        return self.uploads.upload(request, spool, idempotency_key=idempotency_key, wait=wait)

    def upload_status(self, account: Account, contribution_id: str) -> dict[str, Any]:
        """See :meth:`UploadDesk.status`."""
        return self.uploads.status(account.name, contribution_id)

    # ---- reading --------------------------------------------------------------------------

    def my_contributions(
        self, account: Account, *, limit: int | None = 50, offset: int = 0
    ) -> list[dict[str, Any]]:
        """A page of the account's contributions in landing order (as ``mlops contributions``
        shows them, plus ``license``), then its uploads the pipeline has not taken in yet
        (``pending``) on the last page."""
        catalog = self.catalog()
        page = catalog.entries(contributor=account.name, limit=limit, offset=offset)
        last = limit is None or len(page) < limit
        pending = []
        if last:
            known = {e.report.contribution_id for e in page}
            recorded = {e.report.contribution_id for e in page if e.recorded}
            waiting = [
                u
                for u in self.accounts.uploads_of(account.name)
                if u.contribution_id not in recorded
                and (
                    u.contribution_id in known
                    or not self.catalog().entries(ids=[u.contribution_id])
                )
            ]
            pending = [
                {
                    "contribution_id": u.contribution_id,
                    "contributor": u.account,
                    "landing_path": u.landing_path,
                    "sha256": u.sha256,
                }
                for u in waiting
            ]
        return self._rows(account, [e for e in page if e.recorded], pending)

    def contribution(self, account: Account, contribution_id: str) -> dict[str, Any]:
        """One contribution of the account's, as :meth:`my_contributions` lists it, with its
        ``timeline`` (see :func:`timeline`)."""
        entry, upload = self._own(account, contribution_id)
        pending = (
            []
            if entry is not None and entry.recorded
            else [
                {
                    "contribution_id": contribution_id,
                    "contributor": account.name,
                    "landing_path": (upload.landing_path if upload else entry.report.landing_path),  # type: ignore[union-attr]
                    "sha256": upload.sha256 if upload else "",
                }
            ]
        )
        recorded = [entry] if entry is not None and entry.recorded else []
        versions = self._versions()
        row = self._rows(account, recorded, pending, versions)[0]
        history = ContributionHistory.from_versions([(v, tags) for v, tags, _ in versions])
        row["timeline"] = timeline(entry, upload, history, {v: at for v, _, at in versions})
        return row

    def timeline_of(self, entry: CatalogEntry) -> list[dict[str, Any]]:
        """The timeline of a catalog entry (what the webhooks tell, step by step)."""
        versions = self._versions()
        history = ContributionHistory.from_versions([(v, tags) for v, tags, _ in versions])
        upload = self.accounts.upload(entry.report.contribution_id)
        return timeline(entry, upload, history, {v: at for v, _, at in versions})

    # ---- the account's webhook ------------------------------------------------------------

    def _hooks(self) -> WebhookStore:
        if self.hooks is None:
            raise NotFoundError("webhooks are not offered here", hint="ask the operator")
        return self.hooks

    def webhook(self, account: Account) -> dict[str, Any]:
        """The account's webhook: its URL and secret (``whsec_``: verify with it)."""
        return self._hooks().get(account.name).to_dict()  # type: ignore[union-attr]

    def set_webhook(self, account: Account, url: str) -> dict[str, Any]:
        """Register or move the account's webhook (refused for a URL that leads to a private
        address); a new one gets a secret, a moved one keeps it."""
        return self._hooks().put(account.name, url, allow_private=self.allow_private).to_dict()

    def remove_webhook(self, account: Account) -> None:
        self._hooks().delete(account.name)

    def deliveries(self, account: Account, *, limit: int = 50) -> list[dict[str, Any]]:
        """The latest delivery attempts to the account's webhook, newest first."""
        return self._hooks().deliveries_of(account.name, limit=limit)

    def report(self, account: Account, contribution_id: str) -> dict[str, Any]:
        """The contribution's report and a sample of its quarantined rows (with their
        reasons), or :class:`NotFoundError` before its intake has recorded one."""
        entry, _ = self._own(account, contribution_id)
        if entry is None or not entry.recorded:
            raise NotFoundError(
                "this contribution has no report yet: it is still being checked",
                hint="ask again in a few seconds",
            )
        sample, quarantined = self._quarantine_sample(contribution_id, entry.withdrawn_at)
        return {
            "report": entry.report.to_dict(),
            "quarantine_sample": sample,
            "quarantined_rows": quarantined,
            "withdrawn_at": entry.withdrawn_at,
        }

    def withdraw(self, account: Account, contribution_id: str) -> dict[str, Any]:
        """Withdraw one of the account's contributions (see :func:`withdraw_contribution`);
        withdrawing again is answered the same."""
        entry, _ = self._own(account, contribution_id)
        if entry is None:
            raise ConflictError(
                "this contribution is still being checked: it can be withdrawn once it has "
                "its outcome",
                hint="ask again in a few seconds",
            )
        withdraw_contribution(self.catalog(), self.store, self.landing, contribution_id)
        return self.contribution(account, contribution_id)

    def _own(
        self, account: Account, contribution_id: str
    ) -> tuple[CatalogEntry | None, UploadRecord | None]:
        """The contribution's catalog entry and upload, when it is the account's; otherwise
        not found, whoever's it is."""
        found = self.catalog().entries(contributor=account.name, ids=[contribution_id])
        upload = self.accounts.upload(contribution_id)
        if upload is not None and upload.account != account.name:
            upload = None
        if not found and upload is None:
            raise NotFoundError(
                "no such contribution of yours", hint="list yours with GET /api/v1/contributions"
            )
        return (found[0] if found else None), upload

    def _rows(
        self,
        account: Account,
        entries: list[CatalogEntry],
        pending: list[dict[str, str]],
        versions: list[tuple[str, dict[str, str], float | None]] | None = None,
    ) -> list[dict[str, Any]]:
        versions = self._versions() if versions is None else versions
        history = ContributionHistory.from_versions([(v, tags) for v, tags, _ in versions])
        withdrawn = {e.report.contribution_id: e.withdrawn_at for e in entries if e.withdrawn_at}
        rows = contribution_overview(
            [e.report for e in entries], pending, history, withdrawn=withdrawn
        )
        ids = [row["contribution_id"] for row in rows]
        licenses = {
            u.contribution_id: u.license for u in self.accounts.uploads_of(account.name, ids=ids)
        }
        by_id = {e.report.contribution_id: e.report for e in entries}
        for row in rows:
            cid = row["contribution_id"]
            row["license"] = licenses.get(cid) or (by_id[cid].license if cid in by_id else "")
            row["landed_at"] = by_id[cid].landed_at if cid in by_id else None
            if row["status"] == "pending":
                row["decision"] = "received: waiting to be taken in by the pipeline"
        return rows

    def _quarantine_sample(
        self, contribution_id: str, withdrawn_at: float | None
    ) -> tuple[list[dict[str, Any]], int]:
        """The first quarantined rows (every value as text) and how many there are; none
        once withdrawn (its rows are deleted)."""
        key = layout.contribution(contribution_id, "rejected.parquet")
        if withdrawn_at is not None or not self.store.exists(key):
            return [], 0
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(self.store.fetch(key))
        total = parquet.metadata.num_rows
        batch = next(parquet.iter_batches(batch_size=QUARANTINE_SAMPLE_ROWS), None)
        rows = batch.to_pylist() if batch is not None else []
        return [{k: None if v is None else str(v) for k, v in row.items()} for row in rows], total
