import math

import pandas as pd
import pytest

from mlops_assets.core.intake.validation import REASON_COLUMN, validate_rows
from mlops_assets.task import IRIS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("setosa", "setosa"),
        ("Iris-setosa", "setosa"),
        ("SETOSA", "setosa"),
        ("0", "setosa"),
        (0, "setosa"),
        ("1.0", "versicolor"),
        (" Iris-virginica ", "virginica"),
        ("rose", None),
        ("", None),
        (None, None),
        ("3", None),
    ],
)
def test_labels_are_normalised(value, expected):
    assert IRIS.normalise_label(value) == expected


def frame(*rows):
    return pd.DataFrame(rows, columns=IRIS.columns, dtype=object)


def test_valid_rows_are_typed_and_kept():
    result = validate_rows(frame(["5.1", " 3.5", "1.4", "0.2", "Iris-setosa"]), IRIS)
    assert result.rejected.empty
    assert result.valid.iloc[0].tolist() == [5.1, 3.5, 1.4, 0.2, "setosa"]
    assert str(result.valid["sepal_length"].dtype) == "float64"


def test_every_reason_is_recorded_and_original_values_kept():
    rows = frame(
        ["abc", "3.5", "1.4", "0.2", "setosa"],
        ["5.1", "", "1.4", "0.2", "setosa"],
        ["inf", "3.5", "1.4", "0.2", "setosa"],
        ["-5", "3.5", "1.4", "0.2", "setosa"],
        ["5.1", "3.5", "1.4", "0.2", "rose"],
        ["500", "nan", "1.4", "0.2", "tulip"],
        ["5.1", "3.5", "1.4", "0.2", "virginica"],
    )
    result = validate_rows(rows, IRIS)
    reasons = result.rejected[REASON_COLUMN].tolist()
    assert reasons == [
        "not_numeric:sepal_length",
        "missing_value:sepal_width",
        "non_finite:sepal_length",
        "out_of_range:sepal_length",
        "unknown_label",
        # "nan" is how pandas and R spell a missing value, not an infinite measurement.
        "out_of_range:sepal_length;missing_value:sepal_width;unknown_label",
    ]
    assert result.rejected["sepal_length"].tolist()[0] == "abc"
    assert len(result.valid) + len(result.rejected) == len(rows)
    assert result.reason_counts["unknown_label"] == 2


def test_zero_is_outside_the_physical_range():
    result = validate_rows(frame([0, 3.5, 1.4, 0.2, "setosa"]), IRIS)
    assert result.rejected[REASON_COLUMN].tolist() == ["out_of_range:sepal_length"]
    assert not math.isnan(IRIS.features[0].minimum)
