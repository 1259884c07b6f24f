"""Property tests: for arbitrary contributed rows, intake conserves, never lets an invalid row
through, never rejects a valid one, and is deterministic."""

import csv
import math

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.core.contributions import IntakePolicy, intake_contribution
from mlops_assets.core.reference_data import load_reference_data
from mlops_assets.task import IRIS
from mlops_assets_tests.conftest import IRIS_CSV

REFERENCE = load_reference_data(IRIS_CSV, IRIS).frame
LABELS = ["setosa", "Iris-virginica", "VERSICOLOR", "2", "rose", "", "0.0"]


def measurement(feature):
    inside = st.floats(feature.minimum, feature.maximum).map(lambda v: f"{v:.3f}")
    junk = st.sampled_from(["", "abc", "nan", "inf", "-1", "1e9", " 5 ", "1,5"])
    return st.one_of(inside, inside, junk)


rows = st.lists(
    st.tuples(*(measurement(f) for f in IRIS.features), st.sampled_from(LABELS)),
    min_size=0,
    max_size=25,
)


def oracle_valid(row) -> bool:
    """An independent, row-by-row statement of what a valid row is."""
    *values, label = row
    for feature, text in zip(IRIS.features, values, strict=True):
        try:
            number = float(text.strip())
        except ValueError:
            return False
        if not math.isfinite(number) or not feature.minimum <= number <= feature.maximum:
            return False
    return IRIS.normalise_label(label) is not None


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=rows)
def test_intake_conserves_rows_and_judges_each_row_like_the_oracle(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("prop")
    path = folder / "c.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(IRIS.columns)
        writer.writerows(rows)

    def run(out):
        return intake_contribution(
            path,
            IRIS,
            reference=REFERENCE,
            contribution_id="p",
            contributor="h",
            policy=IntakePolicy(min_quality=0, min_valid_share=0),
            output_dir=folder / out,
        )

    report = run("a")
    assert report.rows_in == len(rows) == report.rows_clean + report.rows_rejected
    clean = pd.read_parquet(folder / "a" / "clean.parquet")
    rejected = pd.read_parquet(folder / "a" / "rejected.parquet")
    assert sorted([*clean["row_index"], *rejected["row_index"]]) == list(range(len(rows)))

    for index in clean["row_index"]:
        assert oracle_valid(rows[index]), rows[index]  # never accepts an invalid row
    for index, reasons in zip(rejected["row_index"], rejected["rejection_reasons"], strict=True):
        if oracle_valid(rows[index]):  # a valid row is only ever rejected as a duplicate
            assert set(reasons.split(";")) <= {
                "duplicate_in_contribution",
                "duplicate_of_reference",
            }

    again = run("b")
    assert again.to_dict() == report.to_dict()  # deterministic
