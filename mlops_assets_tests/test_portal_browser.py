"""The portal in a real browser: Debian's headless Chromium (Selenium, chromium-driver) on
the real portal served by uvicorn on 127.0.0.1, over the real pipeline (its intake, retrain
and registration on a real Dagster instance and MLflow store, run by the test where the
sensors would run them). One pipeline, one server and one browser for the module.

Set ``MLOPS_PORTAL_SCREENSHOTS`` to a folder to keep a screenshot of every page visited."""

import os
import time
from pathlib import Path

import pytest

from mlops_assets.core.registry.reader import model_versions
from mlops_assets.portal.app import create_app, portal_from_settings
from mlops_assets.settings import Settings
from mlops_assets_testing.browser import chromium, loaded_from, wait_until
from mlops_assets_testing.data import new_flowers
from mlops_assets_testing.pipeline import deployment
from mlops_assets_testing.portal import served

# A real browser, server and pipeline: left out of `make test-fast`, as the other browser tests.
pytestmark = pytest.mark.e2e

HOSTILE = "<script>alert('pwned')</script> \"Quoted\" O'Brien"
HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"


class Site:
    """The pipeline, the portal served over it, a browser, and the accounts' tokens."""

    def __init__(self, pipeline, url: str, browser, tokens: dict[str, str], files: Path):
        self.pipeline, self.url, self.browser, self.tokens = pipeline, url, browser, tokens
        self.files = files

    # ---- the browser --------------------------------------------------------------------

    def open(self, path: str) -> None:
        self.browser.get(self.url + path)
        self.shot()

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.browser.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str):
        from selenium.webdriver.common.by import By

        return self.browser.find_elements(By.CSS_SELECTOR, css)

    def text(self) -> str:
        return self.find("main").text

    def sign_in(self, who: str) -> None:
        self.browser.delete_all_cookies()
        self.open("/sign-in")
        self.find("#token").send_keys(self.tokens[who])
        self.find("form.stack button[type=submit]").click()
        wait_until(lambda: self.browser.current_url.endswith("/contributions"), timeout=20,
                   what=f"{who}'s contributions after signing in")  # fmt: skip
        self.shot()

    def upload(self, name: str, text: str, license: str = "CC-BY-4.0") -> str:
        """Upload through the form (its script sends it with a progress bar); the pre-check
        report's words."""
        from selenium.webdriver.support.ui import Select

        path = self.files / name
        path.write_text(text, encoding="utf-8")
        self.open("/upload")
        self.find("#file").send_keys(str(path))
        Select(self.find("#license")).select_by_value(license)
        self.find("#consent").click()
        self.find("#upload-form button[type=submit]").click()
        wait_until(lambda: self.browser.current_url.endswith("/upload/result"), timeout=30,
                   what=f"the pre-check report of {name}")  # fmt: skip
        self.shot()
        return self.text()

    def contribution_link(self, name: str) -> str:
        from selenium.webdriver.common.by import By

        self.open("/contributions")
        link = self.browser.find_element(By.XPATH, f"//a[bdi[contains(., '{name}')]]")
        return link.get_attribute("href").removeprefix(self.url)

    def no_alert(self) -> None:
        from selenium.common.exceptions import NoAlertPresentException

        with pytest.raises(NoAlertPresentException):
            self.browser.switch_to.alert  # noqa: B018 (reading it is the check)

    def shot(self) -> None:
        folder = os.environ.get("MLOPS_PORTAL_SCREENSHOTS")
        if not folder:
            return
        height = self.browser.execute_script("return document.documentElement.scrollHeight")
        self.browser.set_window_size(1400, max(800, min(height + 120, 6000)))
        name = self.browser.current_url.removeprefix(self.url).strip("/").replace("/", "_")
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.browser.save_screenshot(
            str(Path(folder) / f"{int(time.time() * 1000)}-{name or 'root'}.png")
        )

    # ---- the pipeline, where its sensors would run it -------------------------------------

    def take_in_and_retrain(self) -> str:
        """The intakes the contribution sensor asks for, then a retrain; the latest version."""
        for landed in self.pipeline.landing.rglob("*"):
            if landed.is_file():
                os.utime(landed, (time.time() - 60, time.time() - 60))  # complete, for the sensor
        for request in self.pipeline.tick().run_requests:
            self.pipeline.launch(request)
        self.pipeline.retrain()
        return self.latest()

    def latest(self) -> str:
        return max((v.version for v in self.versions()), key=int)

    def versions(self):
        settings = self.pipeline.settings
        return model_versions(settings.tracking_uri, settings.model_name)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("portal-site")
    with deployment(root) as pipeline:
        pipeline.materialize()  # the cold start: v1
        settings = Settings.from_env(
            {"MLOPS_HOME": str(pipeline.home), "MLOPS_PORTAL_NOTIFY_SECONDS": "0"}
        )
        portal = portal_from_settings(settings)

        def versions():  # the registry as it is now (the server's reader caches 5 s)
            found = model_versions(settings.tracking_uri, settings.model_name)
            return [(v.version, v.tags, v.created_at) for v in found]

        portal._versions = versions
        tokens = {}
        _, tokens["alice"] = portal.accounts.add("alice", HOSTILE, public=True)
        _, tokens["bob"] = portal.accounts.add("bob", "Bob")
        files = root / "files"
        files.mkdir()
        with served(create_app(settings, portal)) as url, chromium(offline=True) as browser:
            yield Site(pipeline, url, browser, tokens, files)


