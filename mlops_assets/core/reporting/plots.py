"""Results drawn as PNG images, server-side (matplotlib's Agg renderer, imported only here,
only when something is drawn).

Every function takes plain data and returns a :class:`Plot`: the image's bytes, its size and
a title. The same bytes go into Dagster metadata (Markdown with a ``data:`` URI, the pattern
Dagster documents for images) and into MLflow as artifacts, so what the UI shows and what the
run keeps are one picture. Each image stays within :data:`MAX_PLOT_BYTES` (Dagster stores
metadata in its event log and the UI loads it with the asset page): drawn at 100 dpi, reduced
to a 64-colour palette (flat charts lose nothing), and drawn smaller when still too large.

Long on purpose: the one module that imports matplotlib; every plot is a short function.
"""

from __future__ import annotations

import base64
import io
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from mlops_assets.core.modeling.candidate import TrainedCandidate
    from mlops_assets.task import TaskSchema

# The most bytes one PNG may have: 64 KB once base64-encoded in Markdown metadata. A
# materialization carries at most four, so its pictures stay under 256 KB of event log.
MAX_PLOT_BYTES = 48_000
DPI = 100
WIDTH_INCHES = 6.4  # 640 pixels at DPI: the width of the metadata dialog without scrolling
# The pictures of a contribution (their file stems), drawn at intake and stored beside its
# report in this folder.
CONTRIBUTION_PLOTS = ("class_balance", "feature_drift")
PLOTS_FOLDER = "plots"
BETTER, WORSE, NEUTRAL = "#2e7d32", "#c62828", "#546e7a"
CANDIDATE, CHAMPION = "#1565c0", "#9e9e9e"


@dataclass(frozen=True)
class Plot:
    """One picture: ``name`` is its file stem (``confusion_matrices``), ``title`` its
    alternative text."""

    name: str
    title: str
    png: bytes
    width: int
    height: int

    @property
    def file_name(self) -> str:
        return f"{self.name}.png"

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def markdown(self) -> str:
        """The image as Markdown, the way the Dagster UI renders one; its alternative text
        states its size."""
        return f"![{self.title} ({self.width} x {self.height} px)]({self.data_uri()})"


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header; ValueError when the bytes are not a PNG."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def render(draw: Callable[[Figure], None], *, name: str, title: str, height: float) -> Plot:
    """Draw with ``draw(figure)`` on a figure ``WIDTH_INCHES`` x ``height`` inches and encode
    it as a palette PNG within ``MAX_PLOT_BYTES`` (smaller when it would not fit)."""
    from matplotlib.figure import Figure  # the Agg renderer; no pyplot, no global state

    for scale in (1.0, 0.8, 0.64, 0.5):
        figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")
        draw(figure)
        png = _palette_png(figure, dpi=DPI * scale)
        if len(png) <= MAX_PLOT_BYTES:
            width, pixels_high = png_size(png)
            return Plot(name, title, png, width, pixels_high)
    raise ValueError(f"{name}: {len(png)} bytes even at half size, over {MAX_PLOT_BYTES}")


def _palette_png(figure: Figure, *, dpi: float) -> bytes:
    from PIL import Image  # matplotlib's own dependency

    raw = io.BytesIO()
    figure.savefig(raw, format="png", dpi=dpi, facecolor="white")
    image = Image.open(io.BytesIO(raw.getvalue())).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


# ---- the candidate against the champion ---------------------------------------------------


