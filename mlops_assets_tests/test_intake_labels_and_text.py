"""Labels never guessed from integer codes, and text files as Windows Excel, old Macs, lab
instruments and LibreOffice write them: each file built the way its tool writes it, with the
exact rows read, the verdict and the reasons."""

import csv
import dataclasses

import pandas as pd
import pytest

from mlops_assets.core.data.reference_data import load_reference_data
from mlops_assets.core.intake.intake import intake_contribution
from mlops_assets.core.intake.report import IntakePolicy
from mlops_assets.errors import ContributionUnreadableError
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV, iris_like

REFERENCE = load_reference_data(IRIS_CSV, IRIS).frame
R_NAMES = ["Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width", "Species"]
NO_CODES = dataclasses.replace(IRIS, class_codes={})


def flowers(n: int, *, start: int = 0, step: int = 1) -> pd.DataFrame:
    """``n`` new, valid rows (flowers like iris', none of them iris'), every ``step``-th from
    ``start``."""
    return iris_like(n, start=start, step=step)


def intake(tmp_path, name, content, *, task=IRIS, **policy):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    out = tmp_path / f"out-{name}"
    report = intake_contribution(
        path,
        task,
        reference=REFERENCE,
        contribution_id="c",
        contributor="alice",
        policy=IntakePolicy(**policy),
        output_dir=out,
    )
    clean = pd.read_parquet(out / "clean.parquet")
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert report.rows_in == report.records_in_file == len(clean) + len(rejected)
    return report, clean, rejected


def r_write_csv(frame: pd.DataFrame) -> str:
    """R's write.csv(x): quoted header and strings, a quoted row-name column, numbers bare."""
    lines = [",".join(['""', *(f'"{c}"' for c in frame.columns)])]
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        values = [f'"{v}"' if isinstance(v, str) else str(v) for v in row]
        lines.append(",".join([f'"{i}"', *values]))
    return "\n".join(lines) + "\n"


def r_factor_codes(frame: pd.DataFrame) -> pd.DataFrame:
    """``transform(iris, Species = as.integer(Species))``: a factor's codes, from 1, over its
    levels in alphabetical order."""
    levels = sorted(IRIS.classes)
    return frame.set_axis(R_NAMES, axis=1).assign(
        Species=[levels.index(s) + 1 for s in frame["species"]]
    )


# --- labels ------------------------------------------------------------------------------


def test_r_factor_codes_are_never_read_as_other_classes(tmp_path):
    """The R file of the issue: codes 1-3 for setosa, versicolor, virginica. Read as the
    task's codes 0-2 they would turn setosa into versicolor: every row is unknown_label."""
    text = r_write_csv(r_factor_codes(flowers(41, step=3)))
    report, _clean, rejected = intake(tmp_path, "r_codes.csv", text)
    assert (report.rows_in, report.rows_clean, report.accepted) == (41, 0, False)
    assert report.rejection_reasons == {"unknown_label": 41}
    assert set(rejected["Species"]) == {"1", "2", "3"}  # the original values, kept
    [hint] = report.hints
    assert "3 is no code of the task's (0 = setosa" in hint and "count from 1" in hint
    assert "Write the class names (setosa, versicolor, virginica)" in hint


def test_r_codes_of_two_classes_could_be_either_base_and_are_refused(tmp_path):
    """Setosa and versicolor from R are 1 and 2, which are also the task's own codes of
    versicolor and virginica: which is meant cannot be known."""
    two = flowers(40, step=2).query("species != 'virginica'").reset_index(drop=True)
    report, _clean, _ = intake(tmp_path, "r_two.csv", r_write_csv(r_factor_codes(two)))
    assert report.rows_clean == 0 and report.rejection_reasons == {"unknown_label": len(two)}
    assert "counted from 1" in report.hints[0]


def test_pandas_category_codes_are_the_iris_tasks_declared_codes(tmp_path):
    frame = flowers(45, step=3)
    coded = frame.assign(species=frame["species"].astype("category").cat.codes)
    report, clean, _ = intake(tmp_path, "codes.csv", coded.to_csv(index=False))
    assert (report.rows_in, report.rows_clean, report.accepted) == (45, 45, True)
    assert clean["species"].tolist() == frame["species"].tolist()  # setosa stays setosa
    assert report.hints == []


