"""The pictures in Dagster metadata, decoded the way a browser would read them."""

import base64
import io
import re
from typing import Any

# ![alternative text (W x H px)](data:image/png;base64,...)
IMAGE = re.compile(
    r"^!\[(?P<title>.+) \((?P<width>\d+) x (?P<height>\d+) px\)\]"
    r"\(data:image/png;base64,(?P<data>[A-Za-z0-9+/=]+)\)$"
)


def decoded_pictures(metadata: dict[str, Any]) -> dict[str, bytes]:
    """Every ``<name>_plot`` entry of ``metadata`` (plain values) as its PNG bytes, each
    checked to be one Markdown image whose bytes decode as a PNG of the size its text states
    and within the byte budget."""
    from PIL import Image

    from mlops_assets.core.reporting.plots import MAX_PLOT_BYTES

    pictures = {}
    for key, value in metadata.items():
        if not key.endswith("_plot"):
            continue
        found = IMAGE.match(value)
        assert found, f"{key} is not one Markdown image: {value[:80]}"
        png = base64.b64decode(found["data"], validate=True)
        image = Image.open(io.BytesIO(png))
        image.load()  # decodes every pixel: a truncated or corrupt file fails here
        assert image.format == "PNG", key
        assert image.size == (int(found["width"]), int(found["height"])), key
        assert len(png) <= MAX_PLOT_BYTES, f"{key}: {len(png)} bytes"
        pictures[key.removesuffix("_plot")] = png
    return pictures
