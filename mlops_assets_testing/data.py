"""Sample contributions."""

import numpy as np
import pandas as pd

from mlops_assets.settings import REPO_ROOT

IRIS_CSV = REPO_ROOT / "data" / "iris.csv"

VALID_CONTRIBUTION = (
    "Sepal Length (cm),sepal.width,PetalLengthCm,petal_width,variety,email\n"
    "5.05,3.45,1.55,0.25,Iris-setosa,a@example.com\n"
    "6.1,2.9,4.6,1.3,VERSICOLOR,b@example.com\n"
    "6.9,3.2,5.8,2.2,2,c@example.com\n"
    "5.5,2.5,4.0,1.2,versicolor,d@example.com\n"
)


def shifted_sample(shift: float) -> str:
    """data/sample_contribution.csv with every measurement moved by ``shift`` cm: a valid
    contribution whose rows are new for every distinct shift."""
    header, *rows = (REPO_ROOT / "data" / "sample_contribution.csv").read_text().splitlines()
    moved = []
    for row in rows:
        *measurements, label = row.split(",")
        moved.append(",".join([f"{float(v) + shift:.3f}" for v in measurements] + [label]))
    return "\n".join([header, *moved]) + "\n"


def new_flowers(per_class: int, seed: int, decimals: int = 1) -> pd.DataFrame:
    """Flowers that are not in iris: drawn from each species' own mean and covariance and
    measured to 0.1 cm as the iris data is (or to ``decimals``, for many distinct rows)."""
    iris = pd.read_csv(IRIS_CSV)
    features = [c for c in iris.columns if c != "species"]
    rng = np.random.default_rng(seed)
    parts = []
    for species, rows in iris.groupby("species"):
        measured = rows[features].to_numpy()
        drawn = rng.multivariate_normal(measured.mean(0), np.cov(measured.T), per_class)
        part = pd.DataFrame(np.round(np.clip(drawn, 0.1, None), decimals), columns=features)
        parts.append(part.assign(species=species))
    return pd.concat(parts, ignore_index=True)