def test_codes_are_unknown_labels_for_a_task_that_declares_none(tmp_path):
    frame = flowers(45, step=3)
    coded = frame.assign(species=frame["species"].astype("category").cat.codes)
    report, _, _ = intake(tmp_path, "codes.csv", coded.to_csv(index=False), task=NO_CODES)
    assert report.rows_clean == 0 and report.rejection_reasons == {"unknown_label": 45}
    assert "integer codes (0, 1, 2), which the task declares none of" in report.hints[0]


def test_a_task_with_r_codes_reads_r_files_and_refuses_pandas_codes(tmp_path):
    r_coded = dataclasses.replace(IRIS, class_codes={1: "setosa", 2: "versicolor", 3: "virginica"})
    frame = flowers(45, step=3)
    report, clean, _ = intake(tmp_path, "r.csv", r_write_csv(r_factor_codes(frame)), task=r_coded)
    assert report.rows_clean == 45 and clean["species"].tolist() == frame["species"].tolist()
    pandas_codes = frame.assign(species=frame["species"].astype("category").cat.codes)
    report, _, _ = intake(tmp_path, "p.csv", pandas_codes.to_csv(index=False), task=r_coded)
    assert report.rejection_reasons == {"unknown_label": 45}


# --- encodings, line endings, preambles ---------------------------------------------------


def test_windows_excel_csv_in_a_german_locale_is_read_as_cp1252(tmp_path):
    """Excel's "CSV (Trennzeichen-getrennt)": Windows-1252, semicolons, decimal commas,
    CRLF, an umlaut in a notes column."""
    frame = flowers(40, step=3).assign(Bemerkung=["schön", "Blüte größer", "ok", "—"] * 10)
    content = frame.to_csv(sep=";", decimal=",", index=False, lineterminator="\r\n")
    report, clean, _ = intake(tmp_path, "excel_de.csv", content.encode("cp1252"))
    assert (report.rows_in, report.rows_clean, report.accepted) == (40, 40, True)
    assert report.encoding == "cp1252 (detected)" and report.dialect["decimal"] == "comma"
    assert clean["sepal_length"].tolist() == frame["sepal_length"].tolist()


def test_windows_excel_comma_csv_with_accents_in_the_header_is_read_as_cp1252(tmp_path):
    frame = flowers(30).rename(columns={"species": "Espèce"})
    task = dataclasses.replace(IRIS, label_column_aliases=("espèce",))
    content = frame.to_csv(index=False, lineterminator="\r\n").encode("cp1252")
    report, _clean, _ = intake(tmp_path, "excel.csv", content, task=task)
    assert report.encoding == "cp1252 (detected)" and report.rows_clean == 30
    assert report.column_mapping["Espèce"] == "species"


def test_a_non_utf8_byte_far_into_an_ascii_file_is_read_as_cp1252(tmp_path):
    frame = flowers(60).assign(notes="plain")
    frame.loc[55, "notes"] = "Größe geschätzt"
    report, _, _ = intake(tmp_path, "late.csv", frame.to_csv(index=False).encode("cp1252"))
    assert report.encoding == "cp1252 (detected)" and report.rows_clean == 60


def test_old_mac_cr_only_line_endings_are_read(tmp_path):
    frame = flowers(40)
    report, clean, _ = intake(tmp_path, "mac.csv", frame.to_csv(index=False, lineterminator="\r"))
    assert (report.rows_in, report.rows_clean, report.accepted) == (40, 40, True)
    assert report.dialect["line_endings"] == "CR" and report.header == "line 1"
    assert clean["petal_width"].tolist() == frame["petal_width"].tolist()


def test_an_instruments_comment_block_is_skipped_and_reported_line_by_line(tmp_path):
    preamble = [
        "# Instrument: FlowerScan 3000, firmware 2.1",
        "# Run: 2024-05-01T08:15:00, operator jane.doe@example.org",
        "# Units: cm",
    ]
    text = "\n".join(preamble) + "\n" + flowers(40).to_csv(index=False)
    report, _, _ = intake(tmp_path, "instrument.csv", text)
    assert (report.rows_in, report.rows_clean, report.accepted) == (40, 40, True)
    assert report.header == "line 4" and report.rejection_reasons == {}
    assert [line["position"] for line in report.skipped_lines] == ["line 1", "line 2", "line 3"]
    assert report.skipped_lines[0]["text"] == preamble[0]
    # The operator's address is personal data: masked in the report, never shown.
    assert "jane.doe" not in report.skipped_lines[1]["text"]
    assert "[personal data removed]" in report.skipped_lines[1]["text"]


