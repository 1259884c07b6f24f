"""Per-account webhooks: a contributor's receiver hears each step of its own contributions
once, signed with its own secret, through the outbox; URLs that lead to the server's own
network are refused (at registration and at every delivery), and redirects are not followed."""

import http.server
import threading
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook

from mlops_assets.core.accounts.webhooks import WebhookRefusedError, vetted_address
from mlops_assets.portal.app import notifier_for
from mlops_assets_testing.data import new_flowers
from mlops_assets_testing.portal import Door, valued_version

VERSIONS: list[tuple[str, dict[str, str], float | None]] = []


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps what it was sent and answers ``status``
    (with a ``Location`` when it redirects)."""

    def __init__(self, status: int = 204) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = status
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                if 300 <= receiver.status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, secret: str) -> list[dict]:
        """Every event received, each verified with ``secret`` as a receiver would."""
        return [Webhook(secret).verify(body, headers) for headers, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def door(tmp_path):
    VERSIONS.clear()
    door = Door(tmp_path, VERSIONS, MLOPS_WEBHOOK_ALLOW_PRIVATE="true")
    door.account("alice")
    door.account("bob")
    return door


def test_a_contributor_hears_each_step_of_its_own_contributions_once(door, receiver):
    status, hook = door.call("PUT", "/webhook", "alice", json={"url": receiver.url})
    assert status == 200 and hook["secret"].startswith("whsec_")
    assert door.call("GET", "/webhook", "alice")[1] == hook
    assert door.call("GET", "/webhook", "bob")[0] == 404
    notifier = notifier_for(door.settings, door.portal)

    body = new_flowers(per_class=5, seed=31).to_csv(index=False).encode()
    answer = door.upload("alice", body, "heard.csv")[1]
    door.upload("bob", new_flowers(per_class=5, seed=32).to_csv(index=False).encode(), "b.csv")
    cid = answer["contribution_id"]
    report = door.take_in(answer["landing_path"])
    door.take_in("bob/b.csv")
    assert notifier.tick()["delivered"] == 1
    VERSIONS.append(valued_version("2", cid, 0.02, (0.01, 0.03), report.landed_at + 1))
    assert notifier.tick()["delivered"] == 2
    assert door.call("POST", f"/contributions/{cid}/withdraw", "alice")[0] == 200
    assert notifier.tick()["delivered"] == 1
    assert notifier.tick() == {"queued": 0, "delivered": 0, "waiting": 0, "dead": 0}

    events = receiver.events(hook["secret"])
    assert [e["type"] for e in events] == [
        "contribution.checked",
        "contribution.valued",
        "contribution.trained_on",
        "contribution.withdrawn",
    ]
    assert {e["data"]["contribution_id"] for e in events} == {cid}  # never bob's
    assert events[2]["data"]["version"] == "2"
    status, log = door.call("GET", "/webhook/deliveries", "alice")
    assert status == 200 and len(log["deliveries"]) == 4
    assert {d["outcome"] for d in log["deliveries"]} == {"delivered"}

    # Moving the webhook keeps its secret; deleting it stops the events.
    moved = door.call("PUT", "/webhook", "alice", json={"url": receiver.url + "?v=2"})[1]
    assert moved["secret"] == hook["secret"]
    assert door.client.delete("/api/v1/webhook", headers=_auth(door, "alice")).status_code == 204
    assert door.call("GET", "/webhook", "alice")[0] == 404


def _flowers(seed: int) -> bytes:
    return new_flowers(per_class=5, seed=seed).to_csv(index=False).encode()


def _auth(door: Door, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {door.tokens[who]}"}


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "not a public address"),
        ("ftp://example.com/hook", "only http and https"),
        ("http://user:pw@example.com/hook", "credentials"),
        ("http://no-such-host.invalid/hook", "cannot be resolved"),
    ],
)
def test_a_url_that_leads_to_the_servers_own_network_is_refused(tmp_path, url, problem):
    door = Door(tmp_path, VERSIONS)  # the operator did not allow private addresses
    door.account("mallory")
    status, answer = door.call("PUT", "/webhook", "mallory", json={"url": url})
    assert status == 422 and problem in answer["detail"], answer
    with pytest.raises(WebhookRefusedError):
        vetted_address(url, allow_private=False)


def test_a_url_is_checked_again_at_every_delivery_and_redirects_are_not_followed(door, receiver):
    door.call("PUT", "/webhook", "alice", json={"url": receiver.url})
    answer = door.upload("alice", _flowers(33), "x.csv")[1]
    door.take_in(answer["landing_path"])
    # The operator no longer allows private addresses: the registered URL is not called.
    settings = door.settings.__class__.from_env(
        {"MLOPS_HOME": str(door.settings.home), "MLOPS_WEBHOOK_ALLOW_PRIVATE": "false"}
    )
    assert notifier_for(settings, door.portal).tick()["dead"] == 1
    assert receiver.received == []
    deliveries = door.call("GET", "/webhook/deliveries", "alice")[1]["deliveries"]
    assert "loopback" in deliveries[0]["detail"] and deliveries[0]["outcome"] == "dead"

    redirecting = Receiver(status=302)
    try:
        door.call("PUT", "/webhook", "alice", json={"url": redirecting.url})
        door.upload("alice", _flowers(34), "y.csv")
        door.take_in("alice/y.csv")
        assert notifier_for(door.settings, door.portal).tick()["dead"] == 1
        assert len(redirecting.received) == 1
        last = door.call("GET", "/webhook/deliveries", "alice")[1]["deliveries"][0]
        assert "redirects are not followed" in last["detail"]
    finally:
        redirecting.server.shutdown()
