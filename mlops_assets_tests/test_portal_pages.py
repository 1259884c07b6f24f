"""The portal's pages under Starlette's TestClient, over a real catalog, landing folder and
intake: sessions and their cookie, CSRF on every form, the sign-in rate limit, security
headers, escaping, and one account never seeing another's pages. The same pages in a real
browser, against the real pipeline: test_portal_browser.py."""

import json
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlops_assets.core.accounts.sessions import IDLE_SECONDS, MAX_SECONDS, Sessions, same_token
from mlops_assets.core.common import layout
from mlops_assets.portal.web import SESSION_COOKIE
from mlops_assets_testing.data import new_flowers
from mlops_assets_testing.portal import Door

VERSIONS: list[tuple[str, dict[str, str], float | None]] = []
HOSTILE = "<script>alert('x')</script> \"O'Brien\" &amp; <b>bold</b>"
HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"
PUBLIC_PAGES = ("/sign-in", "/scoreboard", "/how-value-is-computed")
SIGNED_IN_PAGES = ("/contributions", "/upload", "/webhook")


def flowers(seed: int, per_class: int = 5) -> bytes:
    return new_flowers(per_class=per_class, seed=seed).to_csv(index=False).encode()


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    door = Door(tmp_path_factory.mktemp("pages"), VERSIONS)
    _, door.tokens["alice"] = door.portal.accounts.add("alice", HOSTILE, public=True)
    _, door.tokens["bob"] = door.portal.accounts.add("bob", "Bob Private", public=False)
    return door


