"""Standard Webhooks against a real HTTP receiver on 127.0.0.1, verified with the
`standardwebhooks` library exactly as a receiver would."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from mlops_assets.core.registry.webhooks import (
    PROMOTED,
    REGISTERED,
    DeliveryPolicy,
    Outbox,
    WebhookEvent,
    deliver_due,
    new_secret,
    parse_secrets,
    send,
    sign,
)
from mlops_assets.errors import ConfigurationError
from mlops_assets.settings import Settings
from mlops_assets_testing.pipeline import SAME_MODEL_NEW_CONFIG
from mlops_assets_testing.processes import env_for, free_port, run_cli

SECRET = new_secret()
KEYS = parse_secrets(SECRET)
NOW = DeliveryPolicy(timeout=2.0, first_wait=0.0, max_wait=0.0)  # retries are due at once


class Receiver:
    """An HTTP server that answers with the scripted statuses (then 200), optionally slowly,
    and keeps every request with what the standard library made of its signature."""

    def __init__(self, port: int, statuses: list[int] = (), *, secret: str = SECRET) -> None:
        self.statuses, self.received, self.delay = list(statuses), [], 0.0
        self.on_request = lambda: None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.on_request()
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    Webhook(secret).verify(body, dict(self.headers))
                    valid = True
                except WebhookVerificationError:
                    valid = False
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append((headers, json.loads(body), valid))
                time.sleep(receiver.delay)
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


def event() -> WebhookEvent:
    return WebhookEvent.new(REGISTERED, {"version": "2"})


def test_an_event_verifies_with_the_standard_library_and_is_in_the_outbox_first(receiver, tmp_path):
    outbox = Outbox(tmp_path / "webhooks")
    queued_when_sent = []
    receiver.on_request = lambda: queued_when_sent.append(len(outbox.waiting()))
    sent = event()
    line = send(outbox, receiver.url, KEYS, sent, NOW)
    assert "delivered" in line and not outbox.waiting()
    assert queued_when_sent == [1]  # written to the outbox before the first attempt
    ((headers, body, valid),) = receiver.received
    assert valid and body["id"] == sent.id and body["schema"] == "mlops-assets/webhook@2"
    assert headers["webhook-id"] == sent.id and body["type"] == REGISTERED


def test_two_active_secrets_let_either_receiver_verify_while_rotating():
    old, new = new_secret(), new_secret()
    body, now = event().body(), int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(parse_secrets(f"{old} {new}"), "msg_1", now, body),
    }
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_tampering_or_a_stale_timestamp_fails_verification():
    body, now = event().body(), int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(KEYS, "msg_1", now, body),
    }
    Webhook(SECRET).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b'"2"', b'"3"'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, {**headers, "webhook-id": "msg_2"})  # id is signed
    stale = now - 3600
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(
            body,
            {
                **headers,
                "webhook-timestamp": str(stale),
                "webhook-signature": sign(KEYS, "msg_1", stale, body),
            },
        )


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_transient_answers_are_retried_later_with_the_same_event_id(receiver, tmp_path, status):
    receiver.statuses = [status, status]
    outbox = Outbox(tmp_path / "webhooks")
    sent = event()
    assert "next attempt in" in send(outbox, receiver.url, KEYS, sent, NOW)
    assert deliver_due(outbox, receiver.url, KEYS, NOW) == {
        "delivered": 0,
        "waiting": 1,
        "dead": 0,
        "not_due": 0,
    }
    assert deliver_due(outbox, receiver.url, KEYS, NOW)["delivered"] == 1
    assert [body["id"] for _, body, valid in receiver.received if valid] == [sent.id] * 3


def test_backoff_waits_grow_and_are_capped():
    policy = DeliveryPolicy(first_wait=10, max_wait=600)
    assert [policy.wait_after(n) for n in (1, 2, 3, 7, 12)] == [10, 20, 40, 600, 600]


def test_a_refusal_is_not_retried_and_goes_to_dead_with_the_reason(receiver, tmp_path):
    receiver.statuses = [400]
    outbox = Outbox(tmp_path / "webhooks")
    line = send(outbox, receiver.url, KEYS, event(), NOW)
    assert "HTTP 400: refused by the receiver, not retried" in line
    assert not outbox.waiting() and outbox.dead_events()[0]["why"].startswith("HTTP 400")
    assert deliver_due(outbox, receiver.url, KEYS, NOW)["delivered"] == 0
    assert len(receiver.received) == 1


def test_an_event_older_than_its_maximum_age_is_given_up(tmp_path):
    outbox = Outbox(tmp_path / "webhooks")
    down = f"http://127.0.0.1:{free_port()}/hooks"
    send(outbox, down, KEYS, event(), NOW)
    expired = DeliveryPolicy(timeout=1.0, first_wait=0.0, max_wait=0.0, max_age=0.0)
    assert deliver_due(outbox, down, KEYS, expired)["dead"] == 1
    (dead,) = outbox.dead_events()
    assert dead["attempts"] == 2 and "given up after 2 attempt(s)" in dead["why"]


def test_a_slow_receiver_holds_the_sender_for_the_timeout_only(receiver, tmp_path):
    receiver.delay = 3.0
    outbox = Outbox(tmp_path / "webhooks")
    started = time.monotonic()
    line = send(outbox, receiver.url, KEYS, event(), DeliveryPolicy(timeout=0.5))
    assert time.monotonic() - started < 2.5 and "TimeoutError" in line
    assert len(outbox.waiting()) == 1  # delivered later; the receiver dedupes by webhook-id


def test_a_down_receiver_gets_the_event_later_exactly_once(tmp_path):
    port = free_port()
    outbox = Outbox(tmp_path / "webhooks")
    sent = event()
    assert "not delivered" in send(outbox, f"http://127.0.0.1:{port}/hooks", KEYS, sent, NOW)
    assert [e.event.id for e in outbox.waiting()] == [sent.id]

    back = Receiver(port)
    try:
        assert deliver_due(outbox, back.url, KEYS, NOW)["delivered"] == 1
        assert deliver_due(outbox, back.url, KEYS, NOW)["delivered"] == 0
        assert [body["id"] for _, body, valid in back.received if valid] == [sent.id]
    finally:
        back.close()


@pytest.mark.e2e
def test_registration_succeeds_with_the_receiver_down_and_the_sensor_delivers(
    pipeline, tmp_path, monkeypatch
):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks"
    monkeypatch.setenv("MLOPS_WEBHOOK_SECRET", SECRET)  # resources read it as an EnvVar
    pipeline.settings = Settings.from_env(
        env_for(pipeline.home, MLOPS_WEBHOOK_URL=url, MLOPS_WEBHOOK_SECRET=SECRET)
    )
    result = pipeline.materialize(run_config=SAME_MODEL_NEW_CONFIG)
    assert result.success  # an undeliverable event never fails the registration
    outbox = Outbox(pipeline.home / "webhooks")
    # v1, the cold-start champion, is registered and promoted; v2 registered.
    queued = sorted((e.event.data["version"], e.event.type) for e in outbox.waiting())
    assert queued == [("1", PROMOTED), ("1", REGISTERED), ("2", REGISTERED)]

    back = Receiver(port)
    try:
        retried = run_cli(["mlops", "webhook", "retry"], env_for(pipeline.home), tmp_path)
        assert "3 event(s) due now" in retried.stdout  # rather than after the backoff
        tick = pipeline.tick("webhook_redelivery_sensor")
        assert "event(s) delivered, 0 still waiting" in tick.skip_message
        assert all(valid for _, _, valid in back.received)
        registered = [body for _, body, _ in back.received if body["type"] == REGISTERED]
        assert registered and registered[0]["data"]["model_uuid"]
        v2 = next(body["data"] for body in registered if body["data"]["version"] == "2")
        assert v2["delta_intervals"]["log_loss"]["p_value"] == 1.0  # the same model again
        assert v2["contribution_values"] == []  # no contribution yet
        assert not outbox.waiting()

        # A promotion by hand is an event too.
        env = env_for(pipeline.home, MLOPS_WEBHOOK_URL=back.url, MLOPS_WEBHOOK_SECRET=SECRET)
        promoted = run_cli(["mlops", "model", "promote", "1", "--reason", "A/B"], env, tmp_path)
        assert promoted.returncode == 0, promoted.stderr
        (_, body, valid) = back.received[-1]
        assert valid and body["type"] == PROMOTED
        assert (body["data"]["version"], body["data"]["how"]) == ("1", "manual")
        assert body["data"]["reason"] == "A/B"
    finally:
        back.close()


@pytest.mark.parametrize("secret", ["s3cret", "whsec_???", "whsec_c2hvcnQ=", "whsec_ok " + "x"])
def test_a_secret_that_is_not_a_standard_webhooks_secret_is_a_config_error(tmp_path, secret):
    with pytest.raises(ConfigurationError, match="MLOPS_WEBHOOK_SECRET: secret"):
        Settings.from_env(
            env_for(tmp_path, MLOPS_WEBHOOK_URL="http://127.0.0.1:1/", MLOPS_WEBHOOK_SECRET=secret)
        )


def test_a_webhook_url_without_a_secret_is_a_config_error(tmp_path):
    with pytest.raises(ConfigurationError, match="MLOPS_WEBHOOK_SECRET is not"):
        Settings.from_env(env_for(tmp_path, MLOPS_WEBHOOK_URL="http://127.0.0.1:1/"))


def test_the_redelivery_sensor_says_when_webhooks_are_off(pipeline):
    assert "webhooks are off" in pipeline.tick("webhook_redelivery_sensor").skip_message
