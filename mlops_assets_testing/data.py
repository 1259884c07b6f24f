"""Sample contributions."""

import functools

import numpy as np
import pandas as pd

from mlops_assets.settings import REPO_ROOT

IRIS_CSV = REPO_ROOT / "data" / "iris.csv"

VALID_CONTRIBUTION = (
    "Sepal Length (cm),sepal.width,PetalLengthCm,petal_width,variety,email\n"
    "5.05,3.45,1.75,0.25,Iris-setosa,a@example.com\n"
    "6.1,2.9,4.6,1.3,VERSICOLOR,b@example.com\n"
    "6.9,3.2,5.8,2.2,I. virginica,c@example.com\n"
    "5.5,2.5,4.0,1.2,versicolor,d@example.com\n"
)


def distinct_sample(index: int) -> str:
    """A valid contribution written like data/sample_contribution.csv (two new flowers of each
    species), whose rows match no iris flower and no other ``distinct_sample``'s at the task's
    resolution: every index up to 99 is a contribution of its own rows."""
    flowers = _distinct_pool().iloc[6 * index : 6 * index + 6]
    if len(flowers) < 6:
        raise ValueError(f"distinct_sample({index}): only 100 distinct samples are drawn")
    header = "Sepal Length (cm),Sepal Width (cm),Petal Length (cm),Petal Width (cm),variety"
    rows = [
        ",".join([*(f"{v:.1f}" for v in row[:4]), f"Iris-{row[4]}"])
        for row in flowers.itertuples(index=False)
    ]
    return "\n".join([header, *rows]) + "\n"


@functools.cache
def _distinct_pool() -> pd.DataFrame:
    """600 new flowers, two of each species after another, for :func:`distinct_sample`."""
    flowers = new_flowers(per_class=200, seed=20261204)
    by_class = [group.reset_index(drop=True) for _, group in flowers.groupby("species")]
    pairs = [part.iloc[2 * i : 2 * i + 2] for i in range(100) for part in by_class]
    return pd.concat(pairs, ignore_index=True)


def iris_like(n: int, *, start: int = 0, step: int = 1) -> pd.DataFrame:
    """``n`` new, valid flowers laid out like iris (50 of each species in turn), every
    ``step``-th from ``start``: a file of the same shape as iris, none of whose rows is one of
    iris' at the task's resolution."""
    return _iris_like().iloc[start : start + n * step : step].reset_index(drop=True)


@functools.cache
def _iris_like() -> pd.DataFrame:
    return new_flowers(per_class=50, seed=4)


def new_flowers(per_class: int, seed: int, decimals: int = 1) -> pd.DataFrame:
    """Flowers that are not in iris: drawn from each species' own mean and covariance and
    measured to 0.1 cm as the iris data is (or to ``decimals``), none of them matching an iris
    flower or another drawn one at the task's resolution (0.1 cm on every measurement): what
    a contributor who really measured new flowers would send."""
    iris = pd.read_csv(IRIS_CSV)
    features = [c for c in iris.columns if c != "species"]
    rng = np.random.default_rng(seed)
    parts = []
    for species, rows in iris.groupby("species"):
        measured = rows[features].to_numpy()
        kept = list(measured)
        drawn: list[np.ndarray] = []
        while len(drawn) < per_class:
            row = np.round(
                np.clip(rng.multivariate_normal(measured.mean(0), np.cov(measured.T)), 0.1, None),
                decimals,
            )
            if not (np.abs(np.asarray(kept) - row) < 0.1 - 1e-6).all(axis=1).any():
                kept.append(row)
                drawn.append(row)
        parts.append(pd.DataFrame(drawn, columns=features).assign(species=species))
    return pd.concat(parts, ignore_index=True)


