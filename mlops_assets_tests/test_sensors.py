"""The landing-zone sensor and the retrain sensor, evaluated against a real instance."""

import hashlib
import json
import os
import re
import time

import dagster as dg
import pytest

from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.defs.contributions.partitions import STAGE_TAG
from mlops_assets_testing.data import VALID_CONTRIBUTION

RUN_KEY_TAG = "dagster/run_key"
OTHER_CONTRIBUTION = VALID_CONTRIBUTION.replace("5.05", "5.15")


def requested(tick) -> list[str]:
    return [r.tags["mlops/landing_path"] for r in tick.run_requests]


def taken(pipeline, tick) -> None:
    """Apply what the daemon applies after a tick: the partitions it asked to add."""
    for request in tick.dynamic_partitions_requests:
        pipeline.instance.add_dynamic_partitions("contributions", list(request.partition_keys))


@pytest.fixture
def pipeline(pipeline):
    """The conftest pipeline with iris_dataset recorded as materialized: the landing-zone
    sensor waits for it (see test_assets for the wait itself)."""
    pipeline.instance.report_runless_asset_event(dg.AssetMaterialization("iris_dataset"))
    return pipeline


def test_new_files_are_registered_and_requested_once(pipeline):
    pipeline.drop("alice", "a.csv", VALID_CONTRIBUTION)
    pipeline.drop("bob", "b.csv", OTHER_CONTRIBUTION)
    tick = pipeline.tick()
    assert sorted(requested(tick)) == ["alice/a.csv", "bob/b.csv"]
    keys = [r.partition_key for r in tick.run_requests]
    assert list(tick.dynamic_partitions_requests[0].partition_keys) == keys
    assert all(r.run_key.startswith("sha256:") for r in tick.run_requests)

    taken(pipeline, tick)
    again = pipeline.tick(cursor=tick.cursor)
    assert not again.run_requests
    assert "no new files" in again.skip_reason.skip_message


def test_no_timestamp_makes_a_file_invisible(pipeline):
    first = pipeline.drop("alice", "a.csv", VALID_CONTRIBUTION)
    tick = pipeline.tick()
    taken(pipeline, tick)
    # Same modification time as a taken file, and an older one (``cp -p``): both are new.
    same = pipeline.drop("alice", "same-time.csv", OTHER_CONTRIBUTION)
    os.utime(same, (first.stat().st_mtime, first.stat().st_mtime))
    old = pipeline.drop("carol", "copied.csv", VALID_CONTRIBUTION.replace("5.05", "5.25"))
    os.utime(old, (1_000_000_000, 1_000_000_000))
    later = pipeline.tick(cursor=tick.cursor)
    assert sorted(requested(later)) == ["alice/same-time.csv", "carol/copied.csv"]


def test_a_file_still_being_written_waits_until_its_size_stops_changing(pipeline):
    growing = pipeline.drop("alice", "big.csv", VALID_CONTRIBUTION[:80], age=0)
    first = pipeline.tick()
    assert not first.run_requests
    assert "1 still being written" in first.skip_reason.skip_message

    growing.write_text(VALID_CONTRIBUTION)  # more bytes arrive: still on probation
    second = pipeline.tick(cursor=first.cursor)
    assert not second.run_requests

    third = pipeline.tick(cursor=second.cursor)  # unchanged since the last tick: complete
    assert requested(third) == ["alice/big.csv"]


def test_temporary_hidden_sidecar_and_misplaced_files_are_ignored(pipeline):
    for name in (".hidden.csv", "upload.csv.part", "x.csv.tmp", "~lock.csv", "a.csv.meta.json"):
        pipeline.drop("alice", name, VALID_CONTRIBUTION)
    (pipeline.landing / "top-level.csv").write_text(VALID_CONTRIBUTION)
    pipeline.drop("alice/nested", "deep.csv", VALID_CONTRIBUTION)
    tick = pipeline.tick()
    assert not tick.run_requests and "no new files" in tick.skip_reason.skip_message


