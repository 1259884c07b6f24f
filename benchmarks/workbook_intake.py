"""`mlops check` of an Excel workbook next to the same rows as CSV: wall time and peak RSS of
the whole command, each in a fresh process, in turn (GNU time -f %M).

A workbook is read whole into memory (calamine), so this says what a large one costs: the
workbook is written by xlsxwriter (constant memory) with a title row above the header.

    python benchmarks/workbook_intake.py --rows 200000
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

from mlops_assets.settings import REPO_ROOT


def rows(count: int) -> pd.DataFrame:
    iris = pd.read_csv(REPO_ROOT / "data" / "iris.csv")
    frame = iris.sample(count, replace=True, random_state=1).reset_index(drop=True)
    jitter = (frame.index.to_numpy() % 997 + 1) / 100_000  # distinct rows, in range
    frame[frame.columns[:4]] = (frame[frame.columns[:4]].add(jitter, axis=0)).round(5)
    return frame


def write_workbook(frame: pd.DataFrame, path: Path) -> None:
    import xlsxwriter

    with xlsxwriter.Workbook(str(path), {"constant_memory": True}) as workbook:
        sheet = workbook.add_worksheet("Messungen")
        sheet.write_row(0, 0, ["Iris measurements, greenhouse B"])
        sheet.write_row(2, 0, list(frame.columns))
        for i, row in enumerate(frame.itertuples(index=False), start=3):
            sheet.write_row(i, 0, row)


def check(path: Path, home: Path) -> tuple[float, float]:
    mlops = Path(sys.executable).with_name("mlops")
    env = {**os.environ, "MLOPS_HOME": str(home)}
    start = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", str(mlops), "check", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(result.stderr[-2000:])
    return seconds, int(result.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000])
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date: {date.today()}")
    print("| rows | file | MB | seconds | peak RSS (MB) |")
    print("|---:|---|---:|---:|---:|")
    for count in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            frame = rows(count)
            workbook, text = folder / "flowers.xlsx", folder / "flowers.csv"
            write_workbook(frame, workbook)
            frame.to_csv(text, index=False)
            for path in (workbook, text):
                seconds, rss = check(path, folder / "var")
                size = path.stat().st_size / 1e6
                print(f"| {count} | {path.suffix} | {size:.1f} | {seconds:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
