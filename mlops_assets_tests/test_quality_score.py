"""Properties of the contribution quality score, pinned for any shares."""

from hypothesis import given
from hypothesis import strategies as st

from mlops_assets.core.intake.report import ContributionReport, quality_from_shares, quality_score

share = st.floats(0.0, 1.0)


@st.composite
def shares(draw):
    usable = draw(share)
    return {
        "usable": usable,
        "clean": draw(st.floats(0.0, usable)),
        "outliers": draw(share),
        "balance": draw(share),
        "drift": draw(share),
    }


@given(shares())
def test_the_score_is_between_0_and_100_and_0_only_without_usable_records(values):
    score = quality_from_shares(**values)
    assert 0 <= score <= 100
    if values["usable"] == 0:
        assert score == 0
    elif values["usable"] >= 0.001:  # one usable record in a thousand
        assert score > 0


@given(shares(), st.floats(0.0, 1.0))
def test_more_usable_or_clean_records_never_lower_the_score(values, more):
    better_clean = min(values["usable"], values["clean"] + more * (1 - values["clean"]))
    assert quality_from_shares(**{**values, "clean": better_clean}) >= quality_from_shares(**values)
    better_usable = values["usable"] + more * (1 - values["usable"])
    assert quality_from_shares(**{**values, "usable": better_usable}) >= quality_from_shares(
        **values
    )


@given(shares(), st.sampled_from(["outliers", "drift"]), st.floats(0.0, 1.0))
def test_more_outliers_or_drift_never_raise_the_score(values, name, more):
    worse = {**values, name: values[name] + more * (1 - values[name])}
    assert quality_from_shares(**worse) <= quality_from_shares(**values)


@given(shares(), st.floats(0.0, 1.0))
def test_less_balance_never_raises_the_score(values, less):
    worse = {**values, "balance": values["balance"] * less}
    assert quality_from_shares(**worse) <= quality_from_shares(**values)


def test_a_perfect_file_scores_100_and_all_duplicates_still_beat_nothing_usable():
    assert quality_from_shares(usable=1, clean=1, outliers=0, balance=1, drift=0) == 100
    duplicates = quality_from_shares(usable=1, clean=0, outliers=1, balance=0, drift=0)
    nothing = quality_from_shares(usable=0, clean=0, outliers=1, balance=0, drift=0)
    assert duplicates == 20 > nothing == 0


@given(st.integers(1, 1000), st.integers(0, 1000))
def test_a_report_without_usable_rows_scores_0_whatever_else_it_says(rows_in, rejected):
    report = ContributionReport("c", "a", "f.csv", "0" * 64, rows_in=rows_in, rows_usable=0)
    report.rejection_reasons = {"not_numeric:sepal_length": rejected}
    assert quality_score(report, n_classes=3) == 0
