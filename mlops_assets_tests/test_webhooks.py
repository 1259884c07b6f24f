"""Signed webhooks against a real HTTP receiver on 127.0.0.1."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_assets.core.webhooks import (
    PROMOTED,
    REGISTERED,
    SIGNATURE_HEADER,
    Outbox,
    WebhookEvent,
    deliver,
    notify,
    redeliver,
    signature,
    signature_is_valid,
)
from mlops_assets.settings import Settings
from mlops_assets_tests.conftest import env_for, free_port, run_cli, tick_of

SECRET = "s3cret"


class Receiver:
    """An HTTP server that answers with the scripted statuses (then 200) and keeps every
    request it got, with whether its signature was valid."""

    def __init__(self, port: int, statuses: list[int] = ()) -> None:
        self.statuses, self.received = list(statuses), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                valid = signature_is_valid(SECRET, self.headers[SIGNATURE_HEADER], body)
                receiver.received.append((dict(self.headers), json.loads(body), valid))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    started = Receiver(free_port())
    yield started
    started.close()


def no_wait(_: float) -> None:
    pass


def event() -> WebhookEvent:
    return WebhookEvent.new(REGISTERED, {"version": "2"})


def test_an_event_is_delivered_once_and_signed(receiver):
    sent = event()
    result = deliver(receiver.url, SECRET, sent)
    assert result.delivered and result.attempts == 1
    ((headers, body, valid),) = receiver.received
    assert valid and body["id"] == sent.id and body["schema"] == "mlops-assets/webhook@1"
    assert headers["X-Mlops-Event-Id"] == sent.id and headers["X-Mlops-Event-Type"] == REGISTERED


def test_signatures_reject_tampering_and_stale_timestamps():
    body = event().body()
    header = signature(SECRET, 1_700_000_000, body)
    assert not signature_is_valid(SECRET, header, body)  # years old
    import time

    fresh = signature(SECRET, int(time.time()), body)
    assert signature_is_valid(SECRET, fresh, body)
    assert not signature_is_valid(SECRET, fresh, body.replace(b'"2"', b'"3"'))
    assert not signature_is_valid("other", fresh, body)
    assert not signature_is_valid(SECRET, "garbage", body)


def test_5xx_is_retried_until_the_receiver_recovers(receiver):
    receiver.statuses = [500, 503]
    result = deliver(receiver.url, SECRET, event(), sleep=no_wait)
    assert result.delivered and result.attempts == 3
    assert len({body["id"] for _, body, _ in receiver.received}) == 1  # the same event


def test_4xx_is_not_retried_and_is_kept_as_refused(receiver, tmp_path):
    receiver.statuses = [400]
    outbox = Outbox(tmp_path / "webhooks")
    line = notify(receiver.url, SECRET, outbox, event(), sleep=no_wait)
    assert len(receiver.received) == 1 and "HTTP 400: refused, not retried" in line
    assert not outbox.waiting() and len(list(outbox.refused.glob("*.json"))) == 1


def test_a_down_receiver_gets_the_event_later_exactly_once(tmp_path):
    port = free_port()
    outbox = Outbox(tmp_path / "webhooks")
    sent = event()
    line = notify(f"http://127.0.0.1:{port}/hooks", SECRET, outbox, sent, sleep=no_wait)
    assert "kept for redelivery" in line and [e.id for e, _ in outbox.waiting()] == [sent.id]

    back = Receiver(port)
    try:
        assert redeliver(back.url, SECRET, outbox, sleep=no_wait)["delivered"] == 1
        assert redeliver(back.url, SECRET, outbox, sleep=no_wait)["delivered"] == 0
        assert [body["id"] for _, body, valid in back.received if valid] == [sent.id]
    finally:
        back.close()


def test_registration_succeeds_with_the_receiver_down_and_the_sensor_redelivers(pipeline, tmp_path):
    port = free_port()
    pipeline.settings = Settings.from_env(
        env_for(
            pipeline.home,
            MLOPS_WEBHOOK_URL=f"http://127.0.0.1:{port}/hooks",
            MLOPS_WEBHOOK_SECRET=SECRET,
        )
    )
    result = pipeline.materialize()
    assert result.success  # an undeliverable event never fails the registration
    outbox = Outbox(pipeline.home / "webhooks")
    (waiting, _) = outbox.waiting()[0]
    assert waiting.type == REGISTERED and waiting.data["version"] == "2"

    back = Receiver(port)
    try:
        tick = tick_of(pipeline, sensor_name="webhook_redelivery_sensor")
        assert "1 event(s) redelivered, 0 still waiting" in tick.skip_message
        ((_, body, valid),) = back.received
        assert valid and body["data"]["model_uuid"] and body["data"]["attestation_sha256"]
        assert not outbox.waiting()

        # A promotion by hand is an event too.
        env = env_for(pipeline.home, MLOPS_WEBHOOK_URL=back.url, MLOPS_WEBHOOK_SECRET=SECRET)
        promoted = run_cli(["mlops", "model", "promote", "2", "--reason", "A/B"], env, tmp_path)
        assert promoted.returncode == 0, promoted.stderr
        (_, body, valid) = back.received[-1]
        assert valid and body["type"] == PROMOTED
        assert (body["data"]["version"], body["data"]["how"]) == ("2", "manual")
        assert body["data"]["previous_version"] == "1" and body["data"]["reason"] == "A/B"
    finally:
        back.close()


def test_a_webhook_url_without_a_secret_is_a_config_error(tmp_path):
    from mlops_assets.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="MLOPS_WEBHOOK_SECRET is not"):
        Settings.from_env(env_for(tmp_path, MLOPS_WEBHOOK_URL="http://127.0.0.1:1/"))


def test_the_redelivery_sensor_says_when_webhooks_are_off(pipeline):
    assert (
        "webhooks are off"
        in tick_of(pipeline, sensor_name="webhook_redelivery_sensor").skip_message
    )
