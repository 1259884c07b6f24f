"""Task files: the shipped ones, and bad ones that must be refused naming line and key."""

import dataclasses
import json
from pathlib import Path

import pytest

from mlops_assets.core.intake.columns import map_columns
from mlops_assets.task import IRIS, TaskFileError, load_task
from mlops_assets_testing.processes import REPO, in_process_mlops

GOOD = """\
[task]
name = "penguins"
label = "species"
classes = ["Adelie", "Gentoo"]
reference = "penguins.csv"

[[features]]
name = "bill_length_mm"
type = "numeric"
min = 10.0
max = 80.0

[[features]]
name = "island"
type = "categorical"
values = ["Biscoe", "Dream", "Torgersen"]
missing = "impute"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "task.toml"
    path.write_text(text)
    return path


def test_the_shipped_iris_task_file_is_the_default_task():
    task = load_task(REPO / "tasks" / "iris.toml")
    for field in dataclasses.fields(task):
        if field.name != "reference":
            assert getattr(task, field.name) == getattr(IRIS, field.name), field.name
    assert task.reference == str(REPO / "data" / "iris.csv")


def test_the_wine_task_maps_its_own_column_spellings():
    wine = load_task(REPO / "tasks" / "wine.toml")
    assert wine.name == "wine" and len(wine.features) == 13
    assert map_columns(["OD280/OD315 of diluted wines", "Alcohol", "Class"], wine) == {
        "OD280/OD315 of diluted wines": "od280/od315_of_diluted_wines",
        "Alcohol": "alcohol",
        "Class": "cultivar",
    }
    assert wine.normalise_label("class_0") == "cultivar_1"
    # The wine task declares no class codes: UCI's wine.data codes the cultivars 1-3,
    # scikit-learn's load_wine 0-2, so a bare 2 names no cultivar.
    assert wine.class_codes == {} and wine.normalise_label(2) is None


def test_class_codes_are_only_what_the_task_declares(tmp_path):
    assert load_task(write(tmp_path, GOOD)).class_codes == {}
    indexed = load_task(write(tmp_path, GOOD.replace("[task]", '[task]\nclass_codes = "index"')))
    assert indexed.class_codes == {0: "Adelie", 1: "Gentoo"}
    assert indexed.normalise_label("1.0") == "Gentoo" and indexed.normalise_label(2) is None
    r_coded = GOOD.replace("[task]", '[task]\nclass_codes = {1 = "Adelie", 2 = "Gentoo"}')
    assert load_task(write(tmp_path, r_coded)).normalise_label("2") == "Gentoo"


def test_a_categorical_feature_is_read_with_its_values(tmp_path):
    task = load_task(write(tmp_path, GOOD))
    island = task.features[1]
    assert (island.kind, island.values, island.missing) == (
        "categorical",
        ("Biscoe", "Dream", "Torgersen"),
        "impute",
    )
    assert task.reference == str(tmp_path / "penguins.csv")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('label = "species"\n', ""), ":1: task.label is required"),
        (
            ('name = "island"', 'name = "bill_length_mm"'),
            ":14: features[1].name feature 'bill_length_mm' is declared twice",
        ),
        (("min = 10.0", "min = 90.0"), ":10: features[0].min min 90.0 is above max 80.0"),
        (
            ('type = "categorical"', 'type = "ordinal"'),
            ":15: features[1].type 'ordinal': use numeric or categorical",
        ),
        (
            ('missing = "impute"', 'missing = "drop"'),
            ":17: features[1].missing 'drop': use reject or impute",
        ),
        (("max = 80.0", 'max = "high"'), ":11: features[0].max 'high' is not a number"),
        (
            ('values = ["Biscoe", "Dream", "Torgersen"]', ""),
            "features[1].values a categorical feature lists its values",
        ),
        (
            ('classes = ["Adelie", "Gentoo"]', 'classes = ["Adelie"]'),
            ":4: task.classes must list at least two",
        ),
        (("[task]", "[task]\ncolour = 1"), ":2: task.colour unknown key"),
        (('name = "penguins"', 'name = "Penguins!"'), "task.name 'Penguins!' must be lower-case"),
        (("[[features]]", "[[features"), "not valid TOML"),
        (
            ('missing = "impute"', 'missing = "impute"\nmin = 0'),
            ":18: features[1].min does not apply to a categorical feature",
        ),
        (
            ('missing = "impute"', 'missing = "impute"\nvalue_aliases = {Anvers = ["a"]}'),
            "features[1].value_aliases keys must be among",
        ),
        (
            ('missing = "impute"', 'missing = "impute"\nvalue_aliases = {Dream = ["biscoe"]}'),
            "features[1].value_aliases 'biscoe' spells both Biscoe and Dream",
        ),
        (('"Biscoe", "Dream"', '"Biscoe", "biscoe"'), "features[1].values lists a value twice"),
        (("min = 10.0", 'min = 10.0\nvalues = ["x"]'), "features[0].values does not apply to a"),
        (('reference = "penguins.csv"', 'duplicates = "some"'), ":5: task.duplicates 'some'"),
        (('reference = "penguins.csv"', 'estimator = "svm"'), ":5: task.estimator 'svm': use"),
        (
            ('reference = "penguins.csv"', 'class_codes = "position"'),
            ':5: task.class_codes is "index" or a table',
        ),
        (
            ('reference = "penguins.csv"', 'class_codes = {1 = "Adelie", x = "Gentoo"}'),
            ":5: task.class_codes 'x' is not a whole number",
        ),
        (
            ('reference = "penguins.csv"', 'class_codes = {1 = "Adelie", 2 = "Emperor"}'),
            ":5: task.class_codes 'Emperor' is not among",
        ),
        (
            ('reference = "penguins.csv"', 'class_codes = {1 = "Adelie", 2 = "Adelie"}'),
            ":5: task.class_codes 'Adelie' has two codes",
        ),
        (
            ('reference = "penguins.csv"', 'reference = "sklearn:load_penguins"'),
            ":5: task.reference 'sklearn:load_penguins': scikit-learn's loaders are",
        ),
    ],
)
def test_a_bad_task_file_is_refused_naming_line_and_key(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(TaskFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_task(write(tmp_path, GOOD.replace(old, new, 1)))


def test_mlops_task_check_reads_the_reference_data(tmp_path, monkeypatch, capsys):
    mlops = in_process_mlops(tmp_path / "var", monkeypatch, capsys)
    code, out, _ = mlops("task", "check", str(REPO / "tasks" / "wine.toml"), "--json")
    assert code == 0
    checked = json.loads(out)
    assert checked["reference"]["rows"] == 178
    assert checked["reference"]["class_counts"] == {
        "cultivar_2": 71,
        "cultivar_1": 59,
        "cultivar_3": 48,
    }
    code, out, _ = mlops("task", "check", str(REPO / "tasks" / "iris.toml"))
    assert code == 0 and "sepal_length: numeric 0.1 to 15 cm; missing: reject" in out

    task = write(tmp_path, GOOD)
    code, _, err = mlops("task", "check", str(task))
    assert code == 2 and "task.reference: " in err and "penguins.csv does not exist" in err
    (tmp_path / "penguins.csv").write_text("bill_length_mm,species\n39.1,Adelie\n")
    code, _, err = mlops("task", "check", str(task))
    assert code == 2 and "has the wrong columns: missing ['island']" in err
    code, _, err = mlops("task", "check", str(tmp_path / "nothing.toml"))
    assert code == 2 and "nothing.toml: cannot be read" in err


def test_a_binary_task_is_scored_with_the_auc_of_its_positive_class(tmp_path):
    """Two wine cultivars as a binary task: every metric, the bootstrap and ROC AUC work."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from mlops_assets.core.data.reference_data import split_benchmark
    from mlops_assets.core.modeling.evaluation import SUMMARY_METRICS, evaluate
    from mlops_assets.core.modeling.scoring import bootstrap_counts, weighted_scores
    from mlops_assets.core.modeling.training import train_model

    text = (REPO / "tasks" / "wine.toml").read_text()
    text = (
        text.replace(
            'classes = ["cultivar_1", "cultivar_2", "cultivar_3"]',
            'classes = ["cultivar_1", "cultivar_2"]',
        )
        .replace('cultivar_3 = ["class_2"]\n', "")
        .replace("../data/wine.csv", str(REPO / "data" / "wine.csv"))
    )
    task = load_task(write(tmp_path, text))
    wine = pd.read_csv(REPO / "data" / "wine.csv")
    wine = wine[wine["cultivar"] != "cultivar_3"]
    split = split_benchmark(wine, task, fraction=0.3, seed=1)
    model = train_model(
        split.train, task, estimator="logistic_regression", hyperparameters={}, seed=1
    )
    evaluation = evaluate(model, split.benchmark, task)
    positive = model.predict_proba(split.benchmark[task.feature_names])[:, 1]
    expected = roc_auc_score(split.benchmark["cultivar"] == "cultivar_2", positive)
    assert evaluation.metrics["roc_auc_ovr"] == pytest.approx(expected, abs=1e-6)
    counts = bootstrap_counts(evaluation.n_rows, resamples=5, seed=0)
    for metric in SUMMARY_METRICS:
        score = weighted_scores(evaluation.predictions, counts, metric)[0]
        assert abs(score) == pytest.approx(evaluation.metrics[metric], abs=1e-6), metric