def test_the_same_bytes_under_another_name_launch_no_second_run(pipeline):
    pipeline.drop("alice", "a.csv", VALID_CONTRIBUTION)
    pipeline.drop("bob", "copy-in-same-tick.csv", VALID_CONTRIBUTION)
    tick = pipeline.tick()
    assert len(tick.run_requests) == 1  # two names, one content
    taken(pipeline, tick)
    request = tick.run_requests[0]
    # The intake run the daemon launches for it carries the run key.
    pipeline.record_run({RUN_KEY_TAG: request.run_key, STAGE_TAG: "ingest"})

    pipeline.drop("carol", "renamed.csv", VALID_CONTRIBUTION)
    later = pipeline.tick(cursor=tick.cursor)
    assert not later.run_requests
    resubmitted = json.loads(later.cursor)["resubmitted"]
    assert "carol/renamed.csv" in resubmitted and "bob/copy-in-same-tick.csv" in resubmitted
    # Different bytes under a taken name's folder are new.
    pipeline.drop("carol", "new.csv", OTHER_CONTRIBUTION)
    assert requested(pipeline.tick(cursor=later.cursor)) == ["carol/new.csv"]


def test_deleted_files_leave_no_trace_in_the_cursor(pipeline):
    pending = pipeline.drop("alice", "half.csv", VALID_CONTRIBUTION, age=0)
    taken_file = pipeline.drop("bob", "b.csv", OTHER_CONTRIBUTION)
    tick = pipeline.tick()
    taken(pipeline, tick)
    assert "alice/half.csv" in json.loads(tick.cursor)["pending"]
    pending.unlink()
    taken_file.unlink()
    later = pipeline.tick(cursor=tick.cursor)
    assert not later.run_requests and json.loads(later.cursor)["pending"] == {}


def test_hostile_names_become_valid_stable_distinct_keys(pipeline):
    names = [
        "my data (final).csv",
        "données_été.csv",
        "up..and..away.csv",
        "a" * 250 + ".csv",  # near the 255-byte limit of a file name
        "semi;colon'quote\".csv",
    ]
    for name in names:
        pipeline.drop("mallory", name, VALID_CONTRIBUTION.replace("5.05", f"5.{len(name) % 90}"))
    tick = pipeline.tick()
    keys = [r.partition_key for r in tick.run_requests]
    assert len(keys) == len(set(keys)) == len(names)
    for key, request in zip(keys, tick.run_requests, strict=True):
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,140}", key) and ".." not in key
        assert key == contribution_key(request.tags["mlops/landing_path"])  # stable
    taken(pipeline, tick)  # Dagster accepts them as partition keys


def retrain_tick(pipeline, cursor=None):
    return pipeline.tick("retrain_sensor", cursor)


