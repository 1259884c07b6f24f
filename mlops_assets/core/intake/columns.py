"""Matching contributed column names to the task's columns, however contributors spell them."""

from __future__ import annotations

import re

from mlops_assets.task import TaskSchema

# Common spellings of each column after normalisation (lower case, non-alphanumerics as "_").
COLUMN_ALIASES = {
    "sepal_length": ("sepallength", "sepal_len", "sepallengthcm"),
    "sepal_width": ("sepalwidth", "sepal_wid", "sepalwidthcm"),
    "petal_length": ("petallength", "petal_len", "petallengthcm"),
    "petal_width": ("petalwidth", "petal_wid", "petalwidthcm"),
    "species": ("class", "variety", "target", "label"),
}


def normalise_column_name(name: str) -> str:
    """``"Sepal Length (cm)"`` -> ``"sepal_length"``: lower case, no units, ``_`` separators."""
    text = re.sub(r"\(.*?\)|\[.*?\]", " ", str(name).lower())
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def column_lookup(task: TaskSchema) -> dict[str, str]:
    """Every accepted spelling, normalised like a contributor's name, to its task column.

    The task's own names go through the same normalisation, so a column such as
    ``od280/od315_of_diluted_wines`` is found under any spelling of it too.
    """
    lookup: dict[str, str] = {}
    for target in task.columns:
        for spelling in (target, *COLUMN_ALIASES.get(target, ())):
            normalised = normalise_column_name(spelling)
            lookup.setdefault(normalised, target)
            lookup.setdefault(normalised.replace("_", ""), target)
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
