"""Intake of contributed files: every format, every bad input, nothing lost."""

import gzip
import io
import json
import zipfile

import pandas as pd
import pytest

from mlops_assets.core.data.reference_data import load_reference_data
from mlops_assets.core.intake.columns import map_columns, normalise_column_name
from mlops_assets.core.intake.intake import intake_contribution
from mlops_assets.core.intake.pii import luhn_valid
from mlops_assets.core.intake.processing import process_contribution
from mlops_assets.core.intake.readers import detect_format
from mlops_assets.core.intake.report import IntakePolicy, quality_score
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV, VALID_CONTRIBUTION, catalog_at

REFERENCE = load_reference_data(IRIS_CSV, IRIS).frame
ROWS = pd.read_csv(io.StringIO(VALID_CONTRIBUTION)).drop(columns=["email"])


def intake(path, tmp_path, **policy):
    """Run the intake; return its report and the clean and rejected rows it wrote."""
    out = tmp_path / "out"
    report = intake_contribution(
        path,
        IRIS,
        reference=REFERENCE,
        contribution_id="c1",
        contributor="alice",
        policy=IntakePolicy(**policy),
        output_dir=out,
    )
    clean, rejected = (
        pd.read_parquet(out / "clean.parquet"),
        pd.read_parquet(out / "rejected.parquet"),
    )
    assert report.rows_in == report.rows_clean + report.rows_rejected == len(clean) + len(rejected)
    return report, clean, rejected


def write(tmp_path, name: str, content: bytes | str):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


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


def gzipped(text: str) -> bytes:
    return gzip.compress(text.encode())


