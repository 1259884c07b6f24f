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
    assert wine.normalise_label("class_0") == "cultivar_1" and wine.normalise_label(2) == (
        "cultivar_3"
    )


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
