"""The prediction task: the one place that says what a row looks like.

Everything else (loading, cleaning, training, serving) reads this module. A task is described
by a TOML task file (``tasks/iris.toml`` is the default's); :func:`load_task` reads and
validates one.

Long on purpose: the task file's schema, its validation (with messages that say what to
fix) and what the rest of the code asks of a task are one contract.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NUMERIC, CATEGORICAL = "numeric", "categorical"
REJECT, IMPUTE = "reject", "impute"
DROP, KEEP = "drop", "keep"  # what identical rows in contributions are
ESTIMATORS = ("logistic_regression", "random_forest", "gradient_boosting")
SKLEARN_PREFIX = "sklearn:"
# scikit-learn's bundled toy sets a task may name as its reference (no download).
SKLEARN_LOADERS = ("load_iris", "load_wine", "load_breast_cancer")


@dataclass(frozen=True)
class Feature:
    """A column: numeric with its physically plausible range (inclusive) and unit, or
    categorical with its allowed values; what a missing value means (``reject`` the row or
    ``impute`` it); other spellings of its name."""

    name: str
    minimum: float = -math.inf
    maximum: float = math.inf
    unit: str = ""
    kind: str = NUMERIC
    values: tuple[str, ...] = ()
    missing: str = REJECT
    aliases: tuple[str, ...] = ()
    # Other spellings of each categorical value, lower-cased (the value itself is implied).
    value_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The step a numeric feature is measured to (0.1 for centimetres to a millimetre): two
    # rows closer than it on every feature are one observation. None: inferred from the
    # reference data (``core.common.row_matching``).
    resolution: float | None = None

    @property
    def categorical(self) -> bool:
        return self.kind == CATEGORICAL

    @property
    def imputed(self) -> bool:
        return self.missing == IMPUTE

    def value_spellings(self) -> list[tuple[str, str]]:
        """(lower-cased spelling, value) pairs of a categorical feature: each value and its
        aliases."""
        aliases = dict(self.value_aliases)
        return sorted({s: v for v in self.values for s in (v.lower(), *aliases.get(v, ()))}.items())


@dataclass(frozen=True)
class TaskSchema:
    """Columns, label and classes of a tabular classification task."""

    name: str
    features: tuple[Feature, ...]
    label: str
    classes: tuple[str, ...]
    # Spellings contributors use for each class, lower-cased (the class name itself is implied).
    label_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    label_column_aliases: tuple[str, ...] = ()  # other names of the label column
    reference: str = ""  # the reference data: a file path, or "sklearn:<loader>"
    primary_metric: str | None = None  # task defaults; the settings win when set
    estimator: str | None = None
    # Identical rows in contributions: copies to ``drop``, or observations to ``keep``.
    duplicates: str = DROP
    # Integer codes files may write for the classes (``{0: "setosa", ...}``), only as the task
    # declares them: a code is never read as a position in ``classes`` by itself.
    class_codes: dict[int, str] = field(default_factory=dict)
    # A private benchmark (a CSV or Parquet file read at run time); empty: a seeded split of
    # the reference data, which anyone holding the reference can rebuild.
    benchmark: str = ""

    @property
    def private_benchmark(self) -> bool:
        return bool(self.benchmark)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[Feature]:
        return [f for f in self.features if not f.categorical]

    @property
    def categorical_features(self) -> list[Feature]:
        return [f for f in self.features if f.categorical]

    @property
    def needs_preparation(self) -> bool:
        """A model of this task encodes categories or imputes missing values before the
        estimator; a task of numeric features that are never missing needs neither."""
        return any(f.categorical or f.imputed for f in self.features)

    @property
    def drops_duplicates(self) -> bool:
        return self.duplicates == DROP

    def attested(self) -> dict[str, str]:
        """What an attestation records of the task: its name, and the sha256 of its
        definition (columns, classes, spellings, rules; not where its reference file lies,
        which differs between machines)."""
        import hashlib
        import json
        from dataclasses import asdict

        # Nor where a private benchmark lies: the attestation names it by its content hash.
        definition = {k: v for k, v in asdict(self).items() if k not in ("reference", "benchmark")}
        canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        return {"name": self.name, "sha256": hashlib.sha256(canonical.encode()).hexdigest()}

    @property
    def dataset_asset(self) -> str:
        """The name of the reference data's asset: ``iris_dataset`` for the iris task."""
        return f"{self.name}_dataset"

    @property
    def columns(self) -> list[str]:
        return [*self.feature_names, self.label]

    def normalise_label(self, value: object) -> str | None:
        """Return the canonical class name for ``value``, or None when it is not a known label.

        Accepts the class name in any case, known aliases (``Iris-setosa``) and the integer
        codes the task declares (``0``, ``"0"``, ``0.0``); a code the task does not declare is
        no label.
        """
        if value is None:
            return None
        text = str(value).strip().lower()
        return dict(self.label_spellings()).get(text) if text else None

    def label_spellings(self) -> list[tuple[str, str]]:
        """(lower-cased spelling, class) pairs: each name, its aliases and declared codes."""
        pairs = {}
        for name in self.classes:
            for spelling in (name.lower(), *self.label_aliases.get(name, ())):
                pairs[spelling] = name
        for code, name in self.class_codes.items():
            pairs[str(code)] = pairs[f"{code}.0"] = name
        return sorted(pairs.items())


