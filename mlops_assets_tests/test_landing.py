"""The landing zone, local and on S3 (a real local S3-compatible server)."""

from pathlib import Path

import boto3
import dagster as dg
import pytest

from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.errors import LandingEntryRefusedError
from mlops_assets.resources import LocalLandingZone, landing_zone
from mlops_assets.resources.s3 import S3LandingZone
from mlops_assets.settings import Settings
from mlops_assets_testing.data import VALID_CONTRIBUTION
from mlops_assets_testing.processes import env_for

WAITING = ["alice/a.csv.part", "alice/a.csv.meta.json", "alice/~lock.csv", "alice/.DS_Store"]
REFUSED = {
    "alice/.hidden.csv": "a hidden file",
    "top.csv": "not inside a contributor folder",
    "a/b/c.csv": "inside a folder of a contributor folder",
    "eve/evil\u202egpj.csv": "control or invisible characters (U+202E)",
    "eve/\x1b[31mred.csv": "control or invisible characters (U+001B)",  # a terminal escape
}


@pytest.fixture
def local_zone(tmp_path):
    return LocalLandingZone(root=str(tmp_path / "landing"))


@pytest.fixture
def s3_zone(s3_endpoint, s3_bucket, tmp_path):
    settings = Settings.from_env(
        env_for(
            tmp_path / "var",
            MLOPS_LANDING_URI=f"s3://{s3_bucket}/incoming",
            MLOPS_S3_ENDPOINT_URL=s3_endpoint,
        )
    )
    zone = landing_zone(settings)
    assert isinstance(zone, S3LandingZone) and zone.location == f"s3://{s3_bucket}/incoming"
    return zone


def put_text(zone, tmp_path, relative_path: str, text: str) -> None:
    source = tmp_path / "upload"
    source.write_text(text)
    zone.put(source, relative_path)


def place(zone, relative_path: str, text: str) -> None:
    """Write into the zone directly, as a contributor's own tools would (no checks)."""
    if isinstance(zone, LocalLandingZone):
        path = Path(zone.root).joinpath(*relative_path.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    else:
        boto3.client("s3", endpoint_url=zone.s3.endpoint_url).put_object(
            Bucket=zone.bucket, Key=f"{zone.prefix}/{relative_path}", Body=text.encode()
        )


@pytest.mark.parametrize("flavour", ["local_zone", "s3_zone"])
def test_lists_contributions_only_refuses_the_rest_and_round_trips_bytes(
    flavour, request, tmp_path
):
    zone = request.getfixturevalue(flavour)
    for path in [*WAITING, *REFUSED]:
        place(zone, path, VALID_CONTRIBUTION)
    for path in ["alice/batch 1.csv", "bob/b.csv"]:
        put_text(zone, tmp_path, path, VALID_CONTRIBUTION)
    listing = zone.scan()
    assert sorted(f.relative_path for f in listing.files) == ["alice/batch 1.csv", "bob/b.csv"]
    refused = {entry.relative_path: entry.reason for entry in listing.refused}
    assert len(refused) == len(REFUSED)
    for path, words in REFUSED.items():
        shown = path.replace("\u202e", "?").replace("\x1b", "?")  # never shown as they are
        if shown == "a/b/c.csv" and flavour == "local_zone":
            shown = "a/b"  # a local folder inside a contributor folder is refused whole
        assert words in refused[shown], (path, refused)
    alice = next(f for f in listing.files if f.contributor == "alice")
    assert alice.name == "batch 1.csv" and alice.size == len(VALID_CONTRIBUTION)
    with zone.local_copy(alice.relative_path) as path:
        assert path.read_text() == VALID_CONTRIBUTION
    bob = next(f for f in listing.files if f.contributor == "bob")
    assert zone.content_version(alice) == zone.content_version(bob)  # same bytes


@pytest.mark.parametrize("flavour", ["local_zone", "s3_zone"])
def test_paths_outside_the_zone_are_refused(flavour, request, tmp_path):
    zone = request.getfixturevalue(flavour)
    source = tmp_path / "f.csv"
    source.write_text("x")
    with pytest.raises(LandingEntryRefusedError, match="refused"):
        zone.put(source, "../../etc/evil.csv")


def test_s3_listing_follows_pagination_past_1000_keys(s3_zone, s3_endpoint, s3_bucket):
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    for i in range(1010):
        client.put_object(Bucket=s3_bucket, Key=f"incoming/c{i % 7}/f{i:04d}.csv", Body=b"x")
    assert len(s3_zone.list_files()) == 1010


def test_the_sensor_takes_every_new_key_past_1000_on_s3(pipeline, s3_endpoint, s3_bucket):
    pipeline.settings = Settings.from_env(
        env_for(
            pipeline.home,
            MLOPS_LANDING_URI=f"s3://{s3_bucket}/incoming",
            MLOPS_S3_ENDPOINT_URL=s3_endpoint,
        )
    )
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    for i in range(1005):
        client.put_object(Bucket=s3_bucket, Key=f"incoming/c{i % 7}/f{i:04d}.csv", Body=f"{i}")
    pipeline.instance.report_runless_asset_event(dg.AssetMaterialization("iris_dataset"))
    # Objects are whole when listed: no tick waits for one to settle. Past the per-tick cap
    # (500 by default) the rest wait for the next ticks.
    per_tick, cursor = [], None
    for _ in range(3):
        tick = pipeline.tick(cursor=cursor)
        per_tick.append([r.partition_key for r in tick.run_requests])
        pipeline.instance.add_dynamic_partitions("contributions", per_tick[-1])
        cursor = tick.cursor
    assert [len(keys) for keys in per_tick] == [500, 500, 5]
    keys = {key for keys in per_tick for key in keys}
    assert keys == {contribution_key(f"c{i % 7}/f{i:04d}.csv") for i in range(1005)}


def test_a_contribution_on_s3_flows_through_sensor_and_intake(pipeline, s3_endpoint, s3_bucket):
    pipeline.settings = Settings.from_env(
        env_for(
            pipeline.home,
            MLOPS_LANDING_URI=f"s3://{s3_bucket}/incoming",
            MLOPS_S3_ENDPOINT_URL=s3_endpoint,
        )
    )
    pipeline.materialize("iris_dataset")
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(
        Bucket=s3_bucket, Key="incoming/carol/iris.csv", Body=VALID_CONTRIBUTION.encode()
    )
    tick = pipeline.tick()
    key = contribution_key("carol/iris.csv")
    assert [r.partition_key for r in tick.run_requests] == [key]
    assert tick.run_requests[0].run_key.startswith("etag:")

    pipeline.launch(tick.run_requests[0])
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("contributed_data"))
    metadata = event.asset_materialization.metadata
    assert metadata["accepted"].value is True and metadata["rows_clean"].value == 4
    assert metadata["contributor"].value == "carol"