def test_retrain_waits_for_intake_and_ignores_rejected_contributions(pipeline):
    assert "no contribution to train on" in retrain_tick(pipeline).skip_reason.skip_message

    pipeline.drop("bob", "bad.csv", "sepal_length,species\nabc,rose\n")
    pipeline.drop("alice", "good.csv", VALID_CONTRIBUTION)
    tick = pipeline.tick()
    taken(pipeline, tick)
    pipeline.materialize("iris_dataset")
    by_path = {r.tags["mlops/landing_path"]: r for r in tick.run_requests}
    bad = by_path["bob/bad.csv"]
    pipeline.materialize(
        "contributed_data", partition_key=bad.partition_key, tags=bad.tags, raise_on_error=False
    )
    rejected_only = retrain_tick(pipeline)
    assert not rejected_only.run_requests
    assert "none accepted" in rejected_only.skip_reason.skip_message

    good = by_path["alice/good.csv"]
    pipeline.materialize("contributed_data", partition_key=good.partition_key, tags=good.tags)
    still_ingesting = pipeline.record_run({STAGE_TAG: "ingest"})
    waiting = retrain_tick(pipeline, rejected_only.cursor)
    assert "waiting: 1 intake(s) still deciding" in waiting.skip_reason.skip_message

    # Once it has materialized its contribution it has decided: its checks still running do
    # not hold up the retrain.
    pipeline.record_materialization(still_ingesting, "contributed_data", "carla--late.csv")
    retrain = retrain_tick(pipeline, rejected_only.cursor)
    assert isinstance(retrain, dg.SensorResult), retrain.skip_message
    (request,) = retrain.run_requests
    assert request.tags[STAGE_TAG] == "retrain"
    assert request.tags["mlops/accepted_contributions"] == good.partition_key

    # The retrain fails (a killed worker, MLflow down): the contribution is not given up, it is
    # retried after a wait that grows with each failure.
    run_tags = {**request.tags, RUN_KEY_TAG: request.run_key}
    failed = pipeline.record_run(run_tags)
    pipeline.instance.report_run_failed(failed)
    backing_off = retrain_tick(pipeline, retrain.cursor)
    assert "1 retrain(s) failed in a row: trying again in" in backing_off.skip_reason.skip_message
    assert json.loads(backing_off.cursor)["through"] == json.loads(retrain.cursor)["through"]

    # Once a retrain covering it succeeds, the batch is done: each batch trains once.
    pipeline.record_run(run_tags, dg.DagsterRunStatus.SUCCESS)
    done = retrain_tick(pipeline, backing_off.cursor)
    assert "no contribution to train on" in done.skip_reason.skip_message
    assert json.loads(done.cursor)["through"] == int(request.tags["mlops/retrain_through"])


def test_the_retrain_backoff_doubles_and_is_capped():
    from mlops_assets.core.modeling.retraining import RetrainCursor, retry_wait

    assert [retry_wait(n) for n in (0, 1, 2, 3, 6, 20)] == [0, 30, 60, 120, 900, 900]
    cursor = RetrainCursor.parse("41")  # the cursor of earlier versions
    assert cursor == RetrainCursor(through=41)
    assert cursor.launching(50).succeeded() == RetrainCursor(through=50)
    assert RetrainCursor.parse(cursor.launching(50).dump()).launched == 50


def test_links_fifos_and_unsafe_names_are_refused_once_and_never_stop_the_tick(
    pipeline, tmp_path, monkeypatch, capsys
):
    from mlops_assets_testing.processes import in_process_mlops

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secrets.csv").write_text(VALID_CONTRIBUTION)
    pipeline.drop("alice", "good.csv", VALID_CONTRIBUTION)
    (pipeline.landing / "mallory").mkdir()
    (pipeline.landing / "mallory" / "x.csv").symlink_to("/etc/passwd")
    (pipeline.landing / "mallory" / "inside.csv").symlink_to(pipeline.landing / "alice/good.csv")
    (pipeline.landing / "linked").symlink_to(outside)  # a contributor folder that is a link
    os.mkfifo(pipeline.landing / "mallory" / "pipe.csv")
    pipeline.drop("eve", "evil\u202egpj.csv", OTHER_CONTRIBUTION)
    pipeline.instance.report_runless_asset_event(dg.AssetMaterialization("iris_dataset"))

    tick = pipeline.tick()
    assert requested(tick) == ["alice/good.csv"]  # the good file is taken all the same
    reported = json.loads(tick.cursor)["reported"]
    assert reported == [
        "eve/evil?gpj.csv",
        "linked",
        "mallory/inside.csv",
        "mallory/pipe.csv",
        "mallory/x.csv",
    ]
    taken(pipeline, tick)
    again = pipeline.tick(cursor=tick.cursor)
    assert "5 refused (see `mlops contributions`)" in again.skip_reason.skip_message

    mlops = in_process_mlops(pipeline.home, monkeypatch, capsys)
    code, out, err = mlops("contributions", "--json")
    assert code == 0, err
    statuses = {row["landing_path"]: (row["status"], row["decision"]) for row in json.loads(out)}
    assert statuses["mallory/x.csv"] == (
        "refused",
        "never read: a symbolic link: it is never followed",
    )
    assert statuses["mallory/pipe.csv"][1].endswith("not a regular file (a device, FIFO or socket)")
    assert "control or invisible characters (U+202E)" in statuses["eve/evil?gpj.csv"][1]
    code, _, err = mlops("check", str(pipeline.landing / "mallory" / "x.csv"))
    assert code == 2 and "is a symbolic link" in err