@pytest.fixture(autouse=True)
def no_versions():
    VERSIONS.clear()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def signed_in(door: Door, who: str, **client: object) -> TestClient:
    """A browser of its own (its own cookies), signed in as ``who``."""
    browser = TestClient(door.client.app, **client)
    page = browser.get("/sign-in")
    answer = browser.post(
        "/sign-in",
        data={"token": door.tokens[who], "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/contributions"
    return browser


def upload(browser: TestClient, body: bytes, name: str, **fields: str):
    csrf = csrf_of(browser.get("/upload").text)
    data = {"csrf": csrf, "license": "CC0-1.0", "consent": "yes", **fields}
    return browser.post("/upload", data=data, files={"file": (name, body, "text/csv")})


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_signing_in_opens_a_session_whose_cookie_holds_no_token(door, caplog):
    caplog.set_level(logging.DEBUG)
    browser = TestClient(door.client.app)
    assert browser.get("/contributions", follow_redirects=False).headers["location"] == "/sign-in"
    page = browser.get("/sign-in")
    token = door.tokens["alice"]
    answer = browser.post(
        "/sign-in", data={"token": token, "csrf": csrf_of(page.text)}, follow_redirects=False
    )
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=lax"} <= flags
    assert "secure" not in flags  # plain http here: a Secure cookie would never come back
    assert token not in cookie and token not in answer.headers["location"]
    listing = browser.get("/contributions")
    assert listing.status_code == 200 and "My contributions" in listing.text
    assert token not in listing.text and token not in caplog.text

    # Signing out ends the session on the server: the old cookie opens nothing.
    old = browser.cookies.get(SESSION_COOKIE)
    out = browser.post("/sign-out", data={"csrf": csrf_of(listing.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/sign-in"
    stale = TestClient(door.client.app, cookies={SESSION_COOKIE: old})
    assert stale.get("/contributions", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_secure_over_https_and_when_configured(tmp_path):
    over_https = signed_in(door_for(tmp_path / "a"), "alice", base_url="https://testserver")
    assert any(c.secure for c in over_https.cookies.jar if c.name == SESSION_COOKIE)
    # Configured: Secure even where the request looks like plain http (behind a proxy that
    # does not say it was https); such a browser sends it back over https only.
    always = door_for(tmp_path / "b", MLOPS_PORTAL_SECURE_COOKIE="true")
    page = TestClient(always.client.app).get("/sign-in")
    assert "; secure" in page.headers["set-cookie"].lower()
    assert signed_in(always, "alice", base_url="https://testserver")
    never = door_for(tmp_path / "c", MLOPS_PORTAL_SECURE_COOKIE="false")
    over_https = signed_in(never, "alice", base_url="https://testserver")
    assert not any(c.secure for c in over_https.cookies.jar if c.name == SESSION_COOKIE)


def door_for(home: Path, **env: str) -> Door:
    door = Door(home, [], **env)
    door.account("alice")
    return door


def test_a_form_without_its_sessions_csrf_token_is_refused(door):
    alice = signed_in(door, "alice")
    answer = upload(alice, flowers(1), "kept.csv")
    cid = re.search(r'href="/contributions/([^"]+)"', answer.text).group(1)
    door.take_in("alice/kept.csv")
    forged = {"csrf": "not-the-token"}
    for path, data in (
        ("/upload", {**forged, "license": "CC0-1.0", "consent": "yes"}),
        (f"/contributions/{cid}/withdraw", {**forged, "confirm": "yes"}),
        ("/webhook", {**forged, "url": "https://example.org/hook"}),
        ("/sign-out", forged),
        (f"/contributions/{cid}/withdraw", {"confirm": "yes"}),  # none at all
    ):
        refused = alice.post(path, data=data, follow_redirects=False)
        assert refused.status_code == 403, path
        assert "did not come from this site" in refused.text
    # Nothing happened: still signed in, still there, not withdrawn.
    page = alice.get(f"/contributions/{cid}")
    assert page.status_code == 200 and "status-accepted" in page.text
    # Another session's token is not this one's.
    bob = signed_in(door, "bob")
    theirs = csrf_of(bob.get("/upload").text)
    stolen = alice.post(f"/contributions/{cid}/withdraw", data={"csrf": theirs, "confirm": "yes"})
    assert stolen.status_code == 403
    # Signing in needs the token the sign-in page set in its own cookie.
    fresh = TestClient(door.client.app)
    forged_sign_in = fresh.post("/sign-in", data={"token": door.tokens["alice"], "csrf": "x"})
    assert forged_sign_in.status_code == 403
    # With its token and the box ticked, it is withdrawn.
    withdrawn = alice.post(
        f"/contributions/{cid}/withdraw", data={"csrf": csrf_of(page.text), "confirm": "yes"}
    )
    assert withdrawn.status_code == 200 and "status-withdrawn" in withdrawn.text
    assert "Withdrawn." in withdrawn.text


def test_withdrawal_needs_its_confirmation(door):
    alice = signed_in(door, "alice")
    upload(alice, flowers(2), "unconfirmed.csv")
    report = door.take_in("alice/unconfirmed.csv")
    page = alice.get(f"/contributions/{report.contribution_id}")
    answer = alice.post(
        f"/contributions/{report.contribution_id}/withdraw", data={"csrf": csrf_of(page.text)}
    )
    assert answer.status_code == 422 and "Nothing was withdrawn" in answer.text
    assert "status-accepted" in alice.get(f"/contributions/{report.contribution_id}").text


def test_sign_in_attempts_are_rate_limited_per_client(tmp_path):
    door = Door(tmp_path, [], MLOPS_PORTAL_AUTH_FAILURES_PER_MINUTE="3")
    door.account("alice")
    browser = TestClient(door.client.app)

    def attempt(token: str):
        page = browser.get("/sign-in")
        return browser.post(
            "/sign-in", data={"token": token, "csrf": csrf_of(page.text)}, follow_redirects=False
        )

    for _ in range(3):
        wrong = attempt("mlops_wrong")
        assert wrong.status_code == 401 and "not one of ours" in wrong.text
    refused = attempt(door.tokens["alice"])  # even the right token, from this client, for now
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "too many failed sign-ins" in refused.text
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")


def test_every_page_sends_the_security_headers_and_no_inline_script_or_style(door):
    alice = signed_in(door, "alice")
    upload(alice, flowers(3), "headers.csv")
    report = door.take_in("alice/headers.csv")
    pages = [*PUBLIC_PAGES, *SIGNED_IN_PAGES, f"/contributions/{report.contribution_id}"]
    for path in [*pages, "/upload/result", "/contributions/no-such-id", "/static/portal.css"]:
        answer = alice.get(path)
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
        if answer.headers["content-type"].startswith("text/html"):
            assert answer.headers["cache-control"] == "no-store", path
            assert '<html lang="en">' in answer.text and "<h1>" in answer.text
            assert not re.search(r"<script(?![^>]*\bsrc=)", answer.text), path
            assert not re.search(r"\sstyle=|<style", answer.text), path
            # An event handler attribute in a tag (an escaped " onerror=" in a hostile file
            # name another test uploaded is text, after "&lt;", not in a tag).
            assert not re.search(r"<[a-zA-Z][^<>]*\son[a-z]+=", answer.text), path
    assert alice.get("/contributions/no-such-id").status_code == 404


def test_every_label_names_its_field(door):
    alice = signed_in(door, "alice")
    for path in ("/sign-in", "/upload", "/webhook"):
        html = (alice if path != "/sign-in" else TestClient(door.client.app)).get(path).text
        fields = re.findall(r'<(?:input|select)(?![^>]*type="hidden")[^>]*\sid="([^"]+)"', html)
        labelled = set(re.findall(r'<label for="([^"]+)"', html))
        assert fields and set(fields) <= labelled, (path, fields, labelled)


def test_contributor_supplied_strings_are_shown_as_text(door):
    alice = signed_in(door, "alice")
    listing = alice.get("/contributions").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in listing
    assert "<script>alert" not in listing and "<b>bold" not in listing
    hostile_cells = (
        HEADER
        + "5.1,3.5,1.4,0.2,<img src=x onerror=alert(1)>\n"
        + "5.0,3.4,1.5,0.2,\u202eesotes\n"
        + '4.9,3.1,1.5,0.1,"""quoted"" & <i>"\n'
        + "4.8,3.0,1.4,0.1,"
        + "<u>" * 50_000
        + "\n"  # a 150 kB cell
    )
    name = "<img src=x onerror=alert(2)> 'tulips'.csv"
    shown = "&lt;img src=x onerror=alert(2)&gt; &#39;tulips&#39;.csv"
    answer = upload(alice, hostile_cells.encode(), name)
    assert answer.status_code == 200, text_of(answer.text)[:500]
    assert shown in answer.text and "<img" not in answer.text
    assert "What to do:" in answer.text
    report = door.take_in(f"alice/{name}")
    page = alice.get(f"/contributions/{report.contribution_id}").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page
    assert "\u202eesotes" in page  # shown as it is, inside an isolating <bdi>
    assert "&lt;i&gt;" in page and "<i>" not in page
    assert shown in page
    assert "&lt;u&gt;" * 66 + "&lt;u…[149800 more]" in page and len(page) < 100_000


def test_one_account_never_sees_another_accounts_pages(door):
    alice, bob = signed_in(door, "alice"), signed_in(door, "bob")
    upload(alice, flowers(4), "secret-name.csv")
    cid = door.take_in("alice/secret-name.csv").contribution_id
    missing = bob.get("/contributions/nothing-here-00000000")
    theirs = bob.get(f"/contributions/{cid}")
    assert missing.status_code == theirs.status_code == 404
    assert text_of(theirs.text) == text_of(missing.text)  # not a hint that it exists
    withdraw = bob.post(
        f"/contributions/{cid}/withdraw",
        data={"csrf": csrf_of(bob.get("/upload").text), "confirm": "yes"},
    )
    assert withdraw.status_code == 404
    assert "secret-name" not in bob.get("/contributions").text
    assert "status-accepted" in alice.get(f"/contributions/{cid}").text


def test_the_scoreboard_shows_only_accounts_that_opted_in_by_display_name(door):
    board = pd.DataFrame(
        [
            {"contributor": c, "accepted": 1, "rejected": 0, "excluded": 0, "rows": 15,
             "mean_quality_score": 90.0, "total_value": v, "model_versions": "v2"}
            for c, v in (("alice", 0.02), ("bob", 0.05), ("carol", 0.09))
        ]
    )  # fmt: skip
    path = Path(door.settings.storage_uri) / layout.SCOREBOARD
    path.parent.mkdir(parents=True, exist_ok=True)
    board.to_parquet(path)
    page = TestClient(door.client.app).get("/scoreboard")  # nobody signed in
    assert page.status_code == 200
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert "Bob Private" not in page.text and "carol" not in page.text
    assert "bob" not in text_of(page.text).lower().replace("o&#39;brien", "")
    assert "+0.0200" in page.text and "90" not in text_of(page.text)  # no quality scores
    path.unlink()


def test_one_contribution_shows_its_timeline_value_counterfactual_and_history(door):
    alice = signed_in(door, "alice")
    upload(alice, flowers(5), "valued.csv")
    report = door.take_in("alice/valued.csv")
    cid = report.contribution_id
    value = {"contribution_id": cid, "value_interval": [0.002, 0.018], "status": "included"}
    VERSIONS.extend(
        [
            ("1", {"cold_start": "true"}, report.landed_at - 60),
            (
                "2",
                {
                    "contributions": json.dumps([cid]),
                    "benchmark_log_loss": "0.1234",
                    "contribution_values": json.dumps(
                        [{**value, "value": 0.01, "loo_delta": 0.008, "reason": "it helped"}]
                    ),
                },
                report.landed_at + 60,
            ),
        ]
    )
    html = alice.get(f"/contributions/{cid}").text
    words = text_of(html)
    for said in ("Received", "Checked", "Taken in", "Valued", "In model v2", "+0.0100"):
        assert said in words, said
    assert "[+0.0020, +0.0180]" in words and "+0.0080" in words and "0.1234" in words
    assert "<svg" in html and 'role="img"' in html and "<circle" in html
    assert "(the latest version is v2)" in words
    listing = text_of(alice.get("/contributions").text)
    assert "+0.0100" in listing and "[+0.0020, +0.0180]" in listing and "v2" in listing


def test_the_upload_form_refuses_what_the_api_refuses_and_says_why(door):
    alice = signed_in(door, "alice")
    no_consent = upload(alice, flowers(6), "no-consent.csv", consent="")
    assert no_consent.status_code == 422 and "consent" in no_consent.text.lower()
    bad_license = upload(alice, flowers(6), "bad-license.csv", license="WTFPL")
    assert bad_license.status_code == 422 and "license" in bad_license.text.lower()
    again = upload(alice, flowers(6), "first-time.csv")
    same = upload(alice, flowers(6), "second-time.csv")
    assert again.status_code == same.status_code == 200
    assert "Sent before" in same.text


def test_the_webhook_page_registers_refuses_and_removes_a_url(door, tmp_path):
    alice = signed_in(door, "alice")
    page = alice.get("/webhook")
    assert page.status_code == 200 and "Register" in page.text
    private = alice.post("/webhook", data={"csrf": csrf_of(page.text), "url": "http://10.0.0.1/x"})
    assert private.status_code == 422 and "private" in private.text.lower()
    allowed = door_for(tmp_path, MLOPS_WEBHOOK_ALLOW_PRIVATE="true")
    browser = signed_in(allowed, "alice")
    csrf = csrf_of(browser.get("/webhook").text)
    shown = browser.post("/webhook", data={"csrf": csrf, "url": "http://127.0.0.1:9/<hook>"})
    assert shown.status_code == 200 and "whsec_" in shown.text
    assert "http://127.0.0.1:9/&lt;hook&gt;" in shown.text and "Deliveries" in shown.text
    removed = browser.post("/webhook", data={"csrf": csrf, "remove": "yes"})
    assert removed.status_code == 200 and "whsec_" not in removed.text


def test_a_session_ends_when_idle_too_long_or_too_old_and_ids_are_never_reused():
    now = [1000.0]
    sessions = Sessions(clock=lambda: now[0])
    idle = sessions.open("alice", "0" * 64)
    now[0] += IDLE_SECONDS + 1
    assert sessions.get(idle.id) is None
    busy = sessions.open("alice", "0" * 64)
    assert busy.id != idle.id and busy.csrf != idle.csrf
    while now[0] - busy.created_at <= MAX_SECONDS:
        assert sessions.get(busy.id) is busy  # kept alive by use, for a working day at most
        now[0] += IDLE_SECONDS / 2
    assert sessions.get(busy.id) is None
    assert sessions.get(None) is None and sessions.get("made-up") is None
    assert same_token(busy.csrf, busy.csrf) and not same_token("", busy.csrf)
    assert not same_token(None, busy.csrf)


def test_a_revoked_token_or_a_disabled_account_signs_its_sessions_out(tmp_path):
    door = door_for(tmp_path)
    browser = signed_in(door, "alice")
    door.portal.accounts.rotate("alice")  # another token: this one stays valid
    assert browser.get("/contributions", follow_redirects=False).status_code == 200
    door.portal.accounts.rotate("alice", revoke_old=True)
    out = browser.get("/contributions", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/sign-in"
    assert "Signed in as" not in browser.get("/scoreboard").text
    door.tokens["alice"] = door.portal.accounts.rotate("alice")
    again = signed_in(door, "alice")
    door.portal.accounts.set_disabled("alice", True)
    assert again.get("/upload", follow_redirects=False).status_code == 303
