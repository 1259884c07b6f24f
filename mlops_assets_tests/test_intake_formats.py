"""Workbooks, JSON in every layout pandas writes, JSON Lines and Arrow IPC, each written by the
tool that writes it (openpyxl, xlsxwriter, odfpy through pandas, xlwt, pandas, polars,
pyarrow), with the exact rows read, the verdict, the reasons and how the file was read."""

import datetime
import io
import json
import zipfile

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from mlops_assets.core.data.reference_data import load_reference_data
from mlops_assets.core.intake.intake import intake_contribution
from mlops_assets.core.intake.limits import IntakeLimits
from mlops_assets.core.intake.report import IntakePolicy
from mlops_assets.errors import ContributionTooLargeError, ContributionUnreadableError
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV, iris_like

REFERENCE = load_reference_data(IRIS_CSV, IRIS).frame
# Words of DuckDB's, polars' or Python's that a contributor cannot act on.
LIBRARY_WORDS = ("Try setting", "format=", "LINE 1", "read_json", "read_csv", "SELECT", "^^^")


def flowers(n: int, *, step: int = 3) -> pd.DataFrame:
    """``n`` new, valid rows of all three species (flowers like iris', none of them iris')."""
    return iris_like(n, step=step)


def intake(tmp_path, name, content, **limits):
    path = tmp_path / name
    if isinstance(content, str | bytes):
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    else:
        content(path)  # a writer of the tool that makes the file
    out = tmp_path / f"out-{name}"
    report = intake_contribution(
        path,
        IRIS,
        reference=REFERENCE,
        contribution_id="c",
        contributor="alice",
        policy=IntakePolicy(),
        output_dir=out,
        limits=IntakeLimits(**limits),
    )
    clean = pd.read_parquet(out / "clean.parquet")
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert report.rows_in == report.records_in_file == len(clean) + len(rejected)
    return report, clean, rejected


def refused(tmp_path, name, content, match):
    with pytest.raises(ContributionUnreadableError, match=match) as error:
        intake(tmp_path, name, content)
    text = f"{error.value.message} {error.value.hint}"
    assert not [w for w in LIBRARY_WORDS if w in text], text
    return error.value


# --- workbooks ----------------------------------------------------------------------------


def openpyxl_workbook(sheets: dict[str, list[list]]):
    def write(path):
        from openpyxl import Workbook

        workbook = Workbook()
        workbook.remove(workbook.active)
        for title, rows in sheets.items():
            sheet = workbook.create_sheet(title)
            for row in rows:
                sheet.append(row)
        workbook.save(path)

    return write


def table_rows(frame: pd.DataFrame) -> list[list]:
    return [list(frame.columns), *frame.itertuples(index=False, name=None)]


def test_an_excel_workbook_of_one_sheet_is_read_as_a_table(tmp_path):
    frame = flowers(40)
    report, clean, _ = intake(tmp_path, "one.xlsx", lambda p: frame.to_excel(p, index=False))
    assert (report.rows_in, report.rows_clean, report.accepted) == (40, 40, True)
    assert (report.reader, report.header) == ("Excel workbook", "row 1 of sheet Sheet1")
    assert report.encoding == "unicode (workbook cells)" and report.other_sheets == []
    assert clean["petal_length"].tolist() == frame["petal_length"].tolist()


def test_a_title_block_above_the_header_row_is_found_and_reported(tmp_path):
    title = [["Iris-Messungen Gewächshaus B"], ["Mai 2024", None, "Labor 3"]]
    rows = [*title, *table_rows(flowers(30))]
    workbook = openpyxl_workbook({"Messungen": rows})
    report, _, _ = intake(tmp_path, "titled.xlsx", workbook)
    assert report.header == "row 3 of sheet Messungen" and report.rows_clean == 30
    assert report.skipped_lines == [
        {"position": "row 1", "text": "Iris-Messungen Gewächshaus B"},
        {"position": "row 2", "text": "Mai 2024, Labor 3"},
    ]


def test_the_first_sheet_holding_the_tasks_columns_is_read_and_the_others_listed(tmp_path):
    workbook = openpyxl_workbook(
        {
            "Read me": [["How these flowers were measured"], ["calipers, 0.1 mm"]],
            "Data": table_rows(flowers(30)),
            "Plots": [["nothing", "here"]],
        }
    )
    report, _, _ = intake(tmp_path, "sheets.xlsx", workbook)
    assert report.header == "row 1 of sheet Data" and report.rows_clean == 30
    assert report.other_sheets == ["Read me", "Plots"]