def confusion_matrices(
    classes: Sequence[str],
    matrices: Sequence[tuple[str, Sequence[Sequence[int]]]],
) -> Plot:
    """One confusion matrix per ``(label, matrix)``, side by side on the same colour scale:
    rows the true class, columns the predicted one; off-diagonal counts are the errors."""
    top = max((max(map(max, m)) for _, m in matrices), default=1) or 1

    def draw(figure: Figure) -> None:
        axes = figure.subplots(1, len(matrices), squeeze=False)[0]
        for axis, (label, matrix) in zip(axes, matrices, strict=True):
            axis.imshow(matrix, cmap="Blues", vmin=0, vmax=top)
            for i, row in enumerate(matrix):
                for j, count in enumerate(row):
                    dark = count > top / 2
                    axis.text(
                        j,
                        i,
                        str(count),
                        ha="center",
                        va="center",
                        color="white" if dark else ("#c62828" if i != j and count else "black"),
                    )
            errors = sum(c for i, row in enumerate(matrix) for j, c in enumerate(row) if i != j)
            axis.set_title(f"{label}: {errors} error(s)", fontsize=10)
            axis.set_xticks(range(len(classes)), labels=classes, fontsize=8, rotation=20)
            axis.set_yticks(range(len(classes)), labels=classes, fontsize=8)
            axis.set_xlabel("predicted", fontsize=8)
        axes[0].set_ylabel("true class", fontsize=8)

    return render(
        draw, name="confusion_matrices", title="Confusion matrices on the benchmark", height=3.0
    )


def calibration(
    true_index: Sequence[int],
    probabilities: Sequence[tuple[str, Any]],
    *,
    bins: int = 5,
) -> Plot:
    """A reliability diagram: for each model ``(label, probabilities)`` (rows x classes, in
    the task's order), every predicted class probability binned, against how often that class
    was the true one; on the diagonal a model is calibrated. Pooled over classes (one vs rest),
    so a 45-row benchmark still fills the bins; marker area is the number of predictions."""
    import numpy as np

    truth = np.asarray(true_index)

    def draw(figure: Figure) -> None:
        axis = figure.subplots()
        axis.plot([0, 1], [0, 1], color="#bdbdbd", linestyle="--", linewidth=1)
        for (label, proba), colour in zip(
            probabilities, (CANDIDATE, CHAMPION, NEUTRAL), strict=False
        ):
            proba = np.asarray(proba, dtype=float)
            hit = (truth[:, None] == np.arange(proba.shape[1])[None, :]).ravel()
            predicted = proba.ravel()
            edges = np.linspace(0, 1, bins + 1)
            which = np.clip(np.digitize(predicted, edges[1:-1]), 0, bins - 1)
            xs, ys, sizes = [], [], []
            for b in range(bins):
                chosen = which == b
                if chosen.any():
                    xs.append(predicted[chosen].mean())
                    ys.append(hit[chosen].mean())
                    sizes.append(chosen.sum())
            gap = sum(s * abs(x - y) for x, y, s in zip(xs, ys, sizes, strict=True)) / len(hit)
            axis.plot(xs, ys, color=colour, linewidth=1.5, label=f"{label} (mean gap {gap:.3f})")
            axis.scatter(xs, ys, s=[12 + 4 * math.sqrt(s) ** 1.5 for s in sizes], color=colour)
        axis.set(xlim=(-0.02, 1.02), ylim=(-0.04, 1.04))
        axis.set_xlabel("predicted probability of a class", fontsize=9)
        axis.set_ylabel("share of rows of that class", fontsize=9)
        axis.set_title("Calibration on the benchmark (diagonal = calibrated)", fontsize=10)
        axis.legend(fontsize=8, loc="upper left")

    return render(draw, name="calibration", title="Calibration on the benchmark", height=3.4)


def metric_deltas(
    intervals: dict[str, dict[str, float]],
    *,
    lower_is_better: frozenset[str] | set[str],
    primary: str | None = None,
) -> Plot:
    """Each metric's paired difference candidate - champion with its 95 % interval, turned so
    that right is always better (log loss and Brier fall when a model improves): green when
    the whole interval is better, red when it is worse, grey when it holds zero."""
    # The deciding metric on top, the rest by name: the same picture whatever order the
    # metadata kept them in.
    names = sorted(intervals, key=lambda n: (n != primary, n))

    def draw(figure: Figure) -> None:
        axis = figure.subplots()
        for row, name in enumerate(reversed(names)):
            found = intervals[name]
            sign = -1.0 if name in lower_is_better else 1.0
            centre = sign * found["delta"]
            low, high = sorted((sign * found["low"], sign * found["high"]))
            colour = BETTER if low > 0 else WORSE if high < 0 else NEUTRAL
            axis.errorbar(
                centre,
                row,
                xerr=[[centre - low], [high - centre]],
                fmt="o",
                color=colour,
                capsize=3,
                markersize=5,
            )
            axis.annotate(
                f"{found['delta']:+.4f}",
                (high, row),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                color=colour,
            )
        axis.axvline(0, color="#616161", linewidth=1)
        labels = [
            (f"{n} (lower is better)" if n in lower_is_better else n)
            + (" [decides]" if n == primary else "")
            for n in reversed(names)
        ]
        axis.set_yticks(range(len(names)), labels=labels, fontsize=8)
        axis.set_xlabel(
            "candidate - champion, turned so that right is better (95 % interval)", fontsize=8
        )
        axis.margins(x=0.25)
        axis.set_title("Metric differences on the benchmark", fontsize=10)

    return render(
        draw,
        name="metric_deltas",
        title="Metric differences with their intervals",
        height=0.35 * len(names) + 1.2,
    )


