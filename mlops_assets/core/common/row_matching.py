"""When two rows are the same row: equal at the task's measurement resolution.

A flower measured to 0.1 cm and the same flower with every measurement moved by 0.01 cm are
one observation, not two. Two rows *match* when every numeric feature differs by less than
its resolution (or both are missing) and every categorical feature is equal. A grid of
rounded values would not do: a copy shifted across a grid line lands in the next cell.

Matching is SQL for DuckDB, so the same rule serves a multi-gigabyte file and a 150-row
frame. Each value is put in a cell of its resolution's width, centred on the measurement
grid (``round(x / resolution)``): values in one cell always match, and matching values are
at most one cell apart, so a pair is found by looking up each row's cell and its
neighbours (``3^k`` lookups on ``k`` blocking features), then comparing every feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.task import Feature, TaskSchema

# Decimals a resolution is inferred to at most: finer than a micro-unit is float noise.
MAX_DECIMALS = 6
# Two values match when they differ by less than the resolution minus this share of it, so
# that adjacent grid values (0.3 - 0.2 = 0.0999999...) never match through float error.
_TOLERANCE_SHARE = 1e-6
# Numeric features the neighbour lookup blocks on: 3^4 = 81 lookups per row at most.
_MAX_BLOCKING_FEATURES = 4
# The cell of a missing (imputed) value: far from any real cell, and its neighbours too.
_MISSING_CELL = -(2**62)


def infer_resolution(values: pd.Series) -> float:
    """The measurement step of ``values``: ``10^-d`` for the fewest decimals ``d`` (at most
    ``MAX_DECIMALS``) that write every value exactly; 1 for whole numbers."""
    import numpy as np

    numbers = values.dropna().to_numpy(dtype=float)
    numbers = numbers[np.isfinite(numbers)]
    for decimals in range(MAX_DECIMALS + 1):
        rounded = np.round(numbers, decimals)
        if np.all(np.abs(numbers - rounded) <= 1e-9 * np.maximum(1.0, np.abs(numbers))):
            return 10.0**-decimals
    return 10.0**-MAX_DECIMALS


@dataclass(frozen=True)
class RowMatching:
    """Each numeric feature's resolution, and where it came from (declared in the task file,
    or inferred from the reference data)."""

    resolutions: dict[str, float]
    inferred: tuple[str, ...] = ()

    @classmethod
    def for_task(cls, task: TaskSchema, reference: pd.DataFrame) -> RowMatching:
        """The task's declared resolutions, and for the other numeric features the one
        their values in ``reference`` are written to."""
        resolutions, inferred = {}, []
        for feature in task.numeric_features:
            if feature.resolution is not None:
                resolutions[feature.name] = feature.resolution
            else:
                resolutions[feature.name] = infer_resolution(reference[feature.name])
                inferred.append(feature.name)
        return cls(resolutions, tuple(inferred))

    @classmethod
    def for_intake(
        cls, task: TaskSchema, reference: pd.DataFrame, benchmark: pd.DataFrame | None
    ) -> RowMatching:
        """The matching intakes use: inferred from the reference train part and the benchmark,
        unless the benchmark is private (an intake never sees it)."""
        import pandas as pd

        return cls.for_task(
            task, pd.concat([reference, benchmark if not task.private_benchmark else None])
        )

    def describe(self) -> dict[str, str]:
        """Per numeric feature, its resolution and whether it was inferred, for people."""
        inferred = " (inferred from the reference data)"
        return {
            name: f"{value:g}" + (inferred if name in self.inferred else "")
            for name, value in self.resolutions.items()
        }

    def to_dict(self) -> dict[str, object]:
        return {"resolutions": self.resolutions, "inferred": list(self.inferred)}


def cell_sql(column_sql: str, resolution: float) -> str:
    """SQL: the cell of a value at ``resolution`` (a BIGINT; a missing value has its own)."""
    return f"coalesce(round({column_sql} / {resolution!r})::BIGINT, {_MISSING_CELL})"


def same_cells_sql(task: TaskSchema, matching: RowMatching, relation: str = "") -> list[str]:
    """SQL expressions whose equality puts rows in one cell: each numeric feature's cell and
    each categorical value (rows in one cell always match)."""
    prefix = f"{relation}." if relation else ""
    return [
        f"{prefix}{_quote(f.name)}"
        if f.categorical
        else cell_sql(f"{prefix}{_quote(f.name)}", matching.resolutions[f.name])
        for f in task.features
    ]


def blocking_features(task: TaskSchema) -> list[Feature]:
    """The numeric features whose cells a neighbour lookup blocks on (those never missing
    first: a missing value's cell has no neighbours)."""
    numeric = [f for f in task.features if not f.categorical]
    return sorted(numeric, key=lambda f: f.imputed)[:_MAX_BLOCKING_FEATURES]


def blocking_cells_sql(task: TaskSchema, matching: RowMatching, relation: str = "") -> list[str]:
    """SQL expressions of a row's cells on the blocking features (see
    :func:`blocking_features`): rows that match are at most one apart on each."""
    prefix = f"{relation}." if relation else ""
    return [
        cell_sql(f"{prefix}{_quote(f.name)}", matching.resolutions[f.name])
        for f in blocking_features(task)
    ]


def near_pairs_sql(
    task: TaskSchema,
    matching: RowMatching,
    probe: str,
    build: str,
    *,
    same_label: bool,
    probe_id: str | None = "row_id",
    build_id: str | None = None,
    condition: str = "",
    carry: str | None = None,
    each_pair_once: bool = False,
) -> str:
    """SELECT ``probe_id`` and ``build_id`` (each when named) of every pair of a row of relation
    ``probe`` and a row of ``build`` that match (see the module docstring), with equal labels when
    ``same_label``. Both relations hold the task's feature columns (and label); ``condition``
    further restricts a pair (SQL with ``{p}`` and ``{b}`` standing for the two rows);
    ``carry`` names a column of ``build`` also given, as ``build_order``.

    The probe side is the one looked up in its neighbouring cells (``3^k`` lookups a row):
    make it the smaller relation. ``each_pair_once``, for a relation matched with itself:
    only half the neighbours are looked up (the cell itself and those after it), so a pair
    of rows in different cells comes once, in one of its two orders, at half the cost; a pair
    in one cell still comes in both (and each row with itself, unless ``condition`` says)."""
    numeric = [f for f in task.features if not f.categorical]
    blocking = blocking_features(task)
    offsets = list(product((-1, 0, 1), repeat=len(blocking))) or [()]
    if each_pair_once:  # the zero offset and those whose first non-zero step is +1
        offsets = [o for o in offsets if next((step for step in o if step), 1) > 0]
    values = ", ".join("(" + ", ".join(map(str, o)) + ")" if o else "(0)" for o in offsets)
    names = ", ".join(f"o{i}" for i in range(max(1, len(blocking))))
    shifted = ", ".join(
        f"{cell_sql(f'p.{_quote(f.name)}', matching.resolutions[f.name])} + o.o{i} AS __cell{i}"
        for i, f in enumerate(blocking)
    )
    keys = [f"b_cells.__cell{i} = probes.__cell{i}" for i in range(len(blocking))]
    keys += [
        f"b_cells.{_quote(f.name)} IS NOT DISTINCT FROM probes.{_quote(f.name)}"
        for f in task.categorical_features
    ]
    if same_label:
        keys.append(f"b_cells.{_quote(task.label)} = probes.{_quote(task.label)}")
    build_cells = ", ".join(
        f"{cell_sql(f'b.{_quote(f.name)}', matching.resolutions[f.name])} AS __cell{i}"
        for i, f in enumerate(blocking)
    )
    close = [
        _close_sql(f"probes.{_quote(f.name)}", f"b_cells.{_quote(f.name)}", f.name, matching)
        for f in numeric
    ]
    extra = condition.format(p="probes", b="b_cells") if condition else ""
    selected = [f"probes.{_quote(probe_id)} AS probe_id"] if probe_id else []
    selected += [f"b_cells.{_quote(build_id)} AS build_id"] if build_id else []
    selected += [f"b_cells.{_quote(carry)} AS build_order"] if carry else []
    where = " AND ".join([*close, *([f"({extra})"] if extra else [])]) or "true"
    return f"""
        SELECT {", ".join(selected)}
        FROM (
            SELECT p.*{", " + shifted if shifted else ""}
            FROM {probe} AS p CROSS JOIN (VALUES {values}) AS o({names})
        ) AS probes
        JOIN (SELECT b.*{", " + build_cells if build_cells else ""} FROM {build} AS b) AS b_cells
        ON {" AND ".join(keys) or "true"}
        WHERE {where}
    """


def tolerance(matching: RowMatching, feature: str) -> float:
    """Two values of ``feature`` match when they differ by less than this."""
    return matching.resolutions[feature] * (1 - _TOLERANCE_SHARE)


def _close_sql(left: str, right: str, feature: str, matching: RowMatching) -> str:
    tolerance = matching.resolutions[feature] * (1 - _TOLERANCE_SHARE)
    return f"(({left} IS NULL AND {right} IS NULL) OR abs({left} - {right}) < {tolerance!r})"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def matched_earlier(
    frame: pd.DataFrame,
    task: TaskSchema,
    matching: RowMatching,
    *,
    order: str,
    same_label_unless: str | None = None,
) -> pd.Series:
    """For each row of ``frame``, the position (``iloc``) of the first row before it in
    ``order`` (a column of distinct sortable values) that it matches, or -1. With
    ``same_label_unless`` (a boolean column) matching rows must also have equal labels,
    unless either of them has that column set."""
    import duckdb
    import pandas as pd

    columns = [*task.columns, order, *([same_label_unless] if same_label_unless else [])]
    rows = frame[columns].reset_index(drop=True).rename(columns={order: "__order"})
    rows["__position"] = range(len(rows))
    condition = "{p}.__order > {b}.__order"
    if same_label_unless:
        flag, label = _quote(same_label_unless), _quote(task.label)
        condition += f" AND ({{p}}.{flag} OR {{b}}.{flag} OR {{p}}.{label} = {{b}}.{label})"
    pairs = near_pairs_sql(
        task,
        matching,
        "rows_in",
        "rows_in",
        same_label=False,
        probe_id="__position",
        build_id="__position",
        condition=condition,
        carry="__order",
    )
    with duckdb.connect() as db:
        db.register("rows_in", rows)
        earliest = db.execute(
            f"SELECT probe_id, arg_min(build_id, build_order) AS first FROM ({pairs}) "
            "GROUP BY probe_id"
        ).df()
    found = pd.Series(-1, index=range(len(rows)), dtype="int64")
    found.iloc[earliest["probe_id"].to_numpy()] = earliest["first"].to_numpy()
    return found.set_axis(frame.index)
