import pandas as pd

from mlops_assets.core.data.integration import (
    Contribution,
    MergePolicy,
    benchmark_overlap,
    integrate,
)
from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV, catalog_at, new_flowers


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


def many_contributions():
    split = iris_split()
    new = new_flowers(per_class=30, seed=8).sample(frac=1.0, random_state=0)
    contributions = []
    for cid, rows in (("a", new.iloc[:60]), ("b", new.iloc[60:])):
        rows = rows.reset_index(drop=True).assign(row_index=lambda f: range(len(f)))
        contributions.append(
            Contribution(cid, cid, rows, quality_score=80.0 if cid == "a" else 40.0)
        )
    return split, contributions


def integrate_many(policy: MergePolicy):
    """Iris plus two synthetic contributions, merged by ``policy``."""
    split, contributions = many_contributions()
    return integrate(split.train, contributions, split.benchmark, IRIS, seed=1, policy=policy)


def test_weighted_caps_the_contributed_share_and_weights_by_quality():
    result = integrate_many(MergePolicy(strategy="weighted", max_contributed_share=0.25))
    contributed = result.frame[result.frame["source"] == "contribution"]
    assert len(contributed) <= 0.25 * len(result.frame) + 1
    assert result.stats["rows_sampled_out"] > 0
    weights = result.frame.groupby("contribution_id")["sample_weight"].first().to_dict()
    assert weights == {"iris": 1.0, "a": 0.8, "b": 0.4}


def test_interleave_alternates_sources():
    result = integrate_many(MergePolicy(strategy="interleave", shuffle="none"))
    assert set(result.frame["contribution_id"].head(3)) == {"iris", "a", "b"}
    assert result.frame["sample_weight"].eq(1.0).all()


def test_stratified_shuffle_and_row_cap_keep_class_balance():
    result = integrate_many(MergePolicy(shuffle="stratified", max_rows=60))
    assert len(result.frame) == 60
    head = result.frame["species"].head(30).value_counts()
    assert head.max() - head.min() <= 2  # any prefix keeps roughly equal classes


def test_block_shuffle_permutes_blocks_of_source_order():
    in_order = integrate_many(MergePolicy(shuffle="none")).frame["row_id"].tolist()
    policy = MergePolicy(shuffle="blocks", block_rows=16)
    shuffled = integrate_many(policy).frame["row_id"].tolist()
    assert shuffled == integrate_many(policy).frame["row_id"].tolist()  # seeded
    assert sorted(shuffled) == sorted(in_order) and shuffled != in_order
    block_of = {row_id: position // 16 for position, row_id in enumerate(in_order)}
    output_blocks = [block_of[row_id] for row_id in shuffled]
    # Each source block comes out whole, as one run, its rows reordered; the blocks reordered.
    runs = [b for i, b in enumerate(output_blocks) if i == 0 or output_blocks[i - 1] != b]
    assert sorted(runs) == sorted(set(output_blocks)) and runs != sorted(runs)
    first_block = [r for r in in_order if block_of[r] == runs[0]]
    assert shuffled[: len(first_block)] != first_block


def test_unknown_strategy_is_a_config_error():
    import pytest

    from mlops_assets.errors import ConfigurationError

    split = iris_split()
    with pytest.raises(ConfigurationError, match="unknown merge strategy"):
        integrate(
            split.train, [], split.benchmark, IRIS, seed=1, policy=MergePolicy(strategy="zip")
        )


def test_training_uses_sample_weights():
    from mlops_assets.core.modeling.training import train_model

    frame = integrate_many(MergePolicy(strategy="weighted", max_contributed_share=0.4)).frame
    weighted = train_model(frame, IRIS, estimator="logistic_regression", hyperparameters={}, seed=0)
    plain = train_model(
        frame.drop(columns="sample_weight"),
        IRIS,
        estimator="logistic_regression",
        hyperparameters={},
        seed=0,
    )
    assert (weighted[-1].coef_ != plain[-1].coef_).any()


def test_accepted_contributions_load_whole_or_as_a_seeded_sample(tmp_path):
    from mlops_assets.core.catalog.catalog import load_accepted
    from mlops_assets.core.intake.processing import process_contribution
    from mlops_assets.core.intake.report import IntakePolicy

    reference = load_reference_data(IRIS_CSV, IRIS).frame
    root = tmp_path / "contributions"
    catalog = catalog_at(tmp_path, IRIS)
    new = new_flowers(per_class=100, seed=9)
    for name, rows in (("a", new.iloc[::2]), ("b", new.iloc[1::2])):
        path = tmp_path / f"{name}.csv"
        rows.to_csv(path, index=False)
        process_contribution(
            path,
            IRIS,
            reference=reference,
            contributions_root=root,
            contribution_id=name,
            contributor=name,
            policy=IntakePolicy(min_quality=0),
            landing_path=f"{name}/x.csv",
            records=catalog,
        )
    everything = load_accepted(catalog, max_rows=0, seed=1).split()
    assert [c.contribution_id for c in everything] == ["a", "b"]
    total = sum(len(c.rows) for c in everything)
    sampled = load_accepted(catalog, max_rows=total // 4, seed=1).split()
    again = load_accepted(catalog, max_rows=total // 4, seed=1).split()
    kept = sum(len(c.rows) for c in sampled)
    assert total // 8 < kept < total // 2
    assert [c.rows["row_index"].tolist() for c in sampled] == [
        c.rows["row_index"].tolist() for c in again
    ]
