"""A contribution's value over the versions that valued it, as the coordinates of an SVG
chart the template draws (server-side: no script, and the same numbers also as a table)."""

from __future__ import annotations

import math
from typing import Any

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 560, 220, 70, 20, 20, 40


def history_chart(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where each of the history's values, its interval and the zero line go on an SVG of
    :data:`WIDTH` x :data:`HEIGHT` (the template draws it; nothing here is markup)."""
    if not points:
        return None
    lows = [p["value_interval"][0] if p["value_interval"] else p["value"] for p in points]
    highs = [p["value_interval"][1] if p["value_interval"] else p["value"] for p in points]
    low, high = min([0.0, *lows]), max([0.0, *highs])
    if math.isclose(low, high):
        low, high = low - 1e-3, high + 1e-3
    pad = (high - low) * 0.1
    low, high = low - pad, high + pad

    def y(value: float) -> float:
        return round(TOP + (high - value) / (high - low) * (HEIGHT - TOP - BOTTOM), 1)

    span = WIDTH - LEFT - RIGHT
    step = span / len(points)
    marks = []
    for i, (p, lo, hi) in enumerate(zip(points, lows, highs, strict=True)):
        x = round(LEFT + step * (i + 0.5), 1)
        marks.append(
            {"x": x, "y": y(p["value"]), "low": y(lo), "high": y(hi), "label": f"v{p['version']}"}
        )
    shown = dict.fromkeys(round(v, 6) for v in (high - pad, 0.0, low + pad))  # each once
    ticks = [{"y": y(v), "label": f"{v:+.3f}"} for v in shown]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "zero": y(0.0),
        "marks": marks,
        "ticks": ticks,
    }