def test_formulas_are_read_as_their_saved_values_and_dates_as_dates(tmp_path):
    """xlsxwriter writes a formula with the value a spreadsheet program would save with it."""
    frame = flowers(20)

    def write(path):
        import xlsxwriter

        with xlsxwriter.Workbook(str(path)) as workbook:
            sheet = workbook.add_worksheet("Data")
            dates = workbook.add_format({"num_format": "dd.mm.yyyy"})
            sheet.write_row(0, 0, [*IRIS.columns, "measured"])
            for i, row in enumerate(frame.itertuples(index=False), start=1):
                sheet.write_row(i, 0, row[:2])
                # petal length as a formula of the two sepal cells, saving the right value
                sheet.write_formula(i, 2, f"=A{i + 1}-A{i + 1}+{row[2]}", None, row[2])
                sheet.write_row(i, 3, row[3:])
                sheet.write_datetime(i, 5, datetime.datetime(2024, 5, i), dates)

    report, clean, _ = intake(tmp_path, "formulas.xlsx", write)
    assert report.rows_clean == 20 and report.dropped_columns == ["measured"]
    assert clean["petal_length"].tolist() == frame["petal_length"].tolist()


@pytest.mark.parametrize("suffix", [".ods", ".xls"])
def test_libreoffice_and_old_excel_workbooks_are_read_too(tmp_path, suffix):
    frame = flowers(30)

    def write(path):
        if suffix == ".ods":
            frame.to_excel(path, index=False, engine="odf", sheet_name="Blumen")
            return
        import xlwt

        workbook = xlwt.Workbook()
        sheet = workbook.add_sheet("Blumen")
        for r, row in enumerate(table_rows(frame)):
            for c, value in enumerate(row):
                sheet.write(r, c, value)
        workbook.save(str(path))

    report, clean, _ = intake(tmp_path, f"flowers{suffix}", write)
    assert report.rows_clean == 30 and report.header == "row 1 of sheet Blumen"
    assert clean["sepal_width"].tolist() == frame["sepal_width"].tolist()


def test_an_excel_workbook_saved_under_a_csv_name_is_read_as_what_it_is(tmp_path):
    report, _, _ = intake(tmp_path, "export.csv", lambda p: flowers(20).to_excel(p, index=False))
    assert report.reader == "Excel workbook (by its content; the name says .csv)"
    assert report.rows_clean == 20


def test_a_workbook_without_the_tasks_columns_says_so(tmp_path):
    workbook = openpyxl_workbook({"A": [["colour", "size"], ["red", 3]], "B": [["x"]]})
    error = refused(tmp_path, "other.xlsx", workbook, "none of whose sheets")
    assert "(A, B)" in error.message and "sepal_length" in error.hint


def test_a_workbook_is_decompressed_under_the_zip_limits(tmp_path):
    path = tmp_path / "big.xlsx"
    flowers(40).to_excel(path, index=False)
    with pytest.raises(ContributionTooLargeError, match=r"when decompressed|expand"):
        intake(tmp_path, "big.xlsx", path.read_bytes(), max_bytes=20_000)


def test_a_damaged_workbook_is_named_as_a_damaged_workbook(tmp_path):
    buffer = io.BytesIO()
    flowers(5).to_excel(buffer, index=False)
    refused(tmp_path, "cut.xlsx", buffer.getvalue()[:2000], "not a valid Excel workbook")


# --- JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orient", "header"),
    [
        ("records", "record keys"),
        ("columns", "the top-level keys"),
        ("index", "the keys of each row"),
        ("split", "its 'columns' list"),
        ("table", "the schema's fields"),
        ("values", "absent, positional"),
    ],
)
def test_every_json_layout_pandas_writes_is_read(tmp_path, orient, header):
    frame = flowers(45)
    report, clean, _ = intake(tmp_path, f"{orient}.json", frame.to_json(orient=orient))
    assert (report.rows_in, report.rows_clean, report.accepted) == (45, 45, True)
    assert report.header == header and report.reader.startswith("JSON")
    assert clean["species"].tolist() == frame["species"].tolist()
    assert clean["sepal_length"].tolist() == frame["sepal_length"].tolist()


def test_pandas_default_to_json_names_its_layout(tmp_path):
    report, _, _ = intake(tmp_path, "default.json", flowers(10).to_json())
    assert report.reader == "JSON (columns (pandas orient='columns'))"


def test_an_object_wrapping_one_array_of_records_is_read(tmp_path):
    records = json.loads(flowers(30).to_json(orient="records"))
    text = json.dumps({"meta": {"source": "lab B", "units": "cm"}, "flowers": records})
    report, _, _ = intake(tmp_path, "wrapped.json", text)
    assert report.rows_clean == 30 and report.reader == "JSON (records under key 'flowers')"