def test_a_good_file_is_accepted_valued_in_a_model_then_withdrawn_and_left_out(site):
    site.sign_in("alice")
    words = site.upload("flowers.csv", new_flowers(per_class=10, seed=5).to_csv(index=False))
    assert "Accepted by the pre-check" in words and "30 accepted" in words
    page = site.contribution_link("flowers.csv")
    site.open(page)
    assert "Received" in site.text() and "pending" in site.text()

    before = site.latest()
    version = site.take_in_and_retrain()
    assert int(version) == int(before) + 1
    site.open(page)
    words = site.text()
    in_model = f"In model v{version}"
    for said in ("Taken in", "Valued", in_model, "95 % interval", "With and without it"):
        assert said in words, said
    steps = [e.text.split("\n")[0] for e in site.finds(".timeline .what")]
    assert steps[:2] == ["Received", "Checked"] and steps[-1] == in_model, steps
    chart = site.find("svg.chart")
    assert chart.get_attribute("role") == "img" and site.finds("svg.chart circle.point")
    assert f"v{version}" in site.find("table.list").text  # the chart's numbers, as a table
    assert loaded_from(site.browser) == {site.url}  # nothing from elsewhere

    # Withdrawn (confirmed by ticking a box), and the next version is trained without it.
    site.find("#confirm").click()
    site.find("button.danger").click()
    wait_until(lambda: "withdrawn=1" in site.browser.current_url, timeout=20, what="withdrawal")
    site.shot()
    assert "Withdrawn" in [e.text.split("\n")[0] for e in site.finds(".timeline .what")]
    cid = page.rsplit("/", 1)[1]
    # Without it the data would be v1's again (no version for that): another file comes.
    site.upload("more.csv", new_flowers(per_class=10, seed=6).to_csv(index=False))
    next_version = site.take_in_and_retrain()
    assert int(next_version) > int(version)
    trained = {v.version: v.tags.get("contributions", "[]") for v in site.versions()}
    assert cid in trained[version] and cid not in trained[next_version]
    site.open(page)
    assert f"(the latest version is v{next_version})" in site.text()
    assert f"In model versions\nv{version} " in site.text()  # and in no later one


def test_a_refused_file_shows_its_hint_and_hostile_strings_stay_text(site):
    site.sign_in("alice")
    assert site.find(".who .display-name").text == HOSTILE  # shown literally, not run
    site.no_alert()
    hostile = (
        HEADER
        + "5.1,3.5,1.4,0.2,<img src=x onerror=alert(1)>\n"
        + "5.0,3.4,1.5,0.2,\u202eesotes\n"
        + '4.9,3.1,1.5,0.1,"<script>alert(2)</script>"\n'
    )
    words = site.upload("tulips.csv", hostile)
    assert "Refused by the pre-check" in words
    assert "What to do: label each row with one of the task's classes" in words
    assert "unknown_label: 3" in words
    page = site.contribution_link("tulips.csv")
    site.take_in_and_retrain()
    site.open(page)
    assert "Refused" in site.text() and "What to do" in site.text()
    cells = [e.text for e in site.finds("table.preview td bdi")]
    assert "<img src=x onerror=alert(1)>" in cells and "<script>alert(2)</script>" in cells
    assert "\u202eesotes" in cells  # the override isolated in its own cell, as it is
    assert not site.finds("main img") and not site.finds("main script")
    site.no_alert()

    # The scoreboard (public: no sign-in) shows the chosen name as text too.
    site.browser.delete_all_cookies()
    site.open("/scoreboard")
    names = [e.text for e in site.finds("table.list .display-name")]
    assert names in ([], [HOSTILE])  # listed once alice's data has been valued
    assert "Bob" not in site.text()
    site.no_alert()
    site.open("/how-value-is-computed")
    assert "Why copies earn nothing" in site.text()


def test_another_accounts_contribution_is_not_found(site):
    site.sign_in("alice")
    site.upload("mine.csv", new_flowers(per_class=5, seed=8).to_csv(index=False))
    page = site.contribution_link("mine.csv")
    site.sign_in("bob")
    site.open(page)
    denied = site.text()
    site.open("/contributions/nothing-like-it")
    assert denied == site.text() and "No such contribution of yours" in denied
    assert "mine.csv" not in denied
    site.open("/contributions")
    assert "mine.csv" not in site.text()


def test_a_dropped_file_is_taken_by_the_form(site):
    """Drag-and-drop (the script's part): a file dropped on the area becomes the form's."""
    site.sign_in("bob")
    site.open("/upload")
    name = site.browser.execute_script(
        "const t = new DataTransfer();"
        "t.items.add(new File(['a,b\\n'], 'dropped.csv', {type: 'text/csv'}));"
        "document.getElementById('drop').dispatchEvent("
        "  new DragEvent('drop', {dataTransfer: t, bubbles: true, cancelable: true}));"
        "return document.getElementById('file').files[0].name;"
    )
    assert name == "dropped.csv" and "dropped.csv" in site.find("#drop-help").text
    site.open("/webhook")  # (for its screenshot) the page without JavaScript's help
    assert site.find("label[for=url]") and site.find("#url").get_attribute("type") == "url"
