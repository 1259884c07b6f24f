from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.core.data.reference_data import (
    SOURCE_FILE,
    SOURCE_SKLEARN,
    load_reference_data,
    split_benchmark,
)
from mlops_assets.errors import ReferenceDataError
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV


def test_shipped_file_is_the_canonical_150_rows():
    data = load_reference_data(IRIS_CSV, IRIS)
    assert data.source == SOURCE_FILE
    assert len(data.frame) == 150
    assert data.frame[IRIS.label].value_counts().to_dict() == {
        "setosa": 50,
        "versicolor": 50,
        "virginica": 50,
    }
    sklearn_copy = load_reference_data(IRIS_CSV.parent / "missing.csv", IRIS).frame
    pd.testing.assert_frame_equal(data.frame, sklearn_copy)


@pytest.mark.parametrize(
    ("content", "why"),
    [(None, "does not exist"), ("", "is empty"), ("  \n", "is empty")],
)
def test_missing_or_empty_file_falls_back_to_sklearn(tmp_path, content, why):
    path = tmp_path / "iris.csv"
    if content is not None:
        path.write_text(content)
    data = load_reference_data(path, IRIS)
    assert data.source == SOURCE_SKLEARN
    assert why in data.fallback_reason
    assert len(data.frame) == 150


def test_header_only_file_falls_back(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text(",".join(IRIS.columns) + "\n")
    assert load_reference_data(path, IRIS).source == SOURCE_SKLEARN


def test_a_missing_column_fails_naming_it(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text("sepal_length,sepal_width,petal_size,petal_width,species\n1,2,3,4,setosa\n")
    with pytest.raises(ReferenceDataError) as info:
        load_reference_data(path, IRIS)
    assert "has the wrong columns: missing ['petal_length']" in str(info.value)
    assert "petal_size" in str(info.value)  # what it has instead
    assert info.value.code == "REFERENCE_DATA_INVALID"


def test_columns_are_found_by_alias_and_extra_ones_dropped_and_reported(tmp_path):
    """A UCI-style header with row ids and a note column: the task's columns are found by
    their spellings, the rest reported, not refused."""
    header = "Id,SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm,Species,note"
    rows = [
        f"{i},{line},seen" for i, line in enumerate(IRIS_CSV.read_text().splitlines()[1:], start=1)
    ]
    path = tmp_path / "Iris.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    data = load_reference_data(path, IRIS)
    assert data.dropped_columns == ("Id", "note")
    assert list(data.frame.columns) == IRIS.columns
    pd.testing.assert_frame_equal(data.frame, load_reference_data(IRIS_CSV, IRIS).frame)


def test_a_parquet_reference_and_a_scikit_learn_loader_read_like_the_csv(tmp_path):
    csv = load_reference_data(IRIS_CSV, IRIS)
    path = tmp_path / "iris.parquet"
    pd.read_csv(IRIS_CSV).to_parquet(path)
    pd.testing.assert_frame_equal(load_reference_data(path, IRIS).frame, csv.frame)
    loaded = load_reference_data("sklearn:load_iris", IRIS)
    assert (loaded.source, loaded.location) == (SOURCE_SKLEARN, "sklearn.datasets.load_iris")
    assert loaded.frame[IRIS.label].value_counts().to_dict() == {
        "setosa": 50,
        "versicolor": 50,
        "virginica": 50,
    }


def test_rows_missing_a_required_value_are_left_out_and_counted(tmp_path):
    """The Palmer penguins: two rows without measurements are left out (the task rejects a
    missing bill length), eleven without sex are kept (it imputes sex)."""
    from mlops_assets.task import load_task
    from mlops_assets_testing.processes import REPO

    penguins = load_task(REPO / "tasks" / "penguins.toml")
    data = load_reference_data(penguins.reference, penguins)
    assert (len(data.frame), data.rows_left_out, data.dropped_columns) == (342, 2, ("year",))
    assert data.left_out_reasons["missing_value:bill_length_mm"] == 2
    assert data.frame["sex"].isna().sum() == 9
    assert set(data.frame["sex"].dropna()) == {"female", "male"}
    assert data.frame["body_mass_g"].dtype == "float64"
    # A missing value where none may be missing that is not all: a typo still fails.
    path = tmp_path / "penguins.csv"
    path.write_text(Path(penguins.reference).read_text().replace("Torgersen", "Torgerson", 1))
    with pytest.raises(ReferenceDataError, match="row 2: unknown_category:island"):
        load_reference_data(path, penguins)


def test_non_numeric_values_fail_naming_the_line(tmp_path):
    lines = IRIS_CSV.read_text().splitlines()
    lines[3] = "5.1,abc,1.4,0.2,setosa"
    path = tmp_path / "iris.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReferenceDataError) as info:
        load_reference_data(path, IRIS)
    assert "row 4: not_numeric:sepal_width" in str(info.value)


def test_unknown_label_fails(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text(IRIS_CSV.read_text().replace("virginica", "rose", 1))
    with pytest.raises(ReferenceDataError, match="unknown_label"):
        load_reference_data(path, IRIS)


def test_split_is_deterministic_stratified_and_disjoint():
    frame = load_reference_data(IRIS_CSV, IRIS).frame
    first = split_benchmark(frame, IRIS, fraction=0.3, seed=42)
    again = split_benchmark(frame, IRIS, fraction=0.3, seed=42)
    other = split_benchmark(frame, IRIS, fraction=0.3, seed=7)
    pd.testing.assert_frame_equal(first.benchmark, again.benchmark)
    assert not first.benchmark.equals(other.benchmark)
    assert len(first.benchmark) == 45 and len(first.train) == 105
    assert set(first.benchmark[IRIS.label].value_counts()) == {15}
