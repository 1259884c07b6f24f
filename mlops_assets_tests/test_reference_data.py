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


def test_wrong_columns_fail_naming_them(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text(
        "sepal_length,sepal_width,petal_len,petal_width,species,extra\n1,2,3,4,setosa,x\n"
    )
    with pytest.raises(ReferenceDataError) as info:
        load_reference_data(path, IRIS)
    assert "petal_length" in str(info.value) and "extra" in str(info.value)
    assert info.value.code == "REFERENCE_DATA_INVALID"


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