def test_polars_json_and_ndjson_are_read(tmp_path):
    frame = pl.from_pandas(flowers(30))
    report, _, _ = intake(tmp_path, "polars.json", lambda p: frame.write_json(p))
    assert report.rows_clean == 30 and report.reader == "JSON (records)"
    report, _, _ = intake(tmp_path, "polars.ndjson", lambda p: frame.write_ndjson(p))
    assert report.rows_clean == 30 and report.reader == "JSON Lines"


def test_json_lines_quarantine_a_damaged_line_with_its_true_line_number(tmp_path):
    lines = flowers(121, step=1).to_json(orient="records", lines=True).splitlines()
    lines[60] = lines[60][:25]  # line 61 cut off mid-record
    report, clean, rejected = intake(tmp_path, "damaged.jsonl", "\n".join(lines) + "\n")
    assert (report.rows_in, report.rows_clean) == (121, 120)
    assert report.rejection_reasons == {"malformed_row": 1} and report.accepted
    bad = rejected.iloc[0]
    assert (bad["row_index"], bad["line_number"], bad["original_text"]) == (60, 61, lines[60])
    assert clean["row_index"].tolist() == [i for i in range(121) if i != 60]


def test_json_lines_blank_lines_and_a_non_object_line_are_placed_exactly(tmp_path):
    lines = flowers(10, step=1).to_json(orient="records", lines=True).splitlines()
    text = "\n".join([*lines[:3], "", "[1, 2, 3]", *lines[3:], ""]) + "\n"
    report, _, rejected = intake(tmp_path, "odd.jsonl", text)
    assert (report.rows_in, report.rows_clean) == (11, 10)
    bad = rejected.iloc[0]
    assert (bad["row_index"], bad["line_number"]) == (3, 5)


def test_json_lines_mostly_damaged_are_refused_naming_the_first_lines(tmp_path):
    lines = flowers(10, step=1).to_json(orient="records", lines=True).splitlines()
    text = "\n".join(line[:-1] if i % 3 else line for i, line in enumerate(lines)) + "\n"
    error = refused(tmp_path, "bad.jsonl", text, "6 of 10 lines are not JSON objects")
    assert "line 2: not valid JSON" in error.message


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("cut.json", '[{"sepal_length": 5.1, "species": "set', "not valid JSON"),
        ("cut_columns.json", '{"sepal_length": {"0": 5.1', "line 1, column 27"),
        ("scalar.json", "42", "not a table"),
        ("nested.json", '{"a": [1, 2], "b": [3]}', "not a table"),
    ],
)
def test_bad_json_is_refused_in_the_contributors_words(tmp_path, name, content, match):
    refused(tmp_path, name, content, match)


# --- Arrow IPC / Feather --------------------------------------------------------------------


@pytest.mark.parametrize(
    "writer",
    ["pyarrow feather", "pandas to_feather", "polars write_ipc", "pyarrow ipc stream"],
)
def test_arrow_ipc_and_feather_are_read_like_parquet(tmp_path, writer):
    frame = flowers(30)

    def write(path):
        if writer == "pyarrow feather":
            feather.write_feather(pa.Table.from_pandas(frame), path)
        elif writer == "pandas to_feather":
            frame.assign(species=frame["species"].astype("category")).to_feather(path)
        elif writer == "polars write_ipc":
            pl.from_pandas(frame).write_ipc(path)
        else:
            table = pa.Table.from_pandas(frame)
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
                w.write_table(table)

    name = "flowers.arrows" if "stream" in writer else "flowers.feather"
    report, clean, _ = intake(tmp_path, name, write)
    assert (report.rows_in, report.rows_clean) == (30, 30)
    assert report.reader == "Arrow IPC (Feather)" and report.header == "the file's schema"
    assert clean["species"].tolist() == frame["species"].tolist()


def test_a_truncated_parquet_file_is_refused_without_library_words(tmp_path):
    buffer = io.BytesIO()
    flowers(30).to_parquet(buffer)
    refused(tmp_path, "cut.parquet", buffer.getvalue()[:-40], "cannot be read")


def test_a_zip_holding_a_workbook_is_read(tmp_path):
    buffer, archive_buffer = io.BytesIO(), io.BytesIO()
    flowers(20).to_excel(buffer, index=False)
    with zipfile.ZipFile(archive_buffer, "w") as archive:
        archive.writestr("flowers.xlsx", buffer.getvalue())
    report, _, _ = intake(tmp_path, "flowers.zip", archive_buffer.getvalue())
    assert report.rows_clean == 20 and report.reader == "Excel workbook"
