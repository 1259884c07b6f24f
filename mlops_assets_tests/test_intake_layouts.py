"""Files as real tools write them (R, Excel in other locales, pandas, the UCI repository, `cat`
of two exports, hand edits): every record is accounted for, with the verdict and reasons."""

import codecs
import csv
import gzip
import io

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


def flowers(n: int, *, start: int = 0) -> pd.DataFrame:
    """``n`` new, valid rows: flowers measured like iris's, none of them matching one (or
    another of these) at the task's resolution."""
    return iris_like(n, start=start)


def r_style(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_axis(R_NAMES, axis=1)


def r_write_csv(frame: pd.DataFrame, *, sep: str = ",", dec: str = ".") -> str:
    """R's write.csv (write.csv2 with sep=';', dec=','): quoted strings and header, a
    row-name column headed by an empty string, NA for missing values."""
    lines = [sep.join(['""', *(f'"{c}"' for c in frame.columns)])]
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        values = [
            f'"{v}"' if isinstance(v, str) else "NA" if pd.isna(v) else str(v).replace(".", dec)
            for v in row
        ]
        lines.append(sep.join([f'"{i}"', *values]))
    return "\n".join(lines) + "\n"


def r_write_table_tab(frame: pd.DataFrame) -> str:
    """R's write.table(x, sep="\\t"): the header has no field for the row names."""
    lines = ["\t".join(f'"{c}"' for c in frame.columns)]
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        values = [f'"{v}"' if isinstance(v, str) else str(v) for v in row]
        lines.append("\t".join([f'"{i}"', *values]))
    return "\n".join(lines) + "\n"


def excel_european(frame: pd.DataFrame) -> bytes:
    """Excel's "CSV UTF-8" in a German or French locale: BOM, semicolons, decimal commas, CRLF."""
    text = frame.to_csv(sep=";", decimal=",", index=False, lineterminator="\r\n")
    return codecs.BOM_UTF8 + text.encode()


def excel_unicode_text(frame: pd.DataFrame) -> bytes:
    """Excel's "Unicode Text": UTF-16 little-endian with a BOM, tab-separated, CRLF."""
    text = frame.to_csv(sep="\t", index=False, lineterminator="\r\n")
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


def intake(tmp_path, name: str, content: str | bytes, **policy):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    out = tmp_path / "out"
    report = intake_contribution(
        path,
        IRIS,
        reference=REFERENCE,
        contribution_id="c",
        contributor="alice",
        policy=IntakePolicy(**policy),
        output_dir=out,
    )
    clean = pd.read_parquet(out / "clean.parquet")
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert report.rows_in == report.records_in_file
    assert report.rows_in == report.rows_clean + report.rows_rejected == len(clean) + len(rejected)
    assert sorted([*clean["row_index"], *rejected["row_index"]]) == list(range(report.rows_in))
    return report, clean, rejected


EXPORTS = {
    "r_write_csv.csv": (r_write_csv(r_style(flowers(40))), "comma", "point", "row names"),
    "r_write_csv2.csv": (
        r_write_csv(r_style(flowers(40)), sep=";", dec=","),
        "semicolon",
        "comma",
        "row names",
    ),
    "r_write_table.txt": (r_write_table_tab(r_style(flowers(40))), "tab", "point", "row names"),
    "excel_de.csv": (excel_european(flowers(40)), "semicolon", "comma", "present"),
    "excel_unicode.txt": (excel_unicode_text(flowers(40)), "tab", "point", "present"),
    "pandas_index.csv": (flowers(40).to_csv(), "comma", "point", "row names"),
    "pipes.csv": (flowers(40).to_csv(sep="|", index=False), "pipe", "point", "present"),
    "semicolons_point.csv": (flowers(40).to_csv(sep=";", index=False), "semicolon", "point", ""),
    "r_default.txt": (
        flowers(40).to_csv(sep=" ", index=False, quoting=csv.QUOTE_NONNUMERIC),
        "space",
        "point",
        "present",
    ),
    "crlf_quoted.csv": (
        flowers(40).to_csv(index=False, quoting=csv.QUOTE_ALL, lineterminator="\r\n"),
        "comma",
        "point",
        "present",
    ),
}


@pytest.mark.parametrize("name", EXPORTS)
def test_exports_of_real_tools_are_read_whole(tmp_path, name):
    content, delimiter, decimal, header = EXPORTS[name]
    report, clean, rejected = intake(tmp_path, name, content)
    assert report.accepted, report.decision
    assert (report.rows_in, report.rows_clean, len(rejected)) == (40, 40, 0)
    assert report.dialect["delimiter"] == delimiter and report.dialect["decimal"] == decimal
    assert header in report.dialect["header"] and report.header.startswith("line 1")
    assert (report.reader, report.skipped_lines) == ("delimited text", [])
    expected = flowers(40)
    assert clean["sepal_length"].tolist() == expected["sepal_length"].tolist()
    assert clean["species"].tolist() == expected["species"].tolist()


def test_two_exports_joined_by_cat_with_other_columns_name_the_second_header(tmp_path):
    first = flowers(60).to_csv(index=False)
    second = flowers(60, start=60).assign(notes="ok").to_csv(index=False)
    with pytest.raises(ContributionUnreadableError) as error:
        intake(tmp_path, "joined.csv", first + second)
    assert "61 of 121 records cannot be split into the header's 5 fields" in error.value.message
    assert "line 62: 6 fields where the header has 5" in error.value.message
    assert "line 62 is a second header" in error.value.hint


def test_two_exports_joined_by_cat_with_the_same_columns_lose_only_the_second_header(tmp_path):
    first = flowers(60).to_csv(index=False)
    second = flowers(60, start=60).to_csv(index=False)
    report, _clean, rejected = intake(tmp_path, "joined.csv", first + second)
    assert report.accepted and report.rows_in == 121 and report.rows_clean == 120
    assert report.rejection_reasons == {"malformed_row": 1}
    assert rejected["row_index"].tolist() == [60]
    assert rejected["species"].tolist() == ["species"]  # the header line, kept as it was


def test_a_ragged_row_in_the_middle_is_quarantined_with_its_line_and_text(tmp_path):
    lines = flowers(30).to_csv(index=False).splitlines()
    lines[11] += ",surplus"  # line 12 of the file, the 11th record
    lines[20] = lines[20].rsplit(",", 2)[0]  # two fields short
    report, clean, rejected = intake(tmp_path, "ragged.csv", "\n".join(lines) + "\n")
    assert report.accepted and (report.rows_in, report.rows_clean) == (30, 28)
    assert report.rejection_reasons == {"malformed_row": 2}
    malformed = rejected.set_index("row_index")
    assert malformed.loc[10, "line_number"] == 12
    assert malformed.loc[10, "original_text"] == lines[11]
    assert malformed.loc[19, "line_number"] == 21
    assert clean["row_index"].tolist() == [i for i in range(30) if i not in (10, 19)]


def test_a_header_with_one_ragged_row_names_the_line(tmp_path):
    text = ",".join(IRIS.columns) + "\n5.1,3.5,1.4,0.2,setosa,oops\n"
    with pytest.raises(ContributionUnreadableError, match="line 2: 6 fields where the header"):
        intake(tmp_path, "one.csv", text)


def test_uci_headerless_data_is_read_by_position(tmp_path):
    rows = flowers(30).assign(species=lambda f: "Iris-" + f["species"])
    text = rows.to_csv(index=False, header=False) + "\n"  # iris.data ends with a blank line
    report, clean, _ = intake(tmp_path, "iris.data", text)
    assert report.header == "absent, positional" and report.rows_in == 30
    assert report.accepted and clean["species"].iloc[0] == "setosa"


def test_a_headerless_file_of_another_shape_asks_for_a_header(tmp_path):
    text = flowers(5).drop(columns="species").to_csv(index=False, header=False)
    with pytest.raises(ContributionUnreadableError, match="the first line is data") as error:
        intake(tmp_path, "noheader.csv", text)
    assert "add a header line" in error.value.hint


def test_trailing_delimiters_blank_lines_and_quoted_newlines_are_no_records(tmp_path):
    rows = flowers(6).assign(notes=["a", "two\nlines", "b", "c", "three\nline\nnote", "d"])
    body = rows.to_csv(index=False).replace("\n", ",\n")  # a trailing delimiter on every line
    text = body.replace("\nsetosa", "\n\nsetosa", 1) + "\n\n"
    report, _clean, _ = intake(tmp_path, "trailing.csv", text)
    assert (report.rows_in, report.rows_clean) == (6, 6) and report.accepted


def test_malformed_rows_after_blank_lines_and_quoted_newlines_keep_their_positions(tmp_path):
    rows = flowers(8).assign(notes=["x", "multi\nline", "x", "x", "x", "x", "x", "x"])
    lines = rows.to_csv(index=False).split("\n")
    # lines: header, r0, r1 (two physical lines), r2 ... ; r4 loses a field, a blank line
    # goes before r6.
    lines[6] = lines[6].rsplit(",", 1)[0]
    lines.insert(8, "")
    report, clean, rejected = intake(tmp_path, "irregular.csv", "\n".join(lines))
    assert report.rows_in == 8 and report.rejection_reasons == {"malformed_row": 1}
    assert rejected["row_index"].tolist() == [4]
    assert clean["row_index"].tolist() == [0, 1, 2, 3, 5, 6, 7]


def test_a_stray_quote_inside_a_field_is_counted_like_the_parser_reads_it(tmp_path):
    rows = flowers(5).assign(notes=["5'3\" tall", "plain", 'x"y', "plain", "plain"])
    text = rows.to_csv(index=False, quoting=csv.QUOTE_NONE, escapechar="\\").replace("\\", "")
    report, _, _ = intake(tmp_path, "quotes.csv", text)
    assert report.rows_in == 5 and report.rows_clean == 5


@pytest.mark.parametrize("token", ["NA", "NaN", "null", "", "?", "N/A", "#N/A", "."])
def test_missing_value_spellings_are_missing_values(tmp_path, token):
    lines = flowers(10).to_csv(index=False).splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[1], token, 1)
    report, _, rejected = intake(tmp_path, "missing.csv", "\n".join(lines) + "\n")
    assert report.rejection_reasons == {"missing_value:sepal_width": 1}
    assert rejected["sepal_width"].isna().all() or rejected["sepal_width"].tolist() == [token]


