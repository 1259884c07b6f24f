"""A real browser for the web pages: Debian's headless Chromium driven by Selenium through
Debian's chromedriver (the same version by construction, and nothing downloaded at run time;
`make browser` installs both).

Why Selenium rather than Playwright: Playwright's Python package drives the Chromium build it
ships its protocol for, and that build downloads itself, which cannot happen here; pointed
at another Chromium it works only while the two versions happen to agree. chromedriver from
the same Debian release as chromium always matches it.
"""

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# As root, in a container, with nothing of the browser's own reaching out.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)
# No network but this machine: names other than the loopback's do not resolve, and any
# connection elsewhere goes to a proxy that is not there.
OFFLINE = (
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1;localhost",
)


@contextlib.contextmanager
def chromium(*, offline: bool = True) -> Iterator[Any]:
    """A headless Chromium (a Selenium WebDriver) with a fresh profile, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "run `make browser` (Debian's chromium)"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, *(OFFLINE if offline else ()), f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """``condition()``'s first truthy value, tried every 0.3 s (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if value := condition():
                return value
        except Exception as exc:  # the page is still rendering
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} ({last!r})")


def loaded_from(driver: Any) -> set[str]:
    """The origins of every resource the page loaded (scripts, styles, images, fetches that
    got an answer; one refused or unreachable loaded nothing)."""
    from urllib.parse import urlparse

    urls = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.responseStatus > 0).map(e => e.name).concat([location.href])"
    )
    return {f"{urlparse(u).scheme}://{urlparse(u).netloc}" for u in urls if "://" in u}