# ---- a bounded sensor: a per-tick cap, a cursor of constant size (issue 29) -----------------

DAY = 86_400.0


def capped(pipeline, cap: int):
    """The pipeline with the landing-zone sensor taking at most ``cap`` files a tick."""
    from mlops_assets.settings import Settings
    from mlops_assets_testing.processes import env_for

    pipeline.settings = Settings.from_env(
        env_for(pipeline.home, MLOPS_SENSOR_MAX_FILES_PER_TICK=str(cap))
    )
    return pipeline


def test_a_backlog_over_the_cap_is_taken_oldest_first_each_file_once(pipeline):
    capped(pipeline, 5)
    # 23 files dropped long ago (a backlog: the daemon was down), each a second apart.
    names = [f"c{i % 3}/f{i:02d}.csv" for i in range(23)]
    for i, name in enumerate(names):
        contributor, file = name.split("/")
        pipeline.drop(
            contributor, file, VALID_CONTRIBUTION.replace("5.05", f"5.{i:02d}"), age=2 * DAY - i
        )
    cursor, taken_paths, landed, sizes = None, [], [], []
    for _ in range(10):
        tick = pipeline.tick(cursor=cursor)
        cursor = tick.cursor
        sizes.append(len(json.dumps({**json.loads(cursor), "horizon": 0})))  # a time aside
        if not tick.run_requests:
            break
        assert len(tick.run_requests) <= 5
        taken_paths += requested(tick)
        landed += [float(r.tags["mlops/landed_at"]) for r in tick.run_requests]
        taken(pipeline, tick)
    assert len(sizes) == 6  # 5 + 5 + 5 + 5 + 3, then nothing
    assert taken_paths == names  # every file once, oldest first
    assert landed == sorted(landed)  # landing order across ticks is the order taken
    assert "no new files" in tick.skip_reason.skip_message
    # Taken long ago: none of them is in the cursor, which did not grow with them.
    stored = json.loads(cursor)
    assert stored["taken"] == {} and stored["pending"] == {}
    assert not any(name in cursor for name in names)
    assert max(sizes) == min(sizes), sizes
    # Later ticks take nothing again.
    assert not pipeline.tick(cursor=cursor).run_requests


def test_an_edit_of_a_file_taken_long_ago_is_still_a_new_contribution(pipeline):
    landed = pipeline.drop("alice", "a.csv", VALID_CONTRIBUTION, age=30 * DAY)
    first = pipeline.tick()
    (original,) = first.run_requests
    taken(pipeline, first)
    pipeline.record_run({RUN_KEY_TAG: original.run_key, STAGE_TAG: "ingest"})
    quiet = pipeline.tick(cursor=first.cursor)
    assert not quiet.run_requests
    assert "alice/a.csv" not in json.loads(quiet.cursor)["taken"]  # out of the window

    landed.write_text(OTHER_CONTRIBUTION)  # edited now: a time after the horizon
    edited = pipeline.tick(cursor=quiet.cursor)
    (new,) = edited.run_requests
    assert new.tags["mlops/landing_path"] == "alice/a.csv"
    assert new.partition_key != original.partition_key
    assert new.run_key != original.run_key
    taken(pipeline, edited)
    pipeline.record_run({RUN_KEY_TAG: new.run_key, STAGE_TAG: "ingest"})
    assert not pipeline.tick(cursor=edited.cursor).run_requests  # taken once

    # A touch (same bytes, a new time) is not an edit.
    os.utime(landed)
    assert not pipeline.tick(cursor=edited.cursor).run_requests