def test_a_gzipped_european_export_is_read_like_the_plain_one(tmp_path):
    plain, _, _ = intake(tmp_path, "e.csv", excel_european(flowers(40)))
    zipped, _, _ = intake(tmp_path, "e.csv.gz", gzip.compress(excel_european(flowers(40))))
    assert (
        (zipped.rows_clean, zipped.dialect)
        == (plain.rows_clean, plain.dialect)
        == (
            40,
            {
                "delimiter": "semicolon",
                "decimal": "comma",
                "header": "present",
                "line_endings": "CRLF",
            },
        )
    )


def test_text_in_no_encoding_beyond_doubt_names_the_byte_and_says_utf8(tmp_path):
    """Russian in Windows-1251 is no Western text: refused, naming the first byte."""
    text = "длина чашелистика;ширина;Вид\r\n5,1;3,5;setosa\r\n"
    expected = r"cyrillic.csv: byte 0 \(line 1\) is not valid UTF-8"
    with pytest.raises(ContributionUnreadableError, match=expected) as error:
        intake(tmp_path, "cyrillic.csv", text.encode("cp1251"))
    assert "UTF-8" in error.value.hint


def test_a_dialect_problem_never_blames_the_encoding(tmp_path):
    text = ",".join(IRIS.columns) + '\n5.1,3.5,1.4,0.2,"setosa\n6.1,2.9,4.7,1.4,versicolor\n'
    with pytest.raises(ContributionUnreadableError) as error:
        intake(tmp_path, "quote.csv", text)
    assert "UTF-8" not in str(error.value) and "quot" in error.value.hint