def test_a_missing_landing_bucket_is_a_clear_error(s3_endpoint, s3_bucket, tmp_path):
    from mlops_assets.errors import StorageUnavailableError

    settings = Settings.from_env(
        env_for(
            tmp_path / "var",
            MLOPS_LANDING_URI="s3://no-such-bucket/incoming",
            MLOPS_S3_ENDPOINT_URL=s3_endpoint,
        )
    )
    zone = landing_zone(settings)
    with pytest.raises(StorageUnavailableError, match="s3://no-such-bucket/incoming does not"):
        zone.list_files()
    upload = tmp_path / "upload.csv"
    upload.write_text(VALID_CONTRIBUTION)
    with pytest.raises(StorageUnavailableError, match="create it"):
        zone.put(upload, "alice/a.csv")


def test_a_quiet_folder_is_listed_once_and_any_entry_added_or_removed_is_seen_at_once(tmp_path):
    """A contributor folder where nothing changed for the quiet window keeps its listing
    between scans: an edit in place of a file that old waits for the refresh, but a file
    added, removed or renamed (the folder's time changes), a folder with a recent file, and a
    folder swapped for a link are seen at the next scan, as a fresh listing sees them."""
    import os
    import shutil
    import time

    from mlops_assets.core.intake.landing import KeptFolders, scan_folder

    day_ago = time.time() - 86_400

    def put(relative: str, text: str, mtime: float = day_ago) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        os.utime(path, (mtime, mtime))
        return path

    for name in ("a.csv", "b.csv", "c.csv"):
        put(f"alice/{name}", name)
    put("bob/old.csv", "old")
    busy = put("carol/uploading.csv", "1,2", mtime=time.time())
    for folder in ("alice", "bob"):
        os.utime(tmp_path / folder, (day_ago, day_ago))
    clock = [time.time()]
    kept = KeptFolders(quiet_seconds=900, refresh_seconds=60, clock=lambda: clock[0])

    def sizes(listing) -> dict[str, int]:
        return {f.relative_path: f.size for f in listing.files}

    assert sizes(scan_folder(tmp_path, kept)) == sizes(scan_folder(tmp_path))
    # Edited in place, its old time put back: alice's folder is quiet and kept until refresh.
    put("alice/a.csv", "a much longer body")
    busy.write_text("1,2,3,4")  # carol's folder is not quiet: looked at every scan
    seen = sizes(scan_folder(tmp_path, kept))
    assert seen["alice/a.csv"] == len("a.csv")
    assert seen["carol/uploading.csv"] == len("1,2,3,4")
    clock[0] += 61
    assert sizes(scan_folder(tmp_path, kept)) == sizes(scan_folder(tmp_path))

    # A file added with an old time, one removed, one renamed, a folder gone: all at once.
    put("alice/copied.csv", "cp -p")
    (tmp_path / "alice" / "b.csv").unlink()
    (tmp_path / "alice" / "c.csv").rename(tmp_path / "alice" / "d.csv")
    shutil.rmtree(tmp_path / "bob")
    after = scan_folder(tmp_path, kept)
    assert sizes(after) == sizes(scan_folder(tmp_path))
    assert sorted(sizes(after)) == [
        "alice/a.csv",
        "alice/copied.csv",
        "alice/d.csv",
        "carol/uploading.csv",
    ]

    # A quiet folder swapped for a link to another: refused, never read through its listing.
    put("dave/x.csv", "x")
    os.utime(tmp_path / "dave", (day_ago, day_ago))
    assert "dave/x.csv" in sizes(scan_folder(tmp_path, kept))
    (tmp_path / "dave").rename(tmp_path / ".dave")
    (tmp_path / "dave").symlink_to(tmp_path / ".dave")
    swapped = scan_folder(tmp_path, kept)
    assert "dave/x.csv" not in sizes(swapped)
    assert "dave" in [r.relative_path for r in swapped.refused]
