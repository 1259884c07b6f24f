"""What people see in the Dagster UI, in a real browser: headless Chromium on the pages of a
real ``dagster-webserver`` over a deployment that has trained a candidate."""

import base64

import dagster as dg
import pytest

from mlops_assets.core.reporting.plots import png_size
from mlops_assets_testing.browser import chromium, wait_until
from mlops_assets_testing.data import new_flowers
from mlops_assets_testing.pictures import decoded_pictures
from mlops_assets_testing.pipeline import deployment
from mlops_assets_testing.processes import dagster_webserver

# Real processes: left out of `make test-fast`.
pytestmark = pytest.mark.e2e


def test_the_trained_model_page_shows_its_pictures(tmp_path):
    """Every picture of ``trained_model`` opens from its metadata row and is rendered by the
    browser (loaded, not broken) at its own size, with the bytes the run recorded."""
    from selenium.webdriver.common.by import By

    with deployment(tmp_path) as pipeline:
        pipeline.materialize()  # the cold start: v1
        pipeline.drop("alice", "flowers.csv", new_flowers(per_class=10, seed=3).to_csv(index=False))
        for request in pipeline.tick().run_requests:
            pipeline.launch(request)
        pipeline.retrain()  # a candidate, its pictures, and alice's value
        event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("trained_model"))
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    pictures = decoded_pictures(metadata)
    assert set(pictures) == {
        "confusion_matrices",
        "calibration",
        "metric_deltas",
        "contribution_values",
    }

    with (
        dagster_webserver(pipeline.home, tmp_path / "webserver.log") as url,
        chromium(offline=True) as browser,
    ):
        browser.get(f"{url}/assets/trained_model")
        for name, png in pictures.items():
            row = wait_until(
                lambda name=name: browser.find_element(
                    By.XPATH, f"//tr[td[normalize-space()='{name}_plot']]"
                ),
                timeout=120,
                what=f"the {name}_plot row",
            )
            skip_welcome(browser)
            show = row.find_element(By.XPATH, ".//a[normalize-space()='[Show Markdown]']")
            browser.execute_script("arguments[0].click()", show)
            image = wait_until(
                lambda: browser.find_element(By.CSS_SELECTOR, "img[src^='data:image/png']"),
                timeout=30,
                what=f"the {name} picture",
            )
            loaded, width, height = wait_until(
                lambda image=image: browser.execute_script(
                    "const i = arguments[0]; return i.complete && i.naturalWidth > 0 "
                    "? [true, i.naturalWidth, i.naturalHeight] : null",
                    image,
                ),
                timeout=30,
                what=f"the {name} picture to load",
            )
            assert loaded and (width, height) == png_size(png), name
            assert image.get_attribute("alt").endswith(f"({width} x {height} px)")
            shown = image.get_attribute("src").removeprefix("data:image/png;base64,")
            assert base64.b64decode(shown) == png
            wait_until(lambda: close_dialog(browser), timeout=30, what="the dialog to close")


def skip_welcome(browser) -> None:
    """Skip the first visit's newsletter dialog, which may open at any moment after page load."""
    from selenium.webdriver.common.by import By

    for welcome in browser.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        browser.execute_script("arguments[0].click()", welcome)


def close_dialog(browser) -> bool:
    """Close the topmost dialog (a late welcome dialog skipped first), by its own Close
    button: whether no picture is shown any more. A dialog opened twice, or one opened over
    it, leaves its backdrop over the lower Close, so the last Close is the one to press."""
    from selenium.webdriver.common.by import By

    skip_welcome(browser)
    if closes := browser.find_elements(By.XPATH, "//button[normalize-space()='Close']"):
        browser.execute_script("arguments[0].click()", closes[-1])
    return not browser.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']")
