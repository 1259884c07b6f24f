"""Telling the prediction APIs that ``champion`` moved, so they need not wait for their poll."""

from __future__ import annotations

import urllib.error
import urllib.request

REFRESH_PATH = "/refresh"


def tell_apis(urls: list[str], api_key: str | None, *, timeout: float = 2.0) -> list[str]:
    """Ask the prediction API at each of ``urls`` to look at the registry now (``POST
    /refresh``); a line per API for the log. An API that cannot be told is a line too, never
    an error: it finds the new champion by its own poll."""
    lines = []
    for url in urls:
        request = urllib.request.Request(url.rstrip("/") + REFRESH_PATH, data=b"", method="POST")
        if api_key:
            request.add_header("X-API-Key", api_key)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                lines.append(f"told the prediction API at {url} (HTTP {response.status})")
        except (OSError, ValueError) as exc:  # HTTPError and URLError are OSErrors
            lines.append(
                f"could not tell the prediction API at {url} ({exc}); it finds the new "
                "champion by its poll"
            )
    return lines
