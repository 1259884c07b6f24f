import pandas as pd

from mlops_assets.core.integration import Contribution, benchmark_overlap, integrate
from mlops_assets.core.reference_data import load_reference_data, split_benchmark
from mlops_assets.task import IRIS
from mlops_assets_tests.conftest import IRIS_CSV


def iris_split():
    return split_benchmark(load_reference_data(IRIS_CSV, IRIS).frame, IRIS, fraction=0.3, seed=42)


def contribution(rows, cid="alice-1"):
    frame = pd.DataFrame(rows, columns=IRIS.columns)
    frame["row_index"] = range(len(frame))
    return Contribution(cid, "alice", frame)


def test_benchmark_copies_and_duplicates_never_reach_training():
    split = iris_split()
    copied = split.benchmark.head(5).values.tolist()
    duplicate_of_train = split.train.head(2).values.tolist()
    new = [[7.7, 3.1, 6.6, 2.3, "virginica"], [7.7, 3.1, 6.6, 2.3, "virginica"]]
    result = integrate(
        split.train,
        [contribution(copied + duplicate_of_train + new)],
        split.benchmark,
        IRIS,
        seed=1,
    )
    assert benchmark_overlap(result.frame, split.benchmark, IRIS) == 0
    assert result.stats["benchmark_rows_removed"] >= 5
    assert result.rows_by_source["alice-1"] == 1
    assert result.frame["row_id"].is_unique


def test_rows_carry_provenance_and_the_hash_is_reproducible():
    split = iris_split()
    extra = contribution([[7.7, 3.1, 6.6, 2.3, "virginica"]])
    first = integrate(split.train, [extra], split.benchmark, IRIS, seed=3)
    again = integrate(split.train, [extra], split.benchmark, IRIS, seed=3)
    reshuffled = integrate(split.train, [extra], split.benchmark, IRIS, seed=4)
    assert first.sha256 == again.sha256 != reshuffled.sha256
    row = first.frame.loc[first.frame["contribution_id"] == "alice-1"].iloc[0]
    assert row["row_id"] == "contribution:alice-1:0" and row["contributor"] == "alice"
    assert set(first.frame["source"]) == {"reference", "contribution"}
