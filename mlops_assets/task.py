"""The prediction task: the one place that says what a row looks like.

Everything else (loading, cleaning, training, serving) reads this module, so another
tabular classification task can be swapped in by replacing the ``IRIS`` definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Feature:
    """A numeric measurement column with its physically plausible range (inclusive)."""

    name: str
    minimum: float
    maximum: float
    unit: str = ""


@dataclass(frozen=True)
class TaskSchema:
    """Columns, label and classes of a tabular classification task."""

    name: str
    features: tuple[Feature, ...]
    label: str
    classes: tuple[str, ...]
    # Spellings contributors use for each class, lower-cased (the class name itself is implied).
    label_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        return [*self.feature_names, self.label]

    def normalise_label(self, value: object) -> str | None:
        """Return the canonical class name for ``value``, or None when it is not a known label.

        Accepts the class name in any case, known aliases (``Iris-setosa``) and the class
        index (``0``, ``"0"``, ``0.0``).
        """
        if value is None:
            return None
        text = str(value).strip().lower()
        if not text:
            return None
        for index, name in enumerate(self.classes):
            spellings = {name.lower(), str(index), f"{index}.0", *self.label_aliases.get(name, ())}
            if text in spellings:
                return name
        return None


IRIS = TaskSchema(
    name="iris",
    features=(
        # Ranges are generous bounds on real irises (cm), not the training data's min/max:
        # anything outside them is a measurement or unit error, not an unusual flower.
        Feature("sepal_length", 0.1, 15.0, "cm"),
        Feature("sepal_width", 0.1, 10.0, "cm"),
        Feature("petal_length", 0.1, 12.0, "cm"),
        Feature("petal_width", 0.01, 5.0, "cm"),
    ),
    label="species",
    classes=("setosa", "versicolor", "virginica"),
    label_aliases={
        "setosa": ("iris-setosa", "iris setosa", "i. setosa"),
        "versicolor": ("iris-versicolor", "iris versicolor", "i. versicolor", "versicolour"),
        "virginica": ("iris-virginica", "iris virginica", "i. virginica"),
    },
)

TASK = IRIS
