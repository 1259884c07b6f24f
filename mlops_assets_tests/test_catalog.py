"""The contribution catalog: intakes look up earlier rows in it instead of reading every
earlier file, retrains read the accepted rows from it, and it agrees with the report files
after a home written before it existed is opened, and after an intake is killed between its
files and the catalog (SQLite, as embedded, and PostgreSQL, as in production)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from mlops_assets.core.catalog.catalog import ContributionCatalog, load_accepted
from mlops_assets.core.catalog.sync import open_catalog
from mlops_assets.core.common.row_matching import RowMatching
from mlops_assets.core.data.reference_data import benchmark_split, load_reference_data
from mlops_assets.core.intake.report import read_report
from mlops_assets.core.storage.places import LocalStore
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV, ingested, new_flowers
from mlops_assets_testing.topology import catalog_database

SPLIT = benchmark_split(load_reference_data(IRIS_CSV, IRIS), IRIS, fraction=0.3, seed=42)
MATCHING = RowMatching.for_intake(IRIS, SPLIT.train, SPLIT.benchmark)


@pytest.fixture
def store(tmp_path):
    """A dataset store folder with the reference parts, as the reference asset writes them."""
    root = tmp_path / "storage"
    (root / "reference").mkdir(parents=True)
    SPLIT.train.to_parquet(root / "reference" / "train.parquet")
    SPLIT.benchmark.to_parquet(root / "reference" / "benchmark.parquet")
    return root


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """A fresh catalog database: an SQLite file, or a new PostgreSQL database on 127.0.0.1."""
    with catalog_database(request.param, tmp_path) as url:
        yield url


def ingest(store, records, cid: str, rows: pd.DataFrame, landed_at: float, tmp_path):
    """Into the store's folder, as its contributions folder is: ``store/contributions``."""
    del tmp_path  # the file is written beside the contributions
    who = cid.split("-")[0]
    return ingested(rows, store, SPLIT, records, cid=cid, who=who, landed_at=landed_at)


def test_an_intake_finds_earlier_copies_through_the_catalog(url, store, tmp_path):
    catalog = ContributionCatalog(url, IRIS)
    original = new_flowers(per_class=20, seed=11)
    assert ingest(store, catalog, "alice-1", original, 100.0, tmp_path).accepted
    moved = original.assign(sepal_length=original["sepal_length"] + 0.04)  # within 0.1 cm
    copy = ingest(store, catalog, "mallory-1", moved, 200.0, tmp_path)
    assert copy.rejection_reasons == {"duplicate_of_contribution": 60} and not copy.accepted
    # The same bytes again are found by their hash.
    original.to_csv(tmp_path / "again.csv", index=False)
    again = ingest(store, catalog, "bob-1", original, 300.0, tmp_path)
    assert again.duplicate_of == "alice-1"
    # Only what landed earlier counts: rows that landed before alice's are hers to lose.
    shifted = original.assign(sepal_width=original["sepal_width"] + 0.02)
    earlier = ingest(store, catalog, "carol-1", shifted, 50.0, tmp_path)
    assert earlier.accepted and earlier.rows_clean == 60

    listed = catalog.entries()
    assert [e.report.contribution_id for e in listed] == [
        "carol-1",
        "alice-1",
        "mallory-1",
        "bob-1",
    ]
    assert [e.report.contribution_id for e in catalog.entries(contributor="mallory")] == [
        "mallory-1"
    ]
    assert [e.report.contribution_id for e in catalog.entries(limit=2, offset=1)] == [
        "alice-1",
        "mallory-1",
    ]
    assert catalog.count() == 4 and catalog.count(contributor="alice") == 1
    loaded = load_accepted(catalog, max_rows=0, seed=1).split()
    assert [c.contribution_id for c in loaded] == ["carol-1", "alice-1"]
    on_disk = pd.read_parquet(store / "contributions" / "alice-1" / "clean.parquet")
    kept = ["row_index", *IRIS.columns]  # what a retrain reads (not the outlier flag)
    pd.testing.assert_frame_equal(
        loaded[1].rows[kept].reset_index(drop=True), on_disk[kept], check_dtype=False
    )