def contribution_values(values: Sequence[dict[str, Any]], *, metric: str) -> Plot | None:
    """Each new contribution's Shapley value (``ContributionValue.to_dict()``) with its 95 %
    interval; excluded ones in red and marked. None when nothing was valued."""
    if not values:
        return None
    ordered = sorted(values, key=lambda v: v["value"])

    def draw(figure: Figure) -> None:
        axis = figure.subplots()
        for row, value in enumerate(ordered):
            low, high = value["value_interval"]
            excluded = value["status"] == "excluded"
            colour = WORSE if excluded else BETTER if low > 0 else NEUTRAL
            axis.barh(row, value["value"], color=colour, alpha=0.35, height=0.6)
            axis.errorbar(
                value["value"],
                row,
                xerr=[[value["value"] - low], [high - value["value"]]],
                fmt="o",
                color=colour,
                capsize=3,
                markersize=4,
            )
            note = f"{value['value']:+.4f}" + ("  excluded" if excluded else "")
            axis.annotate(
                note,
                (max(high, 0), row),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                color=colour,
                fontweight="bold" if excluded else "normal",
            )
        axis.axvline(0, color="#616161", linewidth=1)
        labels = [_short(v["contribution_id"], 40) for v in ordered]
        axis.set_yticks(range(len(ordered)), labels=labels, fontsize=8)
        axis.margins(x=0.3)
        axis.set_xlabel(f"Shapley value in {metric} (positive = better), 95 % interval", fontsize=8)
        axis.set_title("What each new contribution was worth", fontsize=10)

    return render(
        draw,
        name="contribution_values",
        title="Contribution values with their intervals",
        height=min(0.32 * len(ordered) + 1.2, 8.0),
    )


# ---- a contribution against the reference --------------------------------------------------


def class_balance(
    classes: Sequence[str], contribution: dict[str, int], reference: dict[str, int]
) -> Plot:
    """The share of each class among the contribution's clean rows, beside the reference's."""

    def draw(figure: Figure) -> None:
        axis = figure.subplots()
        total_c = sum(contribution.values()) or 1
        total_r = sum(reference.values()) or 1
        positions = range(len(classes))
        shares_c = [contribution.get(c, 0) / total_c for c in classes]
        shares_r = [reference.get(c, 0) / total_r for c in classes]
        axis.bar(
            [p - 0.2 for p in positions],
            shares_r,
            width=0.4,
            color=CHAMPION,
            label=f"reference ({total_r} rows)",
        )
        bars = axis.bar(
            [p + 0.2 for p in positions],
            shares_c,
            width=0.4,
            color=CANDIDATE,
            label=f"this contribution ({sum(contribution.values())} clean rows)",
        )
        axis.bar_label(bars, labels=[str(contribution.get(c, 0)) for c in classes], fontsize=7)
        axis.set_xticks(list(positions), labels=classes, fontsize=8)
        axis.set_ylabel("share of rows", fontsize=8)
        axis.set_ylim(0, max([*shares_c, *shares_r, 0.1]) * 1.25)
        axis.set_title("Class balance against the reference", fontsize=10)
        axis.legend(fontsize=8)

    return render(draw, name="class_balance", title="Class balance", height=2.8)