IRIS = TaskSchema(
    name="iris",
    features=(
        # Ranges are generous bounds on real irises (cm), not the training data's min/max:
        # anything outside them is a measurement or unit error, not an unusual flower.
        # Fisher's flowers were measured to 0.1 cm.
        Feature(
            "sepal_length", 0.1, 15.0, "cm", aliases=("sepallength", "sepal_len"), resolution=0.1
        ),
        Feature(
            "sepal_width", 0.1, 10.0, "cm", aliases=("sepalwidth", "sepal_wid"), resolution=0.1
        ),
        Feature(
            "petal_length", 0.1, 12.0, "cm", aliases=("petallength", "petal_len"), resolution=0.1
        ),
        Feature(
            "petal_width", 0.01, 5.0, "cm", aliases=("petalwidth", "petal_wid"), resolution=0.1
        ),
    ),
    label="species",
    classes=("setosa", "versicolor", "virginica"),
    label_aliases={
        "setosa": ("iris-setosa", "iris setosa", "i. setosa"),
        "versicolor": ("iris-versicolor", "iris versicolor", "i. versicolor", "versicolour"),
        "virginica": ("iris-virginica", "iris virginica", "i. virginica"),
    },
    label_column_aliases=("class", "variety", "target", "label"),
    reference="data/iris.csv",
    # scikit-learn's load_iris target, and pandas' category codes of the species.
    class_codes={0: "setosa", 1: "versicolor", 2: "virginica"},
)


class TaskFileError(ValueError):
    """A task file that cannot be used; the message names the file, line and key."""


_TASK_KEYS = {
    "name",
    "label",
    "classes",
    "reference",
    "class_aliases",
    "label_aliases",
    "primary_metric",
    "estimator",
    "duplicates",
    "class_codes",
    "benchmark",
}
_NUMERIC_KEYS = {"unit", "min", "max", "resolution"}
_CATEGORICAL_KEYS = {"values", "value_aliases"}
_FEATURE_KEYS = {"name", "type", "missing", "aliases"} | _NUMERIC_KEYS | _CATEGORICAL_KEYS