def test_a_cursor_of_the_previous_format_migrates(pipeline):
    """The cursor earlier versions wrote (every taken file's size and time, no horizon) is read
    as is: nothing is taken twice, an edit it can see is taken, and the next cursor keeps only
    recent files."""
    files = {
        f"c{i}/old.csv": pipeline.drop(
            f"c{i}", "old.csv", VALID_CONTRIBUTION.replace("5.05", f"5.{i}"), age=10 * DAY
        )
        for i in range(8)
    }
    pipeline.instance.add_dynamic_partitions(
        "contributions", [contribution_key(path) for path in files]
    )
    for file in files.values():  # their intake runs, by their content versions
        body = file.read_bytes()
        pipeline.record_run(
            {RUN_KEY_TAG: "sha256:" + hashlib.sha256(body).hexdigest(), STAGE_TAG: "ingest"}
        )
    old_cursor = json.dumps(
        {
            "pending": {},
            "resubmitted": {},
            "reported": [],
            "taken": {p: [f.stat().st_size, f.stat().st_mtime] for p, f in files.items()},
        }
    )
    # One was edited (bigger, an older time restored, as `cp -p` does) before the upgrade.
    edited = files["c3/old.csv"]
    mtime = edited.stat().st_mtime
    edited.write_text(OTHER_CONTRIBUTION + "5.0,3.0,1.5,0.2,setosa\n")
    os.utime(edited, (mtime, mtime))

    tick = pipeline.tick(cursor=old_cursor)
    assert requested(tick) == ["c3/old.csv"]
    assert tick.run_requests[0].partition_key != contribution_key("c3/old.csv")
    migrated = json.loads(tick.cursor)
    assert migrated["taken"] == {} and migrated["horizon"] is not None
    taken(pipeline, tick)
    pipeline.record_run({RUN_KEY_TAG: tick.run_requests[0].run_key, STAGE_TAG: "ingest"})
    later = pipeline.tick(cursor=tick.cursor)
    assert not later.run_requests and "no new files" in later.skip_reason.skip_message
    assert len(later.cursor) < len(old_cursor)

    files["c5/old.csv"].write_text(OTHER_CONTRIBUTION.replace("5.15", "5.35"))  # edited now
    assert requested(pipeline.tick(cursor=later.cursor)) == ["c5/old.csv"]


