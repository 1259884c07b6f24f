"""A large upload is answered at once (202) and pre-checked in the background: its status URL
says where the check stands, then gives the verdict a small upload gets at once; another
account cannot ask; idempotency keys and the same-bytes rule hold; after a restart the status
says what is known and the pipeline's intake gives the verdict."""

import threading
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlops_assets.portal.app import create_app, portal_from_settings
from mlops_assets.portal.models import UploadAnswer, UploadChecking
from mlops_assets_testing.data import new_flowers
from mlops_assets_testing.portal import Door, served

# Files of 15 flowers are some 400 bytes: every one is "large" here.
INLINE_BYTES = "100"


def flowers(seed: int) -> bytes:
    return new_flowers(per_class=5, seed=seed).to_csv(index=False).encode()


class Gate:
    """Holds the door's pre-checks until opened, so a test sees them queued and running."""

    def __init__(self, door: Door) -> None:
        self.opened, self.entered = threading.Event(), threading.Event()
        uploads = door.portal.uploads
        real = uploads._check

        def check(path, contributor):
            self.entered.set()
            assert self.opened.wait(30), "the test never opened the gate"
            return real(path, contributor)

        uploads._check = check


@pytest.fixture
def door(tmp_path):
    door = Door(tmp_path, [], MLOPS_PORTAL_CHECK_INLINE_BYTES=INLINE_BYTES)
    door.account("alice")
    door.account("bob")
    return door


def poll(door: Door, who: str, url: str, *, until: int = 200) -> tuple[int, dict]:
    deadline = time.monotonic() + 30
    while True:
        response = door.client.get(url, headers={"Authorization": f"Bearer {door.tokens[who]}"})
        if response.status_code == until or time.monotonic() > deadline:
            return response.status_code, response.json()
        time.sleep(0.05)


def test_a_large_upload_is_answered_at_once_then_polled_to_the_same_verdict(door, tmp_path_factory):
    gate = Gate(door)
    status, first = door.upload("alice", flowers(1), "big.csv", key="k1")
    assert status == 202, first
    UploadChecking.model_validate(first)
    assert first["status"] == "checking" and first["size"] == len(flowers(1))
    url = first["status_url"]
    assert url == f"/api/v1/uploads/{first['contribution_id']}"
    # It landed at once; its check runs (held at the gate), a second upload waits its turn.
    assert (Path(door.settings.landing_uri) / "alice/big.csv").read_bytes() == flowers(1)
    assert gate.entered.wait(30)
    status, second = door.upload("alice", flowers(2), "bigger.csv")
    assert status == 202
    assert poll(door, "alice", url, until=202)[1]["stage"] == "checking"
    queued = poll(door, "alice", second["status_url"], until=202)[1]
    assert queued["stage"] == "queued" and queued["queue_position"] == 1, queued
    assert "number 1 in line" in queued["detail"]
    # Another account's upload is not found, as one that does not exist.
    assert poll(door, "bob", url, until=404)[0] == 404
    assert poll(door, "bob", "/api/v1/uploads/nothing-of-that-name", until=404)[0] == 404
    # The same key while it is checked: the same upload, still being checked.
    again = door.upload("alice", flowers(1), "big.csv", key="k1")
    assert again[0] == 202 and again[1]["replayed"]
    assert again[1]["contribution_id"] == first["contribution_id"]
    gate.opened.set()
    status, verdict = poll(door, "alice", url)
    assert status == 200, verdict
    UploadAnswer.model_validate(verdict)
    # The verdict a small upload gets at once, word for word.
    small = Door(tmp_path_factory.mktemp("inline"), [])
    small.account("alice")
    inline = small.upload("alice", flowers(1), "big.csv")[1]
    same = {k for k in inline if k not in {"contribution_id", "landing_path"}}
    assert {k: verdict[k] for k in same} == {k: inline[k] for k in same}
    assert verdict["status"] == "received" and verdict["accepted"] and verdict["rows_clean"] == 15
    # Its key now replays the verdict, and the same bytes again are that contribution.
    replayed = door.upload("alice", flowers(1), "big.csv", key="k1")
    assert replayed == (200, {**verdict, "replayed": True})
    copy = door.upload("alice", flowers(1), "copy.csv")
    assert copy[0] == 200 and copy[1]["duplicate_of"] == first["contribution_id"]
    assert poll(door, "alice", second["status_url"])[0] == 200
    # The timeline says it was checked, once the check is done.
    _, detail = door.call("GET", f"/contributions/{first['contribution_id']}", "alice")
    assert [step["step"] for step in detail["timeline"]][:2] == ["received", "checked"]


