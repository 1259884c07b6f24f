import pandas as pd
import pytest

from mlops_assets.core.contributions import (
    intake_contribution,
    map_columns,
    normalise_column_name,
)
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import IRIS
from mlops_assets_tests.conftest import VALID_CONTRIBUTION


def intake(path, min_valid_share=0.5):
    return intake_contribution(
        path, IRIS, contribution_id="c1", contributor="alice", min_valid_share=min_valid_share
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Sepal Length (cm)", "sepal_length"),
        ("sepal.length", "sepal_length"),
        ("SepalLengthCm", "sepallengthcm"),
        ("  PETAL_WIDTH ", "petal_width"),
    ],
)
def test_column_names_are_normalised(name, expected):
    assert normalise_column_name(name) == expected


def test_aliases_map_to_the_task_schema():
    mapping = map_columns(
        ["Sepal Length (cm)", "sepal.width", "PetalLengthCm", "Petal Width", "variety", "x"], IRIS
    )
    assert sorted(mapping.values()) == sorted(IRIS.columns)
    assert "x" not in mapping


def test_valid_contribution_is_accepted_and_unknown_columns_dropped(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text(VALID_CONTRIBUTION)
    result = intake(path)
    assert result.report.accepted
    assert result.report.rows_in == result.report.rows_clean == 4
    assert result.report.dropped_columns == ["email"]
    assert "email" not in result.clean.columns
    assert result.clean["species"].tolist() == ["setosa", "versicolor", "virginica", "versicolor"]
    assert result.clean["row_index"].tolist() == [0, 1, 2, 3]


def test_bad_rows_are_rejected_with_reasons_and_rows_conserved(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text(
        "sepal_length,sepal_width,petal_length,petal_width,species\n"
        "5.0,3.4,1.5,0.2,setosa\n"
        "abc,3.4,1.5,0.2,setosa\n"
        "5.0,3.4,1.5,0.2,rose\n"
    )
    result = intake(path, min_valid_share=0.5)
    report = result.report
    assert report.rows_in == report.rows_clean + report.rows_rejected == 3
    assert not report.accepted and "1/3 rows valid" in report.decision
    assert report.rejection_reasons == {"not_numeric:sepal_length": 1, "unknown_label": 1}
    assert result.rejected["sepal_length"].tolist() == ["abc", "5.0"]
    assert result.rejected["row_index"].tolist() == [1, 2]


def test_missing_columns_reject_every_row(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text("sepal_length,sepal_width,species\n5,3,setosa\n")
    result = intake(path)
    assert not result.report.accepted
    assert result.report.missing_columns == ["petal_length", "petal_width"]
    assert result.report.rows_rejected == 1
    assert "missing required column(s) petal_length, petal_width" in result.report.decision


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("latin1.csv", "sepal_length,species\n5,s\xe9tosa\n".encode("latin-1"), "not UTF-8"),
        ("data.xlsx", b"PK\x03\x04", "unsupported format"),
    ],
)
def test_unreadable_files_raise_a_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ContributionUnreadableError, match=message) as info:
        intake(path)
    assert info.value.hint
    assert path.read_bytes() == content  # the original is never modified


def test_header_only_file_is_rejected_not_crashed(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text(",".join(IRIS.columns) + "\n")
    result = intake(path)
    assert not result.report.accepted and result.report.rows_in == 0
    assert isinstance(result.clean, pd.DataFrame) and result.clean.empty
