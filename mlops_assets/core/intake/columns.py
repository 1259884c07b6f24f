"""Matching contributed column names to the task's columns, however contributors spell them."""

from __future__ import annotations

import re

from mlops_assets.task import TaskSchema


def normalise_column_name(name: str) -> str:
    """``"Sepal Length (cm)"`` -> ``"sepal_length"``: lower case, no units, ``_`` separators."""
    text = re.sub(r"\(.*?\)|\[.*?\]", " ", str(name).lower())
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def column_lookup(task: TaskSchema) -> dict[str, str]:
    """Every accepted spelling (the task's own name and its aliases), normalised like a
    contributor's name, to its task column; each also without ``_`` and with a unit suffix
    (``SepalLengthCm``).

    The task's own names go through the same normalisation, so a column such as
    ``od280/od315_of_diluted_wines`` is found under any spelling of it too.
    """
    lookup: dict[str, str] = {}
    spellings = {f.name: f.aliases for f in task.features} | {task.label: task.label_column_aliases}
    units = {f.name: normalise_column_name(f.unit) for f in task.features if f.unit}
    for target in task.columns:
        for spelling in (target, *spellings[target]):
            normalised = normalise_column_name(spelling)
            lookup.setdefault(normalised, target)
            lookup.setdefault(normalised.replace("_", ""), target)
        if unit := units.get(target):
            lookup.setdefault(normalise_column_name(target).replace("_", "") + unit, target)
    return lookup


def map_columns(columns: list[str], task: TaskSchema) -> dict[str, str]:
    """Map original column names to task columns; columns that map to nothing are left out.

    The first column found for a task column wins; a later one spelling the same column is
    left out like any other unknown column.
    """
    lookup = column_lookup(task)
    mapping: dict[str, str] = {}
    for column in columns:
        normalised = normalise_column_name(column)
        target = lookup.get(normalised) or lookup.get(normalised.replace("_", ""))
        if target and target not in mapping.values():
            mapping[column] = target
    return mapping
