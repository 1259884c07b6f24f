"""The contribution catalog: each contribution's state and report, and the accepted rows by
their cells at the task's resolution, in one indexed database (SQLite in the embedded home,
PostgreSQL in production), written once per state change.

The report files stay the audit copy; the catalog is what reads are served from. An intake
is written in two steps, ``begin`` (before its files) and ``record`` (after them): a
contribution killed between the two is left ``processing`` and completed from its report by
:meth:`ContributionCatalog.complete_stuck` (``stuck`` names those few), so the catalog and the
files agree without anyone listing every file. A home written before the catalog existed is
imported once (:meth:`ContributionCatalog.import_reports`).

Long on purpose: one schema, and the writes and reads that keep it and the files in step.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.core.common.row_matching import (
    RowMatching,
    blocking_cells_sql,
    blocking_features,
    tolerance,
)
from mlops_assets.core.intake.report import ContributionReport

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

    from mlops_assets.core.catalog.snapshot import SnapshotFile
    from mlops_assets.core.data.integration import ContributedRows, Contribution
    from mlops_assets.task import TaskSchema

PROCESSING, DONE = "processing", "done"
# A probe of more neighbour cells than this reads the earlier rows whole instead: one scan
# costs less than that many index lookups.
_LOOKUP_LIMIT = 20_000
_IMPORTED = "reports_imported"
# Contributions imported from a home written before the catalog: intakes that began within
# this many seconds of each other's landing are taken not to have seen each other.
IMPORTED_WINDOW = 3600.0


@cache
def _engine(url: str) -> sa.Engine:
    """One engine per database per process (a pool of connections)."""
    import sqlalchemy as sa

    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    # Intakes run in parallel processes: they wait for each other's writes instead of
    # failing, and readers never wait for a writer (write-ahead log).
    engine = sa.create_engine(url, connect_args={"timeout": 120})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def engine(url: str) -> sa.Engine:
    """The process's engine for the database at ``url``: what other tables kept beside the
    catalog (the contributors' accounts) share."""
    return _engine(url)


@dataclass(frozen=True)
class CatalogEntry:
    """What the catalog holds of one contribution."""

    report: ContributionReport
    state: str
    withdrawn_at: float | None = None
    recorded_at: float | None = None  # when its intake's outcome was recorded

    @property
    def recorded(self) -> bool:
        """Its intake's outcome is recorded (not still under way)."""
        return self.state == DONE


class ContributionCatalog:
    """The catalog of ``task``'s contributions in the database at ``url`` (an SQLAlchemy
    URL); tables are created on first use."""

    def __init__(self, url: str, task: TaskSchema) -> None:
        import sqlalchemy as sa

        self.url, self.task = url, task
        if url.startswith("sqlite:///"):  # the embedded home may not exist yet
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self._engine = _engine(url)
        meta = sa.MetaData()
        self.meta = sa.Table(
            "mlops_catalog_meta", meta, sa.Column("key", sa.String(100), primary_key=True)
        )
        self.contributions = sa.Table(
            "mlops_contributions",
            meta,
            sa.Column("contribution_id", sa.String(300), primary_key=True),
            sa.Column("task", sa.String(200), nullable=False),
            sa.Column("contributor", sa.String(300), nullable=False, index=True),
            sa.Column("landing_path", sa.Text),
            sa.Column("sha256", sa.String(64), index=True),
            sa.Column("landed_at", sa.Float, index=True),
            sa.Column("state", sa.String(20), nullable=False, index=True),
            sa.Column("accepted", sa.Boolean, nullable=False, default=False),
            sa.Column("quality_score", sa.Float),
            sa.Column("report", sa.Text),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.Column("withdrawn_at", sa.Float),
            # When its intake began looking up earlier rows, and when its outcome was
            # recorded: what a retrain needs to know which intakes could not see each other.
            sa.Column("looked_up_at", sa.Float),
            sa.Column("recorded_at", sa.Float),
        )
        blocking = blocking_features(task)
        self.rows = sa.Table(
            "mlops_rows_" + re.sub(r"[^a-z0-9_]", "_", task.name.lower())[:40],
            meta,
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
            sa.Column("contribution_id", sa.String(300), nullable=False, index=True),
            sa.Column("landed_at", sa.Float, nullable=False),
            sa.Column("row_index", sa.BigInteger, nullable=False),
            *(sa.Column(f"c{i}", sa.BigInteger, nullable=False) for i in range(len(blocking))),
            *(
                sa.Column(f"f{i}", sa.Text if f.categorical else sa.Float)
                for i, f in enumerate(task.features)
            ),
            sa.Column("label", sa.Text, nullable=False),
        )
        if blocking:
            # Covering: a lookup compares the rows of a crowded cell inside the index, never
            # visiting the table row by row.
            rows = self.rows.c
            sa.Index(
                f"ix_{self.rows.name}_cells",
                *(rows[f"c{i}"] for i in range(len(blocking))),
                rows.label,
                *(rows[f"f{i}"] for i in range(len(task.features))),
                rows.landed_at,
                rows.contribution_id,
            )
        self._blocking = len(blocking)
        try:
            meta.create_all(self._engine, checkfirst=True)
        except (sa.exc.ProgrammingError, sa.exc.IntegrityError):
            # Another process created them between the check and the creation (the first
            # intakes of a batch start together): they exist now.
            meta.create_all(self._engine, checkfirst=True)

    # ---- writing ---------------------------------------------------------------------

    def begin(
        self, contribution_id: str, contributor: str, landing_path: str, landed_at: float
    ) -> None:
        """Say an intake of ``contribution_id`` is under way (before any of its files)."""
        with self._engine.begin() as db:
            known = db.execute(
                self.contributions.select().where(
                    self.contributions.c.contribution_id == contribution_id
                )
            ).first()
            now = time.time()
            # Begun before its lookup: the time it looked up earlier rows is at most later.
            values = {"state": PROCESSING, "updated_at": now, "looked_up_at": now}
            if known is None:
                db.execute(
                    self.contributions.insert().values(
                        contribution_id=contribution_id,
                        task=self.task.name,
                        contributor=contributor,
                        landing_path=landing_path,
                        landed_at=landed_at,
                        accepted=False,
                        **values,
                    )
                )
            else:
                where = self.contributions.c.contribution_id == contribution_id
                db.execute(self.contributions.update().where(where).values(**values))

    def record(
        self, report: ContributionReport, clean: pd.DataFrame | None, matching: RowMatching
    ) -> None:
        """The intake's outcome: the report, and (accepted) its clean rows, in one
        transaction; recording it again replaces it."""
        cells = self._with_cells(clean, matching) if report.accepted and clean is not None else None
        with self._engine.begin() as db:
            self._write(db, report, cells)

    def _write(
        self,
        db: sa.Connection,
        report: ContributionReport,
        cells: pd.DataFrame | None,
        *,
        imported: bool = False,
    ) -> None:
        """Record ``report`` (and its rows). An ``imported`` one (written before the catalog)
        is taken to have been looked up when it landed and recorded within
        ``IMPORTED_WINDOW`` seconds: intakes that close together may not have seen each
        other."""
        cid = report.contribution_id
        where = self.contributions.c.contribution_id == cid
        now, landed = time.time(), report.landed_at or 0.0
        values = {
            "task": self.task.name,
            "contributor": report.contributor,
            "landing_path": report.landing_path,
            "sha256": report.sha256,
            "landed_at": landed,
            "state": DONE,
            "accepted": report.accepted,
            "quality_score": report.quality_score,
            "report": json.dumps(report.to_dict(), sort_keys=True, default=str),
            "updated_at": now,
            "recorded_at": landed + IMPORTED_WINDOW if imported else now,
        }
        if imported:
            values["looked_up_at"] = landed
        known = db.execute(self.contributions.select().where(where)).first()
        if known is None:
            # Recorded without a begin (a caller that never said): looked up just now.
            values.setdefault("looked_up_at", now)
            db.execute(self.contributions.insert().values(contribution_id=cid, **values))
        else:
            db.execute(self.contributions.update().where(where).values(**values))
        db.execute(self.rows.delete().where(self.rows.c.contribution_id == cid))
        if cells is not None and len(cells):
            records = cells.assign(contribution_id=cid, landed_at=report.landed_at or 0.0)
            db.execute(self.rows.insert(), records.to_dict("records"))

    def _with_cells(self, clean: pd.DataFrame, matching: RowMatching) -> pd.DataFrame:
        """``clean``'s rows as the rows table holds them: features by position, the label,
        the row index and the cells (computed by DuckDB, as the intake computes them)."""
        import duckdb

        from mlops_assets.core.intake.readers import ROW_INDEX

        rows = clean.reset_index(drop=True)
        if ROW_INDEX not in rows:
            rows = rows.assign(**{ROW_INDEX: range(len(rows))})
        cells = blocking_cells_sql(self.task, matching)
        named = [
            f'"{ROW_INDEX}"::BIGINT AS row_index',
            *(f"{c} AS c{i}" for i, c in enumerate(cells)),
        ]
        named += [
            f'"{f.name}"::{"VARCHAR" if f.categorical else "DOUBLE"} AS f{i}'
            for i, f in enumerate(self.task.features)
        ]
        named.append(f'"{self.task.label}"::VARCHAR AS label')
        with duckdb.connect() as db:
            db.register("clean_rows", rows)
            frame = db.execute(f"SELECT {', '.join(named)} FROM clean_rows").df()
        return frame.astype(object).where(frame.notna(), None)

    def withdraw(self, contribution_id: str) -> None:
        """Mark ``contribution_id`` withdrawn (its history kept) and forget its rows."""
        with self._engine.begin() as db:
            where = self.contributions.c.contribution_id == contribution_id
            db.execute(self.contributions.update().where(where).values(withdrawn_at=time.time()))
            db.execute(self.rows.delete().where(self.rows.c.contribution_id == contribution_id))

    # ---- consistency with the report files -------------------------------------------

    def needs_import(self) -> bool:
        with self._engine.connect() as db:
            return (
                db.execute(self.meta.select().where(self.meta.c.key == _IMPORTED)).first() is None
            )

    def import_reports(
        self,
        reports: Iterable[tuple[ContributionReport, pd.DataFrame | None]],
        matching: RowMatching | None,
    ) -> int:
        """Take in a home's reports (and accepted rows) written before the catalog: once, in
        one transaction (a second process doing the same waits, then finds it done)."""
        import sqlalchemy as sa

        imported = 0
        try:
            with self._engine.begin() as db:
                db.execute(self.meta.insert().values(key=_IMPORTED))
                for report, clean in reports:
                    cells = (
                        self._with_cells(clean, matching)
                        if report.accepted and clean is not None
                        else None
                    )
                    self._write(db, report, cells, imported=True)
                    imported += 1
        except sa.exc.IntegrityError:
            return 0  # another process imported them first
        return imported

    def stuck(self) -> list[tuple[str, float]]:
        """Contributions whose intake began and did not record its outcome (still running,
        or killed between its files and the catalog), with when it began."""
        with self._engine.connect() as db:
            query = self.contributions.select().where(self.contributions.c.state == PROCESSING)
            return [(row.contribution_id, row.updated_at) for row in db.execute(query)]

    def complete_stuck(
        self,
        load: Callable[[str], tuple[ContributionReport, pd.DataFrame | None] | None],
        matching: RowMatching,
    ) -> list[str]:
        """Record the outcome of each stuck contribution whose report file exists (``load``
        gives it and its clean rows, or None): the catalog catches up with the files. An
        intake that records meanwhile wins: only a row still as it was seen is written."""
        completed = []
        for cid, began in self.stuck():
            loaded = load(cid)
            if loaded is None:
                continue  # still running, or killed before its report: its retry records it
            report, clean = loaded
            cells = (
                self._with_cells(clean, matching) if report.accepted and clean is not None else None
            )
            c = self.contributions.c
            with self._engine.begin() as db:
                unchanged = db.execute(
                    self.contributions.select().where(
                        c.contribution_id == cid, c.state == PROCESSING, c.updated_at == began
                    )
                ).first()
                if unchanged is not None:
                    self._write(db, report, cells)
                    completed.append(cid)
        return completed

    # ---- reading ---------------------------------------------------------------------

    def find_by_sha256(self, sha256: str, *, exclude: str) -> str | None:
        """The id of an earlier contribution of exactly these bytes (not itself a repeat)."""
        c = self.contributions.c
        with self._engine.connect() as db:
            for row in db.execute(
                self.contributions.select()
                .where(c.sha256 == sha256, c.state == DONE, c.contribution_id != exclude)
                .order_by(c.landed_at, c.contribution_id)
            ):
                if json.loads(row.report).get("duplicate_of") is None:
                    return row.contribution_id
        return None

    def earlier_rows(
        self, probe: pd.DataFrame, before: tuple[float, str], matching: RowMatching
    ) -> pd.DataFrame:
        """Accepted rows of contributions that landed before ``before`` (a landing order)
        that match a row of ``probe`` (the task's columns) with the same label, as task
        columns. A small probe is looked up by index in its rows' neighbouring cells and only
        the matching rows come back, however crowded the cells are; a large one reads the
        earlier rows whole."""
        import sqlalchemy as sa

        r = self.rows.c
        landed, cid = before
        earlier = sa.or_(
            r.landed_at < landed, sa.and_(r.landed_at == landed, r.contribution_id < cid)
        )
        # Never its own rows, from an earlier run of its intake.
        query = sa.select(*self._task_columns()).where(earlier, r.contribution_id != cid)
        lookups = len(probe) * 3**self._blocking
        with self._engine.begin() as db:
            if probe.empty:
                return self._as_task_columns([])
            if not self._blocking or lookups > _LOOKUP_LIMIT:
                return self._as_task_columns(db.execute(query).fetchall())
            near = self._probe_table(db, self._with_cells(probe, matching))
            p = near.c
            on = [r[f"c{i}"] == p[f"c{i}"] for i in range(self._blocking)] + [r.label == p.label]
            for i, feature in enumerate(self.task.features):
                mine, theirs = r[f"f{i}"], p[f"f{i}"]
                if feature.categorical:
                    on.append(mine.is_not_distinct_from(theirs))
                else:
                    close = sa.func.abs(mine - theirs) < tolerance(matching, feature.name)
                    on.append(sa.or_(sa.and_(mine.is_(None), theirs.is_(None)), close))
            rows = db.execute(query.join_from(self.rows, near, sa.and_(*on)).distinct()).fetchall()
            db.execute(sa.text(f"DROP TABLE {near.name}"))
        return self._as_task_columns(rows)

    def _probe_table(self, db: sa.Connection, probe: pd.DataFrame) -> sa.Table:
        """A temporary table of ``probe``'s rows (as the rows table holds them) once in
        each cell next to their own: what an index join looks up."""
        import itertools

        import sqlalchemy as sa

        features = [
            sa.Column(f"f{i}", sa.Text if f.categorical else sa.Float)
            for i, f in enumerate(self.task.features)
        ]
        near = sa.Table(
            "mlops_probe_rows",
            sa.MetaData(),
            *(sa.Column(f"c{i}", sa.BigInteger) for i in range(self._blocking)),
            *features,
            sa.Column("label", sa.Text),
            prefixes=["TEMPORARY"],
        )
        db.execute(sa.text("DROP TABLE IF EXISTS mlops_probe_rows"))
        near.create(db)
        kept = [c.name for c in features] + ["label"]
        records = []
        for row in probe.to_dict("records"):
            cells = [row[f"c{i}"] for i in range(self._blocking)]
            for offset in itertools.product((-1, 0, 1), repeat=self._blocking):
                moved = {f"c{i}": c + o for i, (c, o) in enumerate(zip(cells, offset, strict=True))}
                records.append({**moved, **{k: row[k] for k in kept}})
        db.execute(near.insert(), records)
        if db.dialect.name == "postgresql":
            # A temporary table has no statistics: without them the planner hashes the whole
            # rows table instead of looking the few probe rows up in its index.
            db.execute(sa.text(f"ANALYZE {near.name}"))
        return near

    def _task_columns(self) -> list[sa.Column]:
        return [*(self.rows.c[f"f{i}"] for i in range(len(self.task.features))), self.rows.c.label]

    def _as_task_columns(self, rows: list[Any], extra: tuple[str, ...] = ()) -> pd.DataFrame:
        """Rows selected as ``_task_columns`` (then ``extra``), named as the task names them."""
        import pandas as pd

        names = [*self.task.feature_names, self.task.label, *extra]
        frame = pd.DataFrame.from_records(rows, columns=names)
        for feature in self.task.numeric_features:
            frame[feature.name] = frame[feature.name].astype("float64")
        return frame

    def accepted_rows(self) -> pd.DataFrame:
        """Every accepted (not withdrawn) contribution's rows in one frame, in landing order:
        the task's columns, ``row_index`` and ``contribution_id``; one query however many
        contributions there are."""
        import sqlalchemy as sa

        from mlops_assets.core.intake.readers import ROW_INDEX

        r, c = self.rows.c, self.contributions.c
        query = (
            sa.select(*self._task_columns(), r.row_index, r.contribution_id)
            .join_from(self.rows, self.contributions, r.contribution_id == c.contribution_id)
            .where(self._kept())
            .order_by(r.landed_at, r.contribution_id, r.row_index)
        )
        with self._engine.connect() as db:
            rows = db.execute(query).fetchall()
        return self._as_task_columns(rows, (ROW_INDEX, "contribution_id"))

    def rows_of(self, ids: Iterable[str]) -> pd.DataFrame:
        """The rows of contributions ``ids`` (as :meth:`accepted_rows` gives them, each
        contribution's in row order): what a retrain reads beside its snapshot."""
        import sqlalchemy as sa

        from mlops_assets.core.intake.readers import ROW_INDEX

        r = self.rows.c
        wanted, rows = sorted(ids), []
        with self._engine.connect() as db:
            # Chunks below every database's limit on bound parameters.
            for start in range(0, len(wanted), 500):
                query = (
                    sa.select(*self._task_columns(), r.row_index, r.contribution_id)
                    .where(r.contribution_id.in_(wanted[start : start + 500]))
                    .order_by(r.contribution_id, r.row_index)
                )
                rows += db.execute(query).fetchall()
        return self._as_task_columns(rows, (ROW_INDEX, "contribution_id"))

    def entries(
        self,
        *,
        contributor: str | None = None,
        accepted: bool | None = None,
        ids: list[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[CatalogEntry]:
        """Contributions in landing order (one contributor's; only accepted, not withdrawn
        ones, or only the others; only ``ids``; when given), a page at a time."""
        c = self.contributions.c
        query = self.contributions.select().where(c.task == self.task.name)
        if ids is not None:
            query = query.where(c.contribution_id.in_(ids))
        if contributor is not None:
            query = query.where(c.contributor == contributor)
        if accepted is not None:
            query = query.where(self._kept() if accepted else ~self._kept())
        query = query.order_by(c.landed_at, c.contribution_id).offset(offset).limit(limit)
        with self._engine.connect() as db:
            return [self._entry(row) for row in db.execute(query)]

    def _kept(self) -> sa.ColumnElement[bool]:
        """Contributions a retrain trains on: recorded, accepted, not withdrawn."""
        c = self.contributions.c
        return c.accepted.is_(True) & c.withdrawn_at.is_(None) & (c.state == DONE)

    def accepted_facts(self) -> list[Contribution]:
        """Each accepted, not withdrawn contribution (its rows left empty) in landing order:
        contributor, quality score, landing time, when its intake looked up earlier rows and
        when it was recorded (no report is parsed)."""
        import pandas as pd

        from mlops_assets.core.data.integration import Contribution

        c = self.contributions.c
        columns = (c.contribution_id, c.contributor, c.quality_score, c.landed_at)
        query = (
            self.contributions.select()
            .with_only_columns(*columns, c.looked_up_at, c.recorded_at)
            .where(c.task == self.task.name, self._kept())
            .order_by(c.landed_at, c.contribution_id)
        )
        none = pd.DataFrame()  # one empty frame for all: building 100,000 of them takes seconds
        with self._engine.connect() as db:
            return [
                Contribution(i, who, none, q or 0.0, at or 0.0, looked_up_at=up, recorded_at=rec)
                for i, who, q, at, up, rec in db.execute(query)
            ]

    def recorded_ids(self) -> set[str]:
        """The ids of every contribution whose outcome is recorded."""
        c = self.contributions.c
        query = self.contributions.select().with_only_columns(c.contribution_id)
        with self._engine.connect() as db:
            return set(db.execute(query.where(c.state == DONE)).scalars())

    def count(self, *, contributor: str | None = None) -> int:
        import sqlalchemy as sa

        c = self.contributions.c
        query = sa.select(sa.func.count()).select_from(self.contributions)
        query = query.where(c.task == self.task.name)
        if contributor is not None:
            query = query.where(c.contributor == contributor)
        with self._engine.connect() as db:
            return int(db.execute(query).scalar_one())

    def _entry(self, row: Any) -> CatalogEntry:
        if row.report:
            report = ContributionReport.from_dict(json.loads(row.report))
        else:  # begun, not recorded yet
            report = ContributionReport(
                row.contribution_id,
                row.contributor,
                (row.landing_path or "").rpartition("/")[2],
                "",
                landed_at=row.landed_at,
                landing_path=row.landing_path,
            )
        recorded = row.recorded_at if row.state == DONE else None
        return CatalogEntry(report, row.state, row.withdrawn_at, recorded)


def load_accepted(
    catalog: ContributionCatalog,
    *,
    max_rows: int,
    seed: int,
    snapshot: SnapshotFile | None = None,
) -> ContributedRows:
    """The accepted contributions the catalog holds, for a retrain (see
    :func:`accepted_contributions`); their rows from ``snapshot`` where it is current (see
    :mod:`mlops_assets.core.catalog.snapshot`)."""
    # Here, not at the top: pandas is a second of `mlops contributions`, which never needs it.
    from mlops_assets.core.catalog.snapshot import accepted_rows
    from mlops_assets.core.data.integration import accepted_contributions

    facts = catalog.accepted_facts()
    rows = catalog.accepted_rows() if snapshot is None else accepted_rows(catalog, facts, snapshot)
    return accepted_contributions(rows, facts, max_rows=max_rows, seed=seed)