def test_a_small_intake_reads_only_the_earlier_rows_that_match_its_own(url, store, tmp_path):
    """An intake of a few rows looks them up in their neighbouring cells and gets back only
    the earlier rows that match one of them (same label, every measurement within 0.1 cm):
    what it reads does not grow with the rows earlier contributions brought."""
    catalog = ContributionCatalog(url, IRIS)
    many = new_flowers(per_class=700, seed=5)
    assert ingest(store, catalog, "big-1", many, 1.0, tmp_path).rows_clean > 1500
    probe = pd.concat([many.iloc[[3, 900]], new_flowers(per_class=1, seed=77)])
    probe.iloc[0, 0] += 0.05  # a copy moved by half the resolution still matches
    probe.iloc[1, 4] = "setosa" if probe.iloc[1, 4] != "setosa" else "virginica"  # relabelled
    near = catalog.earlier_rows(probe, (2.0, "probe-1"), MATCHING)
    assert list(near.columns) == IRIS.columns
    found = [row.tolist() for _, row in near.iterrows()]
    assert many.iloc[3].tolist() in found and many.iloc[900].tolist() not in found
    for row in found:  # each one matches a row of the probe, label and all
        assert any(
            row[4] == mine[4]
            and all(abs(a - b) < 0.1 for a, b in zip(row[:4], mine[:4], strict=True))
            for mine in probe.itertuples(index=False)
        )
    assert catalog.earlier_rows(probe, (0.5, "probe-1"), MATCHING).empty  # none landed before


def test_a_withdrawn_contribution_leaves_the_training_rows_and_keeps_its_record(
    url, store, tmp_path
):
    catalog = ContributionCatalog(url, IRIS)
    ingest(store, catalog, "alice-1", new_flowers(per_class=5, seed=1), 1.0, tmp_path)
    ingest(store, catalog, "bob-1", new_flowers(per_class=5, seed=2), 2.0, tmp_path)
    catalog.withdraw("alice-1")
    assert [c.contribution_id for c in load_accepted(catalog, max_rows=0, seed=1).split()] == [
        "bob-1"
    ]
    (alice,) = catalog.entries(contributor="alice")
    assert alice.withdrawn_at is not None and alice.report.accepted


def test_a_retrain_reads_its_snapshot_and_the_catalog_only_for_what_changed(url, store, tmp_path):
    """The compacted copy of the accepted rows gives the training set the catalog gives: after
    a new contribution (read beside it), a re-recorded one (read again), a withdrawal (its
    rows gone from the copy on disk too) and a file that is not such a copy (ignored)."""
    from mlops_assets.core.data.integration import integrate
    from mlops_assets.resources.storage import LocalDatasetStore

    catalog = ContributionCatalog(url, IRIS)
    datasets = LocalDatasetStore(root=str(store))
    snapshot = datasets.snapshot(datasets.ACCEPTED_ROWS)
    copy_on_disk = store / datasets.ACCEPTED_ROWS

    def training_set(with_snapshot: bool):
        batch = load_accepted(
            catalog, max_rows=0, seed=1, snapshot=snapshot if with_snapshot else None
        )
        return integrate(SPLIT.train, batch, SPLIT.benchmark, IRIS, seed=3)

    def agree():
        fast, every = training_set(True), training_set(False)
        pd.testing.assert_frame_equal(fast.frame, every.frame)
        return fast

    ingest(store, catalog, "alice-1", new_flowers(per_class=5, seed=1), 1.0, tmp_path)
    ingest(store, catalog, "bob-1", new_flowers(per_class=5, seed=2), 2.0, tmp_path)
    agree()
    assert set(pd.read_parquet(copy_on_disk)["contribution_id"]) == {"alice-1", "bob-1"}
    written = copy_on_disk.stat().st_mtime_ns

    ingest(store, catalog, "carol-1", new_flowers(per_class=5, seed=3), 3.0, tmp_path)
    assert "carol-1" in agree().rows_by_source
    assert copy_on_disk.stat().st_mtime_ns == written  # a few new rows: read beside it

    bob = new_flowers(per_class=4, seed=4)  # recorded again with other rows: read again
    ingest(store, catalog, "bob-1", bob, 2.0, tmp_path)
    assert agree().rows_by_source["bob-1"] == 12

    catalog.withdraw("alice-1")
    assert "alice-1" not in agree().rows_by_source
    assert "alice-1" not in set(pd.read_parquet(copy_on_disk)["contribution_id"])

    pd.DataFrame({"something": ["else"]}).to_parquet(copy_on_disk)
    assert set(agree().rows_by_source) == {IRIS.name, "bob-1", "carol-1"}
    assert set(pd.read_parquet(copy_on_disk)["contribution_id"]) == {"bob-1", "carol-1"}