def test_the_taken_window_and_the_cap_in_the_plan():
    """`plan_tick` on its own clock: a taken file's stamp leaves the cursor once its time is
    past the window, an edit after that is still seen, and files over the cap wait, counted,
    neither taken nor in the cursor as taken."""
    from mlops_assets.core.intake.landing import LandingFile, Listing
    from mlops_assets.core.intake.ticks import RECENT_WINDOW_SECONDS, TickCursor, plan_tick

    runs: set[str] = set()
    known: set[str] = set()

    def tick(files, cursor, now, cap=None):
        plan = plan_tick(
            Listing(files=files),
            known=known,
            cursor=cursor,
            now=now,
            writes_are_atomic=True,
            content_version=lambda f: f"{f.relative_path}:{f.size}",
            already_taken=lambda version: version in runs,
            max_intakes=cap,
        )
        for intake in plan.intakes:  # what the daemon and the intake run leave
            known.add(intake.key)
            runs.add(intake.version)
        return plan

    a = LandingFile("alice/a.csv", "alice", "a.csv", 10, 1000.0)
    first = tick([a], TickCursor(), now=1000.0)
    assert [i.file for i in first.intakes] == [a] and "alice/a.csv" in first.cursor.taken
    later = tick([a], first.cursor, now=1000.0 + RECENT_WINDOW_SECONDS + 1)
    assert not later.intakes and later.cursor.taken == {}
    still = tick([a], later.cursor, now=5000.0)
    assert not still.intakes and still.cursor.taken == {}
    edited = LandingFile("alice/a.csv", "alice", "a.csv", 12, 5001.0)
    (new,) = tick([edited], still.cursor, now=5003.0).intakes
    assert new.file == edited and new.key != first.intakes[0].key

    backlog = [LandingFile(f"b/{i:02d}.csv", "b", f"{i:02d}.csv", 1, 100.0 + i) for i in range(7)]
    plan = tick(list(reversed(backlog)), TickCursor(), now=6000.0, cap=3)
    assert [i.file for i in plan.intakes] == backlog[:3] and plan.deferred == 4
    assert not any(f.relative_path in plan.cursor.dump() for f in backlog[3:])
    rest = tick(backlog, plan.cursor, now=6005.0, cap=3)
    assert [i.file for i in rest.intakes] == backlog[3:6] and rest.deferred == 1
    assert rest.intakes[0].landed_at > plan.intakes[-1].landed_at
    last = tick(backlog, rest.cursor, now=6010.0, cap=3)
    assert [i.file for i in last.intakes] == backlog[6:] and last.deferred == 0
    assert not tick(backlog, last.cursor, now=6015.0, cap=3).intakes


def test_partition_keys_are_read_incrementally_and_whole_again_in_time(tmp_path):
    """The keys a tick compares the zone with are remembered between ticks (the instance is
    made anew for each, from the same reference): keys added since are read, a deleted one
    is forgotten at the next whole read, and another instance never sees them."""
    from mlops_assets.defs.contributions.partition_keys import REREAD_SECONDS, known_partitions

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "a")) as instance:
        instance.add_dynamic_partitions("contributions", ["one", "two"])
        assert known_partitions(instance, "contributions", 0.0) == {"one", "two"}
        with dg.DagsterInstance.from_ref(instance.get_ref()) as same:  # as the next tick's
            same.add_dynamic_partitions("contributions", ["three"])
            same.delete_dynamic_partition("contributions", "two")
            assert known_partitions(same, "contributions", 1.0) == {"one", "two", "three"}
            again = known_partitions(same, "contributions", REREAD_SECONDS)
            assert again == {"one", "three"}
        with dg.instance_for_test(temp_dir=str(tmp_path / "b")) as other:
            other.add_dynamic_partitions("contributions", ["four"])
            assert known_partitions(other, "contributions", 2.0) == {"four"}


def test_a_file_dropped_into_a_quiet_folder_is_taken_at_the_next_tick(pipeline):
    """The sensor keeps the listing of a folder where nothing changed for a while (a large
    zone is not looked at file by file every tick), but a new file in it, even one carrying
    an old time, is taken at the next tick, and a removed one leaves no trace."""
    day_ago = time.time() - DAY
    for i in range(3):
        pipeline.drop(
            "alice", f"old-{i}.csv", VALID_CONTRIBUTION.replace("5.05", f"5.{i}"), age=DAY
        )
    os.utime(pipeline.landing / "alice", (day_ago, day_ago))
    first = pipeline.tick()
    assert len(first.run_requests) == 3
    taken(pipeline, first)
    quiet = pipeline.tick(cursor=first.cursor)  # from the kept listing
    assert not quiet.run_requests

    pipeline.drop("alice", "copied.csv", OTHER_CONTRIBUTION, age=2 * DAY)  # `cp -p`
    (pipeline.landing / "alice" / "old-0.csv").unlink()
    tick = pipeline.tick(cursor=quiet.cursor)
    assert requested(tick) == ["alice/copied.csv"]
    taken(pipeline, tick)
    assert not pipeline.tick(cursor=tick.cursor).run_requests