@pytest.mark.parametrize(
    "values",
    [
        ["2024-05-01", "2024-05-02T08:00:00", "2024-05-03 09:30:00+02:00"],
        ["01.05.2024", "02.05.2024", "5/3/24"],
        ["S-0012", "S-0013", "S-0014"],
        ["LAB-2024-0001", "2024-0002", "AB12-3456"],
        ["48.8566 2.3522", "-33.8688, 151.2093", "51.5074;-0.1278"],
        ["08:15", "12:30:05", "20240501T081500"],
    ],
)
def test_dates_ids_codes_and_coordinates_are_not_personal_data(tmp_path, values):
    rows = flowers(6).assign(extra=values * 2)
    report, _clean, _ = intake(tmp_path, "extra.csv", rows.to_csv(index=False))
    assert report.pii_found == {} and report.pii_columns == []
    assert report.accepted and report.dropped_columns == ["extra"]


def test_personal_data_in_a_malformed_record_is_masked(tmp_path):
    lines = flowers(10).to_csv(index=False).splitlines()
    lines[4] += ",bob@example.com,+44 20 7946 0958"
    _report, _, rejected = intake(tmp_path, "m.csv", "\n".join(lines) + "\n")
    text = rejected.loc[rejected["rejection_reasons"] == "malformed_row", "original_text"].iloc[0]
    assert "bob@example.com" not in text and "7946" not in text
    assert text.startswith(lines[4].split(",")[0]) and "[personal data removed]" in text


