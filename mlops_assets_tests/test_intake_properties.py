"""Property tests: for arbitrary contributed rows, intake conserves, never lets an invalid row
through, never rejects a valid one, and is deterministic."""

import csv
import io
import math

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.core.data.reference_data import load_reference_data
from mlops_assets.core.intake.intake import intake_contribution
from mlops_assets.core.intake.report import IntakePolicy
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV

REFERENCE = load_reference_data(IRIS_CSV, IRIS).frame
LABELS = ["setosa", "Iris-virginica", "VERSICOLOR", "2", "rose", "", "0.0"]


def measurement(feature):
    inside = st.floats(feature.minimum, feature.maximum).map(lambda v: f"{v:.3f}")
    junk = st.sampled_from(["", "abc", "nan", "inf", "-1", "1e9", " 5 ", "1,5"])
    return st.one_of(inside, inside, junk)


one_row = st.tuples(*(measurement(f) for f in IRIS.features), st.sampled_from(LABELS))
rows = st.lists(one_row, min_size=0, max_size=25)


def codes_readable(rows) -> bool:
    """Whether the file's integer labels can be read with the task's codes (0-2): only when
    it shows a 0, which R's codes (from 1) never hold."""
    codes = {int(float(row[-1])) for row in rows if row[-1] in ("2", "0.0")}
    return not codes or 0 in codes


def oracle_valid(row, codes_ok: bool = True) -> bool:
    """An independent, row-by-row statement of what a valid row is."""
    *values, label = row
    if label in ("2", "0.0") and not codes_ok:
        return False
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

    # A rejected row keeps the file's own text, each value beside its row's index.
    for _, row in rejected.iterrows():
        kept = [row[column] for column in IRIS.columns]
        assert kept == [text or None for text in rows[row["row_index"]]]

    codes_ok = codes_readable(rows)
    for index in clean["row_index"]:
        assert oracle_valid(rows[index], codes_ok), rows[index]  # never accepts an invalid row
    for index, reasons in zip(rejected["row_index"], rejected["rejection_reasons"], strict=True):
        if oracle_valid(rows[index], codes_ok):  # a valid row is only ever rejected as a duplicate
            assert set(reasons.split(";")) <= {
                "duplicate_in_contribution",
                "duplicate_of_reference",
            }

    again = run("b")
    timeless = [{**r.to_dict(), "timings": None} for r in (report, again)]
    assert timeless[0] == timeless[1]  # deterministic


DELIMITERS = [",", ";", "\t", "|"]
free_text = st.text(alphabet=st.sampled_from(list("ab ,;|\t\"\n'é")), max_size=8)
# Old-Mac text ends lines with a lone CR, so a cell's line break is no LF either.
free_text_cr = st.text(alphabet=st.sampled_from(list("ab ,;|\t\"'é")), max_size=8)
# What instruments write above the header.
COMMENTS = ["# Instrument: FlowerScan 3000", "# Units: cm", "#", "# operator: J. Doe; run 42"]


@st.composite
def delimited_texts(draw):
    """CSV texts as csv writers produce them, with a header or none under a block of comment
    lines or none, ragged rows, blank lines, quoting styles, LF, CRLF or CR-only line endings,
    and free text holding delimiters, quotes and line breaks."""
    delimiter = draw(st.sampled_from(DELIMITERS))
    header = draw(st.booleans())
    extra = draw(st.booleans())  # a free-text column after the task's
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    terminator = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    comments = draw(st.lists(st.sampled_from(COMMENTS), max_size=3))
    text = free_text_cr if terminator == "\r" else free_text
    buffer = io.StringIO()
    buffer.write("".join(line + terminator for line in comments))
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator=terminator)
    if header:
        writer.writerow([*IRIS.columns, *(["notes"] if extra else [])])
    for row in draw(st.lists(one_row, min_size=1, max_size=15)):
        fields = [*row, *([draw(text)] if extra else [])]
        shape = draw(st.sampled_from(["as is"] * 6 + ["longer", "shorter"]))
        if shape == "longer":
            fields.append("surplus")
        elif shape == "shorter":
            fields = fields[:-2]
        writer.writerow(fields)
        if draw(st.integers(0, 9)) == 0:
            buffer.write(terminator)  # a blank line
    return buffer.getvalue(), delimiter, len(comments)


def independent_count(text: str, delimiter: str) -> int:
    """Records (non-empty rows) by Python's csv module: the oracle for rows_in."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return sum(1 for row in reader if row)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(generated=delimited_texts())
def test_every_record_of_any_delimited_text_is_accounted_for(tmp_path_factory, generated):
    from mlops_assets.errors import ContributionUnreadableError

    text, delimiter, comments = generated
    folder = tmp_path_factory.mktemp("dialects")
    path = folder / "c.csv"
    path.write_text(text, newline="")
    try:
        report = intake_contribution(
            path,
            IRIS,
            reference=REFERENCE,
            contribution_id="p",
            contributor="h",
            policy=IntakePolicy(min_quality=0, min_valid_share=0),
            output_dir=folder / "out",
        )
    except ContributionUnreadableError as exc:  # refused with a reason, never a crash
        assert exc.hint
        return
    header = 0 if report.header.startswith("absent") else 1
    # Each comment line is one row to the csv module, and a line the intake skips.
    records = independent_count(text, delimiter) - header - comments
    assert report.rows_in == report.records_in_file == records
    assert len(report.skipped_lines) == comments
    assert report.rows_in == report.rows_clean + report.rows_rejected
    clean = pd.read_parquet(folder / "out" / "clean.parquet")
    rejected = pd.read_parquet(folder / "out" / "rejected.parquet")
    assert sorted([*clean["row_index"], *rejected["row_index"]]) == list(range(report.rows_in))