def load_task(path: Path) -> TaskSchema:
    """Read and validate the task file at ``path``; a relative ``reference`` is resolved
    against the file's folder. Raises :class:`TaskFileError` naming the line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError(f"{path}: not valid TOML: {exc}") from None
    where = _Locator(path, text)
    task = document.get("task")
    if not isinstance(task, dict):
        raise TaskFileError(f"{path}: no [task] table: it names the task, label and classes")
    _unknown(where, task, _TASK_KEYS, "task", 0)
    name = _text(where, task, "name", "task", 0)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise where.error("task", 0, "name", f"{name!r} must be lower-case letters, digits, _")
    label = _text(where, task, "label", "task", 0)
    classes = task.get("classes")
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) and c for c in classes)
    ):
        raise where.error("task", 0, "classes", "must list at least two class names")
    if len(set(classes)) != len(classes):
        raise where.error("task", 0, "classes", "lists a class twice")
    aliases = _aliases(where, task, "class_aliases", classes, "task", 0)
    features = tuple(_feature(where, raw, i) for i, raw in enumerate(document.get("features", [])))
    if not features:
        raise TaskFileError(f"{path}: no [[features]]: a task needs at least one feature")
    names = [f.name for f in features]
    if duplicate := next((n for n in names if names.count(n) > 1), None):
        raise where.error(
            "features",
            names.index(duplicate, names.index(duplicate) + 1),
            "name",
            f"feature {duplicate!r} is declared twice",
        )
    if label in names:
        raise where.error("task", 0, "label", f"{label!r} is also a feature")
    reference = str(task.get("reference", ""))
    if reference.startswith(SKLEARN_PREFIX):
        if reference.removeprefix(SKLEARN_PREFIX) not in SKLEARN_LOADERS:
            raise where.error(
                "task",
                0,
                "reference",
                f"{reference!r}: scikit-learn's loaders are {SKLEARN_LOADERS}",
            )
    elif reference and not Path(reference).is_absolute():
        reference = str((path.parent / reference).resolve())
    benchmark = task.get("benchmark", "")
    if not isinstance(benchmark, str) or benchmark.startswith(SKLEARN_PREFIX):
        raise where.error(
            "task", 0, "benchmark", "must be the path of a CSV or Parquet file of the task's rows"
        )
    if benchmark and not Path(benchmark).is_absolute():
        benchmark = str((path.parent / benchmark).resolve())
    estimator = task.get("estimator")
    if estimator is not None and estimator not in ESTIMATORS:
        raise where.error("task", 0, "estimator", f"{estimator!r}: use one of {ESTIMATORS}")
    # Identical rows are copies when every feature is a measurement; with a category among
    # the features they are often two real observations (two passengers alike).
    duplicates = task.get("duplicates", KEEP if any(f.categorical for f in features) else DROP)
    if duplicates not in (DROP, KEEP):
        raise where.error("task", 0, "duplicates", f"{duplicates!r}: use drop or keep")
    return TaskSchema(
        name=name,
        features=features,
        label=label,
        classes=tuple(classes),
        label_aliases=dict(aliases),
        label_column_aliases=tuple(task.get("label_aliases", ())),
        reference=reference,
        primary_metric=task.get("primary_metric"),
        estimator=estimator,
        duplicates=duplicates,
        class_codes=_class_codes(where, task.get("class_codes", {}), classes),
        benchmark=benchmark,
    )


def _class_codes(where: _Locator, raw: object, classes: list[str]) -> dict[int, str]:
    """``class_codes``: ``"index"`` (code i is the i-th class) or a table ``code = "class"``."""
    if raw == "index":
        return dict(enumerate(classes))
    if not isinstance(raw, dict):
        raise where.error("task", 0, "class_codes", 'is "index" or a table of code = "class"')
    codes: dict[int, str] = {}
    for key, name in raw.items():
        if not re.fullmatch(r"\d+", key):
            raise where.error("task", 0, "class_codes", f"{key!r} is not a whole number >= 0")
        if name not in classes:
            raise where.error("task", 0, "class_codes", f"{name!r} is not among {classes}")
        if name in codes.values():
            raise where.error("task", 0, "class_codes", f"{name!r} has two codes")
        codes[int(key)] = name
    return dict(sorted(codes.items()))


def _feature(where: _Locator, raw: Any, index: int) -> Feature:
    if not isinstance(raw, dict):
        raise where.error("features", index, "name", "each [[features]] entry must be a table")
    _unknown(where, raw, _FEATURE_KEYS, "features", index)
    name = _text(where, raw, "name", "features", index)
    kind = raw.get("type", NUMERIC)
    missing = raw.get("missing", REJECT)
    if missing not in (REJECT, IMPUTE):
        raise where.error("features", index, "missing", f"{missing!r}: use reject or impute")
    aliases = tuple(str(a) for a in raw.get("aliases", ()))
    if kind in (NUMERIC, CATEGORICAL):
        foreign = _CATEGORICAL_KEYS if kind == NUMERIC else _NUMERIC_KEYS
        if misplaced := sorted(foreign & set(raw)):
            raise where.error(
                "features", index, misplaced[0], f"does not apply to a {kind} feature"
            )
    if kind == NUMERIC:
        low, high = raw.get("min", -math.inf), raw.get("max", math.inf)
        for key, value in (("min", low), ("max", high)):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise where.error("features", index, key, f"{value!r} is not a number")
        if low > high:
            raise where.error("features", index, "min", f"min {low} is above max {high}")
        resolution = raw.get("resolution")
        if resolution is not None and (
            not isinstance(resolution, int | float)
            or isinstance(resolution, bool)
            or not 0 < resolution < math.inf
        ):
            raise where.error(
                "features", index, "resolution", f"{resolution!r} must be a number above 0"
            )
        return Feature(
            name,
            float(low),
            float(high),
            str(raw.get("unit", "")),
            missing=missing,
            aliases=aliases,
            resolution=None if resolution is None else float(resolution),
        )
    if kind == CATEGORICAL:
        values = raw.get("values")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v.strip() for v in values)
        ):
            raise where.error("features", index, "values", "a categorical feature lists its values")
        if len({v.lower() for v in values}) != len(values):
            raise where.error("features", index, "values", "lists a value twice")
        spellings = _aliases(where, raw, "value_aliases", values, "features", index)
        return Feature(
            name,
            kind=CATEGORICAL,
            values=tuple(values),
            missing=missing,
            aliases=aliases,
            value_aliases=tuple(spellings.items()),
        )
    raise where.error("features", index, "type", f"{kind!r}: use numeric or categorical")


def _aliases(
    where: _Locator, table: dict, key: str, names: list[str], section: str, index: int
) -> dict[str, tuple[str, ...]]:
    """``table[key]``: other spellings of each of ``names``, lower-cased; a spelling may name
    only one of them."""
    aliases = table.get(key, {})
    if not isinstance(aliases, dict) or not set(aliases) <= set(names):
        raise where.error(section, index, key, f"keys must be among {names}")
    owner = {n.lower(): n for n in names}
    spelled: dict[str, tuple[str, ...]] = {}
    for name, spellings in aliases.items():
        if not isinstance(spellings, list) or not all(isinstance(a, str) for a in spellings):
            raise where.error(section, index, key, f"{name}: a list of spellings")
        for spelling in (a.strip().lower() for a in spellings):
            if owner.setdefault(spelling, name) != name:
                raise where.error(
                    section, index, key, f"{spelling!r} spells both {owner[spelling]} and {name}"
                )
        spelled[name] = tuple(a.strip().lower() for a in spellings)
    return spelled


def _text(where: _Locator, table: dict, key: str, section: str, index: int) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise where.error(section, index, key, "is required (a non-empty string)")
    return value.strip()


def _unknown(where: _Locator, table: dict, known: set[str], section: str, index: int) -> None:
    if extra := sorted(set(table) - known):
        raise where.error(section, index, extra[0], f"unknown key (known: {sorted(known)})")


@dataclass(frozen=True)
class _Locator:
    """Line numbers for error messages: tomllib gives none for valid TOML."""

    path: Path
    text: str

    def error(self, section: str, index: int, key: str, problem: str) -> TaskFileError:
        header = "[task]" if section == "task" else "[[features]]"
        lines = self.text.splitlines()
        starts = [i for i, line in enumerate(lines) if line.strip().startswith(header)]
        start = starts[index] if index < len(starts) else 0
        line = start
        for i in range(start + 1, len(lines)):
            stripped = lines[i].strip()
            if stripped.startswith("["):
                break
            if re.match(rf"{re.escape(key)}\s*=", stripped):
                line = i
                break
        where = f"features[{index}]" if section == "features" else "task"
        return TaskFileError(f"{self.path}:{line + 1}: {where}.{key} {problem}")
