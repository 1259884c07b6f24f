"""The pictures' own promises, on data bigger than a demo's: within the byte budget at any
size, and readable back."""

import io

import pytest
from PIL import Image

from mlops_assets.core.reporting import plots


def test_many_contributions_stay_within_the_budget_and_decode():
    values = [
        {
            "contribution_id": f"contributor-{i}--a-long-file-name-{i}.csv-0123abcd",
            "contributor": f"contributor-{i}",
            "value": (i - 100) / 1000,
            "value_interval": [(i - 110) / 1000, (i - 90) / 1000],
            "status": "excluded" if i < 10 else "included",
        }
        for i in range(200)
    ]
    plot = plots.contribution_values(values, metric="log_loss")
    assert plot is not None and len(plot.png) <= plots.MAX_PLOT_BYTES
    image = Image.open(io.BytesIO(plot.png))
    image.load()
    assert image.size == (plot.width, plot.height) == plots.png_size(plot.png)
    assert plot.markdown().startswith(
        f"![{plot.title} ({plot.width} x {plot.height} px)](data:image/png;base64,"
    )


def test_nothing_to_draw_draws_nothing():
    assert plots.contribution_values([], metric="log_loss") is None
    assert plots.feature_drift({"sepal_length": {}}, ["setosa"]) is None
    with pytest.raises(ValueError, match="not a PNG"):
        plots.png_size(b"GIF89a" + bytes(30))
