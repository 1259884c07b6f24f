"""The limit the pipeline's first champion is measured against: the same work by hand, in one
process. Read iris, split off the same stratified 30 % benchmark, train the same scaled
logistic regression, log it to a fresh MLflow SQLite store (skops, with a signature and an
input example), register it and alias it ``champion``. Prints the seconds it took.

    python benchmarks/plain_champion.py WORKDIR
"""

import sys
import time

started = time.perf_counter()

from pathlib import Path  # noqa: E402

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main(workdir: Path) -> None:
    iris = pd.read_csv(REPO / "data" / "iris.csv")
    train, _ = train_test_split(iris, test_size=0.3, random_state=42, stratify=iris["species"])
    x, y = train.drop(columns="species"), train["species"]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(x, y)
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    # Artifacts in the work directory too, not in ./mlruns wherever this was started.
    artifacts = (workdir / "artifacts").as_uri()
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("plain", artifacts))
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x.head(5), model.predict(x.head(5))),
            input_example=x.head(5),
            serialization_format="skops",
            pip_requirements=["scikit-learn"],
        )
    version = mlflow.register_model(info.model_uri, "plain-classifier").version
    mlflow.MlflowClient().set_registered_model_alias("plain-classifier", "champion", version)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    print(f"{time.perf_counter() - started:.2f}")