def test_a_small_upload_is_checked_at_once_and_its_status_url_repeats_its_answer(tmp_path):
    bigger = Door(tmp_path, [])
    bigger.account("carol")
    status, answer = bigger.upload("carol", flowers(3), "small.csv")
    assert status == 201 and answer["accepted"]
    cid = answer["contribution_id"]
    assert bigger.call("GET", f"/uploads/{cid}", "carol") == (200, answer)


def test_after_a_restart_the_status_says_what_is_known_and_the_intake_gives_the_verdict(door):
    gate = Gate(door)
    status, answer = door.upload("alice", flowers(4), "restarted.csv", key=str(uuid.uuid4()))
    assert status == 202 and gate.entered.wait(30)
    # Another process over the same home: it knows the upload landed, not its check, and
    # clears the spools a killed one left.
    left = door.settings.home / "uploads" / "mlops-upload-killed"
    left.mkdir()
    (left / "half.csv").write_text("sepal_length\n5.1\n")
    restarted = TestClient(create_app(door.settings, portal_from_settings(door.settings)))
    assert not left.exists()
    headers = {"Authorization": f"Bearer {door.tokens['alice']}"}
    waiting = restarted.get(answer["status_url"], headers=headers)
    assert waiting.status_code == 202
    assert waiting.json()["stage"] == "waiting_for_intake", waiting.json()
    _, detail = door.call("GET", f"/contributions/{answer['contribution_id']}", "alice")
    assert [step["step"] for step in detail["timeline"]] == ["received"]
    # The pipeline takes it in: its verdict, from the intake.
    door.take_in(answer["landing_path"])
    done = restarted.get(answer["status_url"], headers=headers)
    assert done.status_code == 200 and done.json()["accepted"], done.json()
    assert done.json()["rows_clean"] == 15
    gate.opened.set()


def test_the_checks_wait_their_turn_on_a_bounded_pool(door):
    gate = Gate(door)
    answers = [door.upload("alice", flowers(10 + i), f"queue-{i}.csv")[1] for i in range(4)]
    assert gate.entered.wait(30)
    checks = door.portal.uploads.checks
    assert checks.workers == 1 and checks.waiting() == 4
    stages = [checks.progress(a["contribution_id"]) for a in answers]
    assert [s["stage"] for s in stages] == ["checking", "queued", "queued", "queued"]
    assert [s["queue_position"] for s in stages] == [None, 1, 2, 3]
    gate.opened.set()
    for answer in answers:
        assert poll(door, "alice", answer["status_url"])[0] == 200
    deadline = time.monotonic() + 10
    while checks.waiting() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checks.waiting() == 0
    # Their spooled files are gone once checked.
    assert not list((door.settings.home / "uploads").iterdir())


def test_a_served_portal_splits_the_reference_data_before_the_first_upload(tmp_path):
    """The first pre-check would otherwise split the reference data (a second) while its
    upload waits."""
    door = Door(tmp_path, [])
    prechecker = door.portal.warm_up.__self__
    assert prechecker._split is None
    with served(create_app(door.settings, door.portal)):
        deadline = time.monotonic() + 30
        while prechecker._split is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert prechecker._split is not None