def feature_shifts(
    clean: pd.DataFrame, reference: pd.DataFrame, task: TaskSchema
) -> dict[str, dict[str, float]]:
    """Per numeric feature, per class found in both: (contribution mean - reference mean) in
    the reference's standard deviations of that class."""
    shifts: dict[str, dict[str, float]] = {}
    for feature in task.numeric_features:
        per_class = {}
        for cls in task.classes:
            ours = clean.loc[clean[task.label] == cls, feature.name].dropna()
            theirs = reference.loc[reference[task.label] == cls, feature.name].dropna()
            if len(ours) and len(theirs) > 1:
                spread = max(float(theirs.std()), 1e-6)
                per_class[cls] = (float(ours.mean()) - float(theirs.mean())) / spread
        shifts[feature.name] = per_class
    return shifts


def feature_drift(shifts: dict[str, dict[str, float]], classes: Sequence[str]) -> Plot | None:
    """Each feature's mean shift per class in reference standard deviations (from
    :func:`feature_shifts`); the band is half a standard deviation. None without features."""
    if not any(shifts.values()):
        return None
    names = list(shifts)
    palette = ("#1565c0", "#ef6c00", "#6a1b9a", "#2e7d32", "#ad1457", "#00838f")

    def draw(figure: Figure) -> None:
        axis = figure.subplots()
        axis.axvspan(-0.5, 0.5, color="#e0e0e0", alpha=0.6, linewidth=0)
        axis.axvline(0, color="#616161", linewidth=1)
        for k, cls in enumerate(classes):
            offset = (k - (len(classes) - 1) / 2) * 0.18
            points = [
                (s[cls], r + offset)
                for r, f in enumerate(reversed(names))
                if cls in (s := shifts[f])
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                axis.scatter(xs, ys, color=palette[k % len(palette)], s=22, label=cls)
        axis.set_yticks(range(len(names)), labels=list(reversed(names)), fontsize=8)
        top = max([abs(v) for s in shifts.values() for v in s.values()] + [1.0])
        axis.set_xlim(-top * 1.15, top * 1.15)
        axis.set_xlabel(
            "mean shift from the reference, in its standard deviations (per class)", fontsize=8
        )
        axis.set_title("Feature drift against the reference (band: ±0.5)", fontsize=10)
        axis.legend(fontsize=7, ncols=min(len(classes), 4), loc="best")

    return render(draw, name="feature_drift", title="Feature drift", height=0.3 * len(names) + 1.4)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- what each asset shows -----------------------------------------------------------------


def candidate_plots(trained: TrainedCandidate, primary_metric: str) -> list[Plot]:
    """``trained_model``'s pictures: both confusion matrices, calibration, the metric
    differences and, when new contributions were valued, their values."""
    from mlops_assets.core.modeling.evaluation import LOWER_IS_BETTER

    candidate, baseline = trained.evaluation, trained.baseline_evaluation
    champion = f"champion v{trained.candidate.baseline_version}"
    plots = [
        confusion_matrices(
            candidate.classes,
            [("candidate", candidate.confusion_matrix), (champion, baseline.confusion_matrix)],
        ),
        calibration(
            candidate.predictions.true_index,
            [
                ("candidate", candidate.predictions.probabilities),
                (champion, baseline.predictions.probabilities),
            ],
        ),
        metric_deltas(
            trained.candidate.delta_intervals,
            lower_is_better=LOWER_IS_BETTER,
            primary=primary_metric,
        ),
        contribution_values(
            [v.to_dict() for v in trained.valuation.values], metric=trained.valuation.metric
        ),
    ]
    return [p for p in plots if p is not None]


def contribution_plots(
    clean: pd.DataFrame, reference: pd.DataFrame, task: TaskSchema
) -> list[Plot]:
    """``contributed_data``'s pictures: its clean rows' class balance and feature drift
    against the reference; none when no row is clean."""
    if clean.empty:
        return []
    counts = clean[task.label].astype(str).value_counts().to_dict()
    reference_counts = reference[task.label].astype(str).value_counts().to_dict()
    plots = [
        class_balance(task.classes, counts, reference_counts),
        feature_drift(feature_shifts(clean, reference, task), task.classes),
    ]
    return [p for p in plots if p is not None]