def test_a_home_written_before_the_catalog_opens_with_nothing_lost(url, store, tmp_path):
    """Today's reports and clean files, with no catalog: opening imports them once."""
    before = ContributionCatalog(f"sqlite:///{tmp_path}/old.sqlite", IRIS)  # only to write files
    for n, landed in ((1, 10.0), (2, 20.0)):
        ingest(store, before, f"alice-{n}", new_flowers(per_class=4, seed=n), landed, tmp_path)
    (store / "contributions" / "bad").mkdir()
    bad = read_report(store / "contributions" / "alice-1" / "report.json")
    bad.contribution_id, bad.accepted, bad.rows_clean, bad.landed_at = "bad", False, 0, 5.0
    (store / "contributions" / "bad" / "report.json").write_text(json.dumps(bad.to_dict()))

    catalog = open_catalog(url, IRIS, LocalStore(store))
    assert [e.report.contribution_id for e in catalog.entries()] == ["bad", "alice-1", "alice-2"]
    assert [c.contribution_id for c in load_accepted(catalog, max_rows=0, seed=1).split()] == [
        "alice-1",
        "alice-2",
    ]
    assert not catalog.needs_import()
    catalog.withdraw("alice-2")
    # Opened again, nothing is imported twice and nothing withdrawn comes back.
    again = open_catalog(url, IRIS, LocalStore(store))
    assert [c.contribution_id for c in load_accepted(again, max_rows=0, seed=1).split()] == [
        "alice-1"
    ]


KILLED_INTAKE = """
import os, signal, sys
import pandas as pd
from mlops_assets.core.catalog.catalog import ContributionCatalog
from mlops_assets.core.intake.processing import process_contribution
from mlops_assets.core.intake.report import IntakePolicy
from mlops_assets.task import IRIS
from mlops_assets_tests.test_catalog import SPLIT

url, store, path = sys.argv[1:]
process_contribution(
    __import__("pathlib").Path(path), IRIS, reference=SPLIT.train, benchmark=SPLIT.benchmark,
    contributions_root=__import__("pathlib").Path(store) / "contributions",
    contribution_id="alice-1", contributor="alice", policy=IntakePolicy(),
    landing_path="alice/a.csv", landed_at=1.0, records=ContributionCatalog(url, IRIS),
    # Killed once its files are stored, before the catalog hears of the outcome.
    publish=lambda report: os.kill(os.getpid(), signal.SIGKILL),
)
"""


def test_an_intake_killed_between_its_files_and_the_catalog_is_completed(url, store, tmp_path):
    rows = new_flowers(per_class=10, seed=3)
    rows.to_csv(tmp_path / "a.csv", index=False)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILLED_INTAKE),
            url,
            str(store),
            str(tmp_path / "a.csv"),
        ],
        cwd=os.getcwd(),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (store / "contributions" / "alice-1" / "report.json").exists()
    stuck = ContributionCatalog(url, IRIS)
    assert [cid for cid, _ in stuck.stuck()] == ["alice-1"]
    assert load_accepted(stuck, max_rows=0, seed=1).split() == []  # not yet: the catalog missed it

    catalog = open_catalog(url, IRIS, LocalStore(store))
    assert catalog.stuck() == []
    (entry,) = catalog.entries()
    assert entry.recorded and entry.report.accepted and entry.report.rows_clean == 30
    # Its rows are known again: a copy that lands later is refused.
    moved = rows.assign(petal_width=rows["petal_width"] + 0.03)
    copy = ingest(store, catalog, "mallory-1", moved, 2.0, tmp_path)
    assert copy.rejection_reasons == {"duplicate_of_contribution": 30}


