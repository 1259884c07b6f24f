"""Bounded work per contribution: decompression bombs, time limits, huge names, and scratch
folders that never outlive an intake, even a killed one."""

import gzip
import io
import os
import signal
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.core.common.scratch import sweep_stale
from mlops_assets.core.data.reference_data import load_reference_data
from mlops_assets.core.intake.intake import intake_contribution
from mlops_assets.core.intake.processing import process_contribution
from mlops_assets.core.intake.report import IntakePolicy
from mlops_assets.core.intake.text_files import IntakeLimits
from mlops_assets.errors import ContributionTooLargeError, IntakeTimeoutError
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV, VALID_CONTRIBUTION, catalog_at
from mlops_assets_testing.processes import REPO, child_env, env_for

REFERENCE = load_reference_data(IRIS_CSV, IRIS).frame
HEADER = ",".join(IRIS.columns) + "\n"
# 80 MB of one repeated row: compresses a thousandfold, as a bomb does.
REPEATED = HEADER + "5.1,3.5,1.4,0.2,setosa\n" * 3_500_000


def my_scratch() -> list[Path]:
    """This process's intake scratch folders (not the S3 store's mirror, which lives as long
    as the process, left by an S3 test that ran earlier in this worker)."""
    folders = Path(tempfile.gettempdir()).glob(f"mlops-{os.getpid()}-*")
    return [f for f in folders if not f.name.startswith(f"mlops-{os.getpid()}-store-")]


def intake(path, **limits):
    return intake_contribution(
        path,
        IRIS,
        reference=REFERENCE,
        contribution_id="c",
        contributor="alice",
        policy=IntakePolicy(),
        limits=IntakeLimits(**limits),
    )


def zipped(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("bomb.csv.gz", gzip.compress(REPEATED.encode(), 9), "expands"),
        ("bomb.zip", zipped("bomb.csv", REPEATED), "its member says it expands"),
    ],
)
def test_a_decompression_bomb_is_stopped_and_leaves_nothing_behind(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    started = time.monotonic()
    with pytest.raises(ContributionTooLargeError, match=words) as error:
        intake(path)
    assert time.monotonic() - started < 20 and "MLOPS_MAX_COMPRESSION_RATIO" in error.value.hint
    assert my_scratch() == []

    report = process_contribution(
        path,
        IRIS,
        reference=REFERENCE,
        contributions_root=tmp_path / "contributions",
        contribution_id="c",
        contributor="alice",
        policy=IntakePolicy(),
        landing_path=f"alice/{name}",
        records=catalog_at(tmp_path, IRIS),
    )
    assert report.rejection_reasons == {"too_large_when_decompressed": 1} and not report.accepted
    assert "refused unread" in report.decision and str(tmp_path) not in report.decision


def test_the_absolute_limit_is_counted_while_streaming(tmp_path):
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress((HEADER + "5.1,3.5,1.4,0.2,setosa\n" * 2000).encode()))
    with pytest.raises(ContributionTooLargeError, match="more than 10000 bytes"):
        intake(path, max_bytes=10_000)


def test_an_intake_past_its_time_limit_stops_with_a_typed_error(tmp_path):
    path = tmp_path / "slow.csv"
    path.write_text(VALID_CONTRIBUTION)
    with pytest.raises(IntakeTimeoutError, match="longer than"):
        intake(path, timeout_seconds=0.0)
    assert my_scratch() == []


def test_a_5_mb_column_name_is_stored_shortened(tmp_path):
    long_name = "x" * 5_000_000
    path = tmp_path / "wide.csv"
    path.write_text(f"{long_name},{VALID_CONTRIBUTION}".replace("\n", "\n1,", 4).removesuffix("1,"))
    out = tmp_path / "out"
    report = intake_contribution(
        path,
        IRIS,
        reference=REFERENCE,
        contribution_id="c",
        contributor="a",
        policy=IntakePolicy(min_quality=0),
        output_dir=out,
    )
    (dropped,) = [c for c in report.dropped_columns if c.startswith("x")]
    assert len(dropped) < 200 and dropped.endswith("[4999880 more]")
    assert len(str(report.to_dict())) < 20_000
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert all(len(c) < 200 for c in rejected.columns)


def test_scratch_folders_of_dead_processes_are_swept():
    dead = Path(tempfile.mkdtemp(prefix="mlops-4194303-unzip-"))  # above any real pid
    (dead / "half.csv").write_text("left behind by kill -9")
    mine = Path(tempfile.mkdtemp(prefix=f"mlops-{os.getpid()}-text-"))
    try:
        assert dead in sweep_stale() and not dead.exists()
        assert mine.exists()  # a live process's folder stays
    finally:
        mine.rmdir()


@pytest.mark.e2e
def test_a_terminated_check_removes_its_extraction(tmp_path):
    path = tmp_path / "huge.zip"
    row = "5.1,3.5,1.4,0.2,setosa\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # slow to copy, honest ratio
        archive.writestr("huge.csv", HEADER + row * 20_000_000)
    process = subprocess.Popen(
        [str(REPO / ".venv/bin/mlops"), "check", str(path)],
        env=child_env(env_for(tmp_path / "var")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pattern = f"mlops-{process.pid}-*"
    deadline = time.monotonic() + 60
    while not list(Path(tempfile.gettempdir()).glob(pattern)):
        assert process.poll() is None and time.monotonic() < deadline, "no extraction seen"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    assert list(Path(tempfile.gettempdir()).glob(pattern)) == []