def test_a_title_block_above_the_header_is_found_by_the_tasks_column_names(tmp_path):
    text = "Iris measurements, greenhouse B\nMay 2024\n\n" + flowers(20).to_csv(index=False)
    report, _clean, _ = intake(tmp_path, "titled.csv", text)
    assert report.header == "line 4" and report.rows_in == 20 and report.rows_clean == 20
    assert [s["text"] for s in report.skipped_lines] == [
        "Iris measurements, greenhouse B",
        "May 2024",
        "",
    ]


def test_a_bad_record_under_a_preamble_is_named_by_its_line_in_the_file(tmp_path):
    lines = flowers(20).to_csv(index=False).splitlines()
    lines[5] += ",surplus"  # the 5th record; line 6 of the CSV, line 8 under two comments
    text = "# exported by LabSheet\n# v2\n" + "\n".join(lines) + "\n"
    report, _, rejected = intake(tmp_path, "c.csv", text)
    assert report.rejection_reasons == {"malformed_row": 1}
    bad = rejected[rejected["rejection_reasons"] == "malformed_row"]
    assert (bad["row_index"].tolist(), bad["line_number"].tolist()) == ([4], [8])


def test_libreoffice_german_quoted_decimal_commas_with_comma_delimiter_are_numbers(tmp_path):
    """LibreOffice (German locale) "Text CSV" with the comma as field delimiter: the numbers
    hold the delimiter, so they are quoted ("5,1")."""
    frame = flowers(40)
    text = frame.to_csv(index=False, decimal=",")
    assert '"5,3"' in text  # the quoted decimal comma LibreOffice writes
    report, clean, _ = intake(tmp_path, "lo.csv", text)
    assert (report.rows_in, report.rows_clean) == (40, 40)
    assert report.dialect == {
        "delimiter": "comma",
        "decimal": "comma",
        "header": "present",
        "line_endings": "LF",
    }
    assert clean["sepal_width"].tolist() == frame["sepal_width"].tolist()


def test_a_nul_byte_in_a_field_is_reported_as_what_it_is(tmp_path):
    frame = flowers(20)
    frame.loc[7, "species"] = "versicolor\x00"
    frame.loc[9, "notes"] = "a\x00b"  # outside the task's columns: nothing to say
    report, _, rejected = intake(tmp_path, "nul.csv", frame.to_csv(index=False))
    assert report.rows_clean == 19 and report.rejection_reasons == {"nul_byte:species": 1}
    assert rejected["row_index"].tolist() == [7]


def test_a_utf16_file_without_bom_is_told_apart_from_text(tmp_path):
    content = flowers(5).to_csv(index=False).encode("utf-16-le")
    with pytest.raises(ContributionUnreadableError, match="full of NUL bytes") as error:
        intake(tmp_path, "u16.csv", content)
    assert "UTF-8" in error.value.hint


def test_r_write_table_quoting_reads_every_record_exactly(tmp_path):
    frame = flowers(30).assign(notes=['a "quoted" word', "x"] * 15)
    text = frame.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r")
    report, _, _ = intake(tmp_path, "q.csv", text)
    assert (report.rows_in, report.rows_clean) == (30, 30)


def test_mlops_check_says_how_the_file_was_read_and_what_to_do(tmp_path, capsys):
    from mlops_assets.cli import main

    path = tmp_path / "r_codes.csv"
    path.write_text("# exported from R 4.4\n" + r_write_csv(r_factor_codes(flowers(12, step=12))))
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "read as delimited text, utf-8, header: line 2, first column is row names" in out
    assert "skipped line 1: # exported from R 4.4" in out
    assert "12 x unknown_label" in out
    assert "hint: the labels are integer codes (1, 2, 3), and 3 is no code" in out