def test_parallel_intakes_all_record(url, store, tmp_path):
    """Intakes run in parallel processes (one per run): each records, none is lost."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from mlops_assets.core.catalog.catalog import ContributionCatalog
        from mlops_assets.core.intake.processing import process_contribution
        from mlops_assets.core.intake.report import IntakePolicy
        from mlops_assets.task import IRIS
        from mlops_assets_tests.test_catalog import SPLIT

        url, store, path, cid = sys.argv[1:]
        process_contribution(
            Path(path), IRIS, reference=SPLIT.train, benchmark=SPLIT.benchmark,
            contributions_root=Path(store) / "contributions", contribution_id=cid,
            contributor=cid, policy=IntakePolicy(), landing_path=f"{cid}/x.csv",
            records=ContributionCatalog(url, IRIS),
        )
        """
    )
    ContributionCatalog(url, IRIS)  # the tables, before the race
    workers = []
    for n in range(4):
        path = tmp_path / f"{n}.csv"
        new_flowers(per_class=3, seed=40 + n).to_csv(path, index=False)
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", script, url, str(store), str(path), f"c{n}"],
                env={**os.environ, "PYTHONPATH": os.getcwd()},
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read()
    catalog = ContributionCatalog(url, IRIS)
    assert sorted(e.report.contribution_id for e in catalog.entries() if e.recorded) == [
        "c0",
        "c1",
        "c2",
        "c3",
    ]
    assert sum(len(c.rows) for c in load_accepted(catalog, max_rows=0, seed=1).split()) == 36


def test_a_retrain_compares_only_the_contributions_an_intake_could_not_see():
    from mlops_assets.core.data.integration import Contribution, unseen_by_intake

    def c(cid, landed, looked, recorded):
        return Contribution(
            cid, cid, pd.DataFrame(), landed_at=landed, looked_up_at=looked, recorded_at=recorded
        )

    facts = [
        c("a", 100, 1_000, 1_010),  # taken in late: recorded after b looked up
        c("b", 103, 1_005, 1_006),
        c("c", 200, 5_000, 5_001),  # looked up long after everything before it was recorded
        c("d", 300, 9_000, 9_002),
        c("e", 301, 9_001, 9_003),  # ran together with d
    ]
    assert unseen_by_intake(facts) == {"a", "b", "d", "e"}
    assert unseen_by_intake([*facts, c("x", 400, None, None)]) is None  # unknown: all


def test_the_catalog_s_retrain_keeps_what_comparing_every_row_keeps(store, tmp_path):
    """Intakes out of landing order and in parallel, then a retrain: comparing only what an
    intake could not see gives the training set that comparing every row gives."""
    from dataclasses import replace

    from mlops_assets.core.data.integration import ContributedRows, integrate

    catalog = ContributionCatalog(f"sqlite:///{tmp_path}/catalog.sqlite", IRIS)
    alice = new_flowers(per_class=10, seed=21)
    copy = alice.assign(petal_length=alice["petal_length"] + 0.03)
    # mallory's copy lands after alice's file but is taken in first: neither intake sees
    # the other; bob's partial copy is taken in after both and refused at intake.
    assert ingest(store, catalog, "mallory-1", copy, 103.0, tmp_path).accepted
    assert ingest(store, catalog, "alice-1", alice, 100.0, tmp_path).accepted
    bob = ingest(
        store,
        catalog,
        "bob-1",
        alice.iloc[:9].assign(sepal_width=lambda f: f["sepal_width"] - 0.02),
        200.0,
        tmp_path,
    )
    assert bob.rejection_reasons == {"duplicate_of_contribution": 9}
    assert ingest(
        store, catalog, "carol-1", new_flowers(per_class=5, seed=22), 300.0, tmp_path
    ).accepted

    # The intakes ran seconds apart here; spread them as a day of arrivals would be.
    spread = {"alice-1": (1_000, 1_010), "mallory-1": (1_005, 1_006), "carol-1": (9_000, 9_001)}
    c = catalog.contributions.c
    with catalog._engine.begin() as db:
        for cid, (looked, recorded) in spread.items():
            db.execute(
                catalog.contributions.update()
                .where(c.contribution_id == cid)
                .values(looked_up_at=looked, recorded_at=recorded)
            )
    batch = load_accepted(catalog, max_rows=0, seed=1)
    assert unseen_by_intake_of(batch) == {"alice-1", "mallory-1"}  # carol's are not compared
    fast = integrate(SPLIT.train, batch, SPLIT.benchmark, IRIS, seed=3)
    unknown = [replace(f, looked_up_at=None, recorded_at=None) for f in batch.facts]
    every = integrate(
        SPLIT.train, ContributedRows(batch.rows, unknown), SPLIT.benchmark, IRIS, seed=3
    )
    pd.testing.assert_frame_equal(fast.frame, every.frame)
    assert fast.sha256 == every.sha256 and fast.already_given == every.already_given
    assert fast.already_given["mallory-1"].rows == 30 and "mallory-1" not in fast.rows_by_source


def unseen_by_intake_of(batch) -> set[str]:
    from mlops_assets.core.data.integration import unseen_by_intake

    return unseen_by_intake(batch.facts)