def test_identical_rows_are_observations_by_default_only_with_a_categorical_feature(tmp_path):
    assert load_task(write(tmp_path, GOOD)).duplicates == "keep"
    numeric_only = GOOD[: GOOD.index('[[features]]\nname = "island"')]
    assert load_task(write(tmp_path, numeric_only)).duplicates == "drop"
    stated = GOOD.replace('reference = "penguins.csv"', 'reference = "p.csv"\nduplicates = "drop"')
    assert load_task(write(tmp_path, stated)).duplicates == "drop"


def test_a_task_files_estimator_is_the_default_of_training(tmp_path):
    from mlops_assets.defs.training.assets import Estimator, TrainingConfig

    task = load_task(write(tmp_path, GOOD.replace("[task]", '[task]\nestimator = "random_forest"')))
    spec = TrainingConfig().spec(task, seed=7)
    assert (spec.estimator, spec.hyperparameters["n_estimators"], spec.seed) == (
        "random_forest",
        100,
        7,
    )
    chosen = TrainingConfig(estimator=Estimator.gradient_boosting, seed=3).spec(task, seed=7)
    assert (chosen.estimator, chosen.seed) == ("gradient_boosting", 3)
    assert TrainingConfig().spec(IRIS, seed=7).estimator == "logistic_regression"
