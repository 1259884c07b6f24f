"""Data assets: the task's reference data (`<task>_dataset`, `iris_dataset` for the
default task) split once into a train part and a fixed benchmark, and the training set
integrated from it and every accepted contribution.

The reference asset is named for the task, so both are built by `build_data_assets`
once the task is known. pandas and the core modules are imported inside the asset bodies:
every run process imports this code location, and most of them need neither.
"""

import dagster as dg

from mlops_assets.defs.automation import follows_upstream
from mlops_assets.defs.contributions.assets import CONTRIBUTED_DATA
from mlops_assets.errors import UpstreamMissingError
from mlops_assets.resources import (
    CatalogDatabase,
    DatasetStore,
    ReferenceDataSource,
    TaskDefinition,
    TrainingDataPolicy,
)

INTEGRATED_DATASET = dg.AssetKey("integrated_dataset")


class ReferenceDatasetConfig(dg.Config):
    """Overrides of the `reference_data` resource (`MLOPS_REFERENCE`,
    `MLOPS_BENCHMARK_FRACTION`, `MLOPS_SEED`) for one run."""

    reference: str | None = None
    benchmark_fraction: float | None = None
    seed: int | None = None


class IntegrationConfig(dg.Config):
    """How accepted contributions are merged with the reference train part."""

    # append | interleave (alternate rows by source) | weighted (cap the contributed share
    # at max_contributed_share, weight rows by their contribution's quality score)
    strategy: str = "append"
    # random | stratified (any prefix keeps the class balance) | blocks (blocks of block_rows
    # rows in source order, blocks and rows within shuffled) | none
    shuffle: str = "random"
    block_rows: int = 65_536
    max_contributed_share: float = 0.5
    max_rows: int = 0
    # Contributed rows read at most (a seeded sample past it), so memory stays bounded.
    max_contributed_rows: int = 2_000_000
    seed: int | None = None  # the training_data_policy resource's (MLOPS_SEED) unless given


def build_data_assets(reference_asset: str) -> list[dg.AssetsDefinition]:
    """The reference data asset `reference_asset` (`TaskSchema.dataset_asset`) and
    `integrated_dataset`, which depends on it."""
    reference = dg.asset(
        name=reference_asset,
        group_name="data",
        kinds={"pandas", "parquet"},
        automation_condition=follows_upstream(),
    )(reference_dataset)
    integrated = dg.asset(
        group_name="data",
        kinds={"pandas", "parquet"},
        deps=[reference, CONTRIBUTED_DATA],
        # Contributions trigger it through retrain_sensor (accepted ones only, batched);
        # automation follows the reference data. Ignoring contributed_data also keeps a
        # contribution that is still being ingested (a missing partition) from blocking it.
        automation_condition=follows_upstream().ignore(dg.AssetSelection.assets(CONTRIBUTED_DATA)),
    )(integrated_dataset)
    return [reference, integrated]


def reference_dataset(
    context: dg.AssetExecutionContext,
    config: ReferenceDatasetConfig,
    reference_data: ReferenceDataSource,
    store: DatasetStore,
    task: TaskDefinition,
) -> dg.MaterializeResult:
    """The task's reference data, validated and split once into a train part and a fixed
    benchmark.

    Read from the task file's `reference` (for iris `data/iris.csv`, and scikit-learn's
    copy only when that file is missing or empty). The benchmark is never trained on: every
    model is scored on it.
    """
    from mlops_assets.core.data.reference_data import (
        benchmark_split,
        describe_split,
        load_reference_data,
    )

    schema = task.schema()
    store.claim_for_task(schema.name)
    data = load_reference_data(config.reference or reference_data.reference, schema)
    if data.fallback_reason:
        context.log.warning(f"Using scikit-learn's iris: {data.fallback_reason}")
    if data.rows_left_out:
        context.log.warning(
            f"{data.rows_left_out} reference row(s) left out: {data.left_out_reasons}"
        )
    split = benchmark_split(
        data,
        schema,
        fraction=config.benchmark_fraction or reference_data.benchmark_fraction,
        seed=reference_data.seed if config.seed is None else config.seed,
    )
    store.write_frame(split.train, store.REFERENCE_TRAIN)
    store.write_frame(split.benchmark, store.BENCHMARK)
    described = describe_split(data, split, schema)
    if described["benchmark_warning"]:
        context.log.warning(described["benchmark_warning"])
    return dg.MaterializeResult(
        metadata={
            **described,
            "train_path": dg.MetadataValue.path(store.uri(store.REFERENCE_TRAIN)),
            "benchmark_path": dg.MetadataValue.path(store.uri(store.BENCHMARK)),
            "preview": dg.MetadataValue.md(described["preview"]),
        }
    )


def integrated_dataset(
    config: IntegrationConfig,
    training_data_policy: TrainingDataPolicy,
    store: DatasetStore,
    task: TaskDefinition,
    catalog: CatalogDatabase,
) -> dg.MaterializeResult:
    """The training set: the reference train part + every accepted contribution, benchmark
    rows and duplicates removed, shuffled reproducibly; versioned by its content hash. The
    accepted rows are read from the contribution catalog in one query."""
    from mlops_assets.core.catalog.catalog import load_accepted
    from mlops_assets.core.data.integration import MergePolicy, integrate

    if not store.exists(store.REFERENCE_TRAIN):
        raise UpstreamMissingError(
            "the reference train part has not been written yet",
            hint=f"materialize {task.schema().dataset_asset} first",
        )
    seed = training_data_policy.seed if config.seed is None else config.seed
    schema = task.schema()
    train, benchmark = store.read_frame(store.REFERENCE_TRAIN), store.read_frame(store.BENCHMARK)
    records = catalog.open(schema, store)
    contributions = load_accepted(
        records,
        max_rows=config.max_contributed_rows,
        seed=seed,
        snapshot=store.snapshot(store.ACCEPTED_ROWS),
    )
    policy = MergePolicy(
        **config.model_dump(include={"strategy", "shuffle", "block_rows", "max_rows"}),
        max_contributed_share=config.max_contributed_share,
    )
    dataset = integrate(
        train,
        contributions,
        benchmark,
        schema,
        seed=seed,
        policy=policy,
    )
    key = store.integrated(dataset.sha256)
    store.write_frame(dataset.frame, key)
    return dg.MaterializeResult(
        metadata={
            **dataset.to_metadata(contributions, config.strategy),
            "path": dg.MetadataValue.path(store.uri(key)),
        }
    )