def test_a_file_mapping_no_column_scores_below_a_clean_copy_of_iris(tmp_path):
    nothing, _, _ = intake(tmp_path, "n.csv", "colour,size\nred,3\nblue,4\n")
    copy, _, _ = intake(tmp_path, "i.csv", REFERENCE.to_csv(index=False))
    assert nothing.quality_score == 0 < copy.quality_score
    assert not nothing.accepted and not copy.accepted


def test_check_json_reports_the_independent_count_and_header_mode(tmp_path, capsys):
    from mlops_assets.cli import main

    path = tmp_path / "iris.data"
    path.write_text(flowers(12).to_csv(index=False, header=False))
    assert main(["check", str(path), "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["records_in_file"] == report["rows_in"] == 12
    assert report["header"] == "absent, positional"


def test_utf16_without_tabs_is_still_utf16(tmp_path):
    text = flowers(5).to_csv(index=False)
    report, _, _ = intake(tmp_path, "u16.csv", codecs.BOM_UTF16_BE + text.encode("utf-16-be"))
    assert report.encoding == "utf-16 (converted)" and report.rows_clean == 5


def test_many_records_are_counted_exactly_across_chunks(tmp_path, monkeypatch):
    import mlops_assets.core.intake.encodings as encodings

    monkeypatch.setattr(encodings, "CHUNK_BYTES", 64)  # records and quotes cut across chunks
    rows = flowers(50).assign(notes=[f'"quoted, {i}"\n' if i % 7 == 0 else "x" for i in range(50)])
    buffer = io.StringIO()
    rows.to_csv(buffer, index=False, lineterminator="\r\n")
    report, _, _ = intake(tmp_path, "chunks.csv", buffer.getvalue())
    assert report.rows_in == 50 and report.rows_clean == 50


def test_an_excel_header_cell_with_a_line_break_keeps_every_record(tmp_path):
    rows = flowers(10).set_axis(
        ["Sepal length\n(cm)", "Sepal width\n(cm)", *IRIS.columns[2:]], axis=1
    )
    text = rows.to_csv(index=False, lineterminator="\r\n")  # Excel: LF inside cells, CRLF ends
    report, clean, _ = intake(tmp_path, "excel.csv", text)
    assert (report.rows_in, report.rows_clean) == (10, 10)
    assert clean["sepal_width"].tolist() == flowers(10)["sepal_width"].tolist()