# Each shipped task's contributions as its own community writes them: column names, class
# and category spellings of the sources the task file's aliases come from.
UCI_IRIS = ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]
UCI_WINE = [
    "Alcohol", "Malic acid", "Ash", "Alcalinity of ash", "Magnesium", "Total phenols",
    "Flavanoids", "Nonflavanoid phenols", "Proanthocyanins", "Color intensity", "Hue",
    "OD280/OD315 of diluted wines", "Proline",
]  # fmt: skip
PENGUIN_SPECIES = {
    "Adelie": "Adelie Penguin (Pygoscelis adeliae)",
    "Chinstrap": "Chinstrap penguin (Pygoscelis antarctica)",
    "Gentoo": "Gentoo penguin (Pygoscelis papua)",
}


def iris_contribution(per_class: int = 10) -> pd.DataFrame:
    """New flowers as Kaggle's Iris.csv writes them: ``Id``, ``SepalLengthCm``, ...,
    ``Species`` = ``Iris-setosa``."""
    flowers = new_flowers(per_class=per_class, seed=11)
    uci = flowers.drop(columns="species").set_axis(UCI_IRIS, axis=1)
    uci.insert(0, "Id", range(151, 151 + len(uci)))
    return uci.assign(Species="Iris-" + flowers["species"])


def wine_contribution() -> pd.DataFrame:
    """Wines as the UCI repository names the columns, with scikit-learn's class names, each
    measurement nudged so the rows are new."""
    wine = pd.read_csv(REPO_ROOT / "data" / "wine.csv").sample(n=30, random_state=1)
    wine = wine.reset_index(drop=True)
    nudged = (wine.drop(columns="cultivar") * 1.01).round(4).set_axis(UCI_WINE, axis=1)
    names = {"cultivar_1": "class_0", "cultivar_2": "class_1", "cultivar_3": "class_2"}
    return nudged.assign(Class=wine["cultivar"].map(names))


def penguins_contribution() -> pd.DataFrame:
    """Penguins as the raw Palmer data (``penguins_raw``) writes them: ``Culmen Length (mm)``,
    ``Adelie Penguin (Pygoscelis adeliae)``, ``MALE``, with its other columns, one penguin
    without its mass and two without their sex; bills measured again, so the rows are new."""
    penguins = pd.read_csv(REPO_ROOT / "data" / "penguins.csv").dropna(subset="bill_length_mm")
    sample = penguins.sample(n=30, random_state=1).reset_index(drop=True)
    raw = pd.DataFrame(
        {
            "studyName": "PAL0910",
            "Sample Number": range(1, len(sample) + 1),
            "Species": sample["species"].map(PENGUIN_SPECIES),
            "Region": "Anvers",
            "Island": sample["island"],
            "Individual ID": [f"N{i}A1" for i in range(len(sample))],
            "Culmen Length (mm)": (sample["bill_length_mm"] + 0.3).round(1),
            "Culmen Depth (mm)": sample["bill_depth_mm"],
            "Flipper Length (mm)": sample["flipper_length_mm"],
            "Body Mass (g)": sample["body_mass_g"],
            "Sex": sample["sex"].str.upper(),
            "Comments": "",
        }
    )
    raw.loc[0, "Body Mass (g)"] = None
    raw.loc[[1, 2], "Sex"] = None
    return raw


def catalog_at(folder, task):
    """A contribution catalog in an SQLite file under ``folder`` (as the embedded home has)."""
    from mlops_assets.core.catalog.catalog import ContributionCatalog

    return ContributionCatalog(f"sqlite:///{folder}/catalog.sqlite", task)


def ingested(rows: pd.DataFrame, folder, split, records, *, cid: str, who: str, landed_at: float):
    """``rows`` written as ``<folder>/<cid>.csv`` and taken in by ``process_contribution``
    (the default policy) into ``<folder>/contributions``, recorded in ``records``; its report."""
    from mlops_assets.core.intake.processing import process_contribution
    from mlops_assets.core.intake.report import IntakePolicy
    from mlops_assets.task import IRIS

    path = folder / f"{cid}.csv"
    rows.to_csv(path, index=False)
    return process_contribution(
        path,
        IRIS,
        reference=split.train,
        benchmark=split.benchmark,
        contributions_root=folder / "contributions",
        contribution_id=cid,
        contributor=who,
        policy=IntakePolicy(),
        landing_path=f"{who}/{cid}.csv",
        landed_at=landed_at,
        records=records,
    )