def zipped(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


FORMATS = {
    "batch.csv": VALID_CONTRIBUTION,
    "batch.tsv": ROWS.to_csv(sep="\t", index=False),
    "batch.json": ROWS.to_json(orient="records"),
    "batch.jsonl": ROWS.to_json(orient="records", lines=True),
    "batch.parquet": parquet_bytes(ROWS.astype(str)),
    "batch.csv.gz": gzipped(VALID_CONTRIBUTION),
    "batch.jsonl.gz": gzipped(ROWS.to_json(orient="records", lines=True)),
    "batch.zip": zipped("inner/batch.csv", VALID_CONTRIBUTION),
    "bom.csv": b"\xef\xbb\xbf" + VALID_CONTRIBUTION.encode(),
}


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_gives_the_same_clean_rows(tmp_path, name):
    report, clean, rejected = intake(write(tmp_path, name, FORMATS[name]), tmp_path)
    assert report.accepted, report.decision
    assert report.rows_clean == 4 and rejected.empty
    assert clean["species"].tolist() == ["setosa", "versicolor", "virginica", "versicolor"]
    assert clean["sepal_length"].tolist() == [5.05, 6.1, 6.9, 5.5]
    assert clean["row_index"].tolist() == [0, 1, 2, 3]


def test_pii_columns_are_reported_and_never_kept(tmp_path):
    text = (
        "sepal_length,sepal_width,petal_length,petal_width,species,notes,comment,contact\n"
        "6.1,2.9,4.6,1.3,versicolor,4111 1111 1111 1111,seen at 12 Main Street,x\n"
        "6.05,2.75,4.55,1.55,versicolor,ok,from 10.1.2.3,+44 20 7946 0958\n"
        "abc,2.9,4.5,1.5,versicolor,fine,Dr. Jane Smith,bob@example.com\n"
    )
    report, clean, rejected = intake(write(tmp_path, "pii.csv", text), tmp_path)
    assert report.pii_found == {
        "credit_card": 1,
        "street_address": 1,
        "ip_address": 1,
        "person_name": 1,
        "phone": 1,
        "email": 1,
    }
    assert sorted(report.pii_columns) == ["comment", "contact", "notes"]
    for frame in (clean, rejected):
        assert not {"notes", "comment", "contact"} & set(frame.columns)
    assert rejected["sepal_length"].tolist() == ["abc"]  # original values of kept columns stay


def test_measurements_are_not_mistaken_for_personal_data(tmp_path):
    text = ROWS.assign(notes="petals 1.5 cm wide, picked 2024-05-01").to_csv(index=False)
    report, _, _ = intake(write(tmp_path, "plain.csv", text), tmp_path)
    assert report.pii_found == {}
    assert luhn_valid("4111 1111 1111 1111") and not luhn_valid("4111 1111 1111 1112")


def test_duplicates_reference_copies_and_outliers(tmp_path):
    benchmark_copies = REFERENCE.head(3).to_csv(index=False, header=False)
    text = (
        "sepal_length,sepal_width,petal_length,petal_width,species\n"
        "6.15,2.75,4.65,1.35,versicolor\n"
        "6.15,2.75,4.65,1.35,versicolor\n"
        "7.9,3.0,1.4,0.2,setosa\n" + benchmark_copies
    )
    report, clean, _rejected = intake(write(tmp_path, "d.csv", text), tmp_path, min_quality=0)
    assert report.rejection_reasons == {"duplicate_in_contribution": 1, "duplicate_of_reference": 3}
    assert report.outliers == 1 and clean["outlier"].tolist() == [False, True]

    strict, clean, _ = intake(
        write(tmp_path, "d.csv", text), tmp_path, keep_outliers=False, min_quality=0
    )
    assert strict.rejection_reasons["outlier"] == 1 and len(clean) == 1


BAD_FILES = {
    "empty.csv": (b"", "unreadable", "empty"),
    "header.csv": (",".join(IRIS.columns) + "\n", "rejected", "no data rows"),
    "garbage.csv": (bytes(range(256)) * 8, "unreadable", r"byte 128 \(line 2\) is not valid UTF-8"),
    "truncated.csv.gz": (gzipped(VALID_CONTRIBUTION * 50)[:200], "unreadable", "truncated"),
    # UTF-8 and Windows-1252 in one file (two exports joined): no encoding beyond doubt.
    "mixed.csv": (
        "sepal_length,species\n5,s\xe9tosa\n".encode() + b"6,s\xe9tosa\n",
        "unreadable",
        r"mixed.csv: byte 34 \(line 3\) is not valid UTF-8 \(0xE9\)",
    ),
    "nested.json": (
        json.dumps(
            [
                {
                    "sepal_length": {"cm": 5},
                    "sepal_width": [3],
                    "petal_length": 1,
                    "petal_width": 0.2,
                    "species": "setosa",
                }
            ]
        ),
        "rejected",
        "0/1 rows clean",
    ),
    "wrong_types.parquet": (
        parquet_bytes(
            pd.DataFrame(
                {
                    "sepal_length": [True],
                    "sepal_width": [3.0],
                    "petal_length": [1.0],
                    "petal_width": [0.2],
                    "species": [1.5],
                }
            )
        ),
        "rejected",
        "0/1 rows clean",
    ),
    "one_column.csv": ("species\nsetosa\n", "rejected", "missing required column"),
    "data.xlsx": (b"PK\x03\x04", "unreadable", "not a valid Excel workbook"),
    "data.bin": (b"\x00\x01\x02PK", "unreadable", "unknown format"),
    "two.zip": (b"", "unreadable", "zip"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_files_get_a_clear_reason_and_nothing_is_lost(tmp_path, name):
    content, outcome, message = BAD_FILES[name]
    if name == "two.zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("a.csv", VALID_CONTRIBUTION)
            archive.writestr("b.csv", VALID_CONTRIBUTION)
        content = buffer.getvalue()
    path = write(tmp_path, name, content)
    original = path.read_bytes()
    if outcome == "unreadable":
        with pytest.raises(ContributionUnreadableError, match=message) as error:
            intake(path, tmp_path)
        assert error.value.hint
    else:
        report, _, _ = intake(path, tmp_path)
        assert not report.accepted and message in report.decision
    assert path.read_bytes() == original  # the original is never modified


def test_bad_values_are_rejected_row_by_row_with_original_content(tmp_path):
    text = (
        "sepal_length,sepal_width,petal_length,petal_width,species\n"
        "5.05,3.45,1.75,0.25,setosa\n"
        "abc,3.4,1.5,0.2,setosa\n"
        "NaN,3.4,1.5,0.2,setosa\n"
        "inf,3.4,1.5,0.2,setosa\n"
        "-5.0,3.4,1.5,0.2,setosa\n"
        "5000,3.4,1.5,0.2,setosa\n"
        "5.0,3.4,1.5,0.2,rose\n"
    )
    _report, clean, rejected = intake(
        write(tmp_path, "v.csv", text), tmp_path, min_valid_share=0, min_quality=0
    )
    assert rejected["rejection_reasons"].tolist() == [
        "not_numeric:sepal_length",
        "missing_value:sepal_length",
        "non_finite:sepal_length",
        "out_of_range:sepal_length",
        "out_of_range:sepal_length",
        "unknown_label",
    ]
    assert rejected["sepal_length"].tolist() == ["abc", "NaN", "inf", "-5.0", "5000", "5.0"]
    assert rejected["row_index"].tolist() == [1, 2, 3, 4, 5, 6] and len(clean) == 1


def test_all_duplicate_file_is_rejected(tmp_path):
    text = (
        "sepal_length,sepal_width,petal_length,petal_width,species\n"
        + "6.15,2.75,4.65,1.35,versicolor\n" * 10
    )
    report, clean, _ = intake(write(tmp_path, "dups.csv", text), tmp_path)
    assert len(clean) == 1 and report.rejection_reasons == {"duplicate_in_contribution": 9}
    assert not report.accepted and "must be clean" in report.decision


def test_flags_written_in_slices_give_the_same_outcome(tmp_path, monkeypatch):
    import mlops_assets.core.intake.intake as contributions

    lines = [f"{5 + i / 10:.1f},3.0,1.4,0.75,setosa\n" for i in range(12)]
    text = "sepal_length,sepal_width,petal_length,petal_width,species\n" + "".join(lines * 3)
    path = write(tmp_path, "repeats.csv", text)
    whole, whole_clean, whole_rejected = intake(path, tmp_path, min_quality=0)
    monkeypatch.setattr(contributions, "UPDATE_BATCH_ROWS", 2)  # 24 flagged rows: 12 slices
    sliced, sliced_clean, sliced_rejected = intake(path, tmp_path, min_quality=0)
    assert whole.rejection_reasons == sliced.rejection_reasons == {"duplicate_in_contribution": 24}
    assert sliced_clean["row_index"].tolist() == list(range(12))
    pd.testing.assert_frame_equal(whole_clean, sliced_clean)
    pd.testing.assert_frame_equal(whole_rejected, sliced_rejected)


def test_a_huge_single_line_is_read_and_a_gigantic_one_refused(tmp_path):
    text = "sepal_length,sepal_width,petal_length,petal_width,species,notes\n"
    text += "6.15,2.75,4.65,1.35,versicolor," + "x" * 2_000_000 + "\n"
    report, clean, _ = intake(write(tmp_path, "long.csv", text), tmp_path)
    assert report.rows_clean == 1 and "notes" not in clean.columns
    too_long = text.replace("x" * 2_000_000, "x" * 10_000_000)
    with pytest.raises(ContributionUnreadableError, match="longer than 8 MB"):
        intake(write(tmp_path, "longer.csv", too_long), tmp_path)


def test_quality_score_rewards_clean_balanced_data(tmp_path):
    balanced, _, _ = intake(write(tmp_path, "b.csv", FORMATS["batch.csv"]), tmp_path)
    assert 90 <= balanced.quality_score <= 100
    single = balanced.__class__(**{**balanced.to_dict(), "class_counts": {"setosa": 4}})
    assert quality_score(single, n_classes=3) < balanced.quality_score


def test_resubmitted_bytes_are_recognised_and_outputs_swap_in_whole(tmp_path):
    root = tmp_path / "contributions"
    first = write(tmp_path, "a.csv", VALID_CONTRIBUTION)
    again = write(tmp_path, "renamed.csv", VALID_CONTRIBUTION)
    arguments = {
        "reference": REFERENCE,
        "contributions_root": root,
        "policy": IntakePolicy(),
        "records": catalog_at(tmp_path, IRIS),
    }
    one = process_contribution(
        first, IRIS, contribution_id="a", contributor="x", landing_path="x/a.csv", **arguments
    )
    two = process_contribution(
        again, IRIS, contribution_id="b", contributor="y", landing_path="y/renamed.csv", **arguments
    )
    assert one.accepted and not two.accepted and two.duplicate_of == "a"
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]  # no staging left behind
    assert json.loads((root / "b" / "report.json").read_text())["duplicate_of"] == "a"
    # Re-running a contribution replaces its outputs and keeps recognising itself as the original.
    assert process_contribution(
        first, IRIS, contribution_id="a", contributor="x", landing_path="x/a.csv", **arguments
    ).accepted


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.csv", ("csv", None)), ("a.JSONL.GZ", ("jsonl", "gzip")), ("a.zip", ("zip", "zip"))],
)
def test_formats_are_detected_from_names(name, expected):
    assert detect_format(name) == expected


def test_rows_already_contributed_are_rejected_across_contributions(tmp_path):
    root = tmp_path / "contributions"
    arguments = {
        "reference": REFERENCE,
        "contributions_root": root,
        "policy": IntakePolicy(),
        "records": catalog_at(tmp_path, IRIS),
    }
    first = write(tmp_path, "first.csv", VALID_CONTRIBUTION)
    assert process_contribution(
        first, IRIS, contribution_id="a", contributor="x", landing_path="x/a", **arguments
    ).accepted
    overlapping = VALID_CONTRIBUTION + "7.05,3.15,5.95,2.05,virginica,z@example.com\n"
    second = write(tmp_path, "second.csv", overlapping)
    report = process_contribution(
        second, IRIS, contribution_id="b", contributor="y", landing_path="y/b", **arguments
    )
    assert report.rejection_reasons == {"duplicate_of_contribution": 4}
    assert report.rows_clean == 1


def test_drift_from_the_reference_lowers_the_quality_score(tmp_path):
    near, _, _ = intake(write(tmp_path, "near.csv", VALID_CONTRIBUTION), tmp_path)
    shifted_rows = ROWS.copy()
    measurements = shifted_rows.columns[:4]  # the original, unmapped column names
    shifted_rows[measurements] = shifted_rows[measurements] * 1.6
    far, _, _ = intake(
        write(tmp_path, "far.csv", shifted_rows.to_csv(index=False)), tmp_path, min_quality=0
    )
    assert near.drift < 0.5 < far.drift
    assert far.quality_score < near.quality_score


def test_a_file_with_its_own_row_index_column_keeps_it_apart(tmp_path):
    text = "row_index," + VALID_CONTRIBUTION.replace("\n", "\n9,").rstrip("9,")
    report, clean, _ = intake(write(tmp_path, "ri.csv", text), tmp_path)
    assert report.rows_clean == 4 and clean["row_index"].tolist() == [0, 1, 2, 3]
    assert "row_index_in_file" in report.dropped_columns


def test_a_task_column_that_is_not_snake_case_is_matched_under_any_spelling():
    from mlops_assets.task import Feature, TaskSchema

    wine = TaskSchema(
        name="wine",
        features=(Feature("od280/od315_of_diluted_wines", 1.0, 4.0), Feature("alcohol", 8, 16)),
        label="class",
        classes=("class_0", "class_1", "class_2"),
    )
    spellings = ["OD280/OD315 of diluted wines", "od280_od315_of_diluted_wines", "Alcohol"]
    assert map_columns([*spellings[:1], spellings[2], "class"], wine) == {
        "OD280/OD315 of diluted wines": "od280/od315_of_diluted_wines",
        "Alcohol": "alcohol",
        "class": "class",
    }
    assert map_columns([spellings[1]], wine) == {spellings[1]: "od280/od315_of_diluted_wines"}


def test_a_missing_value_is_told_apart_in_a_file_whose_columns_come_in_another_order(tmp_path):
    """R's write.csv of a frame with the label first: an empty cell is a missing value of the
    column it sits in, whatever the order of the columns."""
    path = write(
        tmp_path,
        "reordered.csv",
        "species,petal_width,sepal_length,sepal_width,petal_length\n"
        "setosa,0.2,,3.5,1.4\n"
        "versicolor,1.3,6.1,,4.6\n"
        "virginica,2.2,6.9,3.2,5.8\n",
    )
    _, clean, rejected = intake(path, tmp_path)
    assert rejected["rejection_reasons"].tolist() == [
        "missing_value:sepal_length",
        "missing_value:sepal_width",
    ]
    assert clean["species"].tolist() == ["virginica"]
