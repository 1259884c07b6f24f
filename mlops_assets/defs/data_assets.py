"""Data assets: the reference iris data, contributions, and the integrated training set.

pandas and the core modules are imported inside the asset bodies: every run process imports
this code location, and most of them need neither.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.core.common.names import safe_text
from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.defs.partitions import contributions_partitions
from mlops_assets.defs.resources import DatasetStore, LandingZone
from mlops_assets.errors import UpstreamMissingError
from mlops_assets.settings import current_settings
from mlops_assets.task import TASK

if TYPE_CHECKING:
    from mlops_assets.core.intake.report import IntakePolicy
    from mlops_assets.core.intake.text_files import IntakeLimits

# Intake and integration read the reports and the accepted rows of earlier contributions;
# rejected rows stay in storage for people, unread by the pipeline.
READ_BY_INTAKE = ("report.json", "clean.parquet")

_settings = current_settings()


class IrisDatasetConfig(dg.Config):
    csv_path: str = str(_settings.iris_csv)
    benchmark_fraction: float = _settings.benchmark_fraction
    seed: int = _settings.seed


class ContributionConfig(dg.Config):
    """When a contribution is accepted (defaults from the ``MLOPS_MIN_*`` settings)."""

    min_valid_share: float = _settings.min_valid_share
    min_quality: float = _settings.min_quality
    min_rows: int = _settings.min_rows
    keep_outliers: bool = _settings.keep_outliers
    # What one contribution may cost (MLOPS_MAX_DECOMPRESSED_BYTES, ..._COMPRESSION_RATIO,
    # MLOPS_INTAKE_TIMEOUT).
    max_decompressed_bytes: int = _settings.max_decompressed_bytes
    max_compression_ratio: float = _settings.max_compression_ratio
    timeout_seconds: float = _settings.intake_timeout

    def policy(self) -> "IntakePolicy":
        from mlops_assets.core.intake.report import IntakePolicy

        return IntakePolicy(
            min_valid_share=self.min_valid_share,
            min_quality=self.min_quality,
            min_rows=self.min_rows,
            keep_outliers=self.keep_outliers,
        )

    def limits(self) -> "IntakeLimits":
        from mlops_assets.core.intake.text_files import IntakeLimits

        return IntakeLimits(
            max_bytes=self.max_decompressed_bytes,
            max_ratio=self.max_compression_ratio,
            timeout_seconds=self.timeout_seconds,
        )


class IntegrationConfig(dg.Config):
    """How accepted contributions are merged with the iris train part."""

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
    seed: int = _settings.seed


@dg.asset(
    group_name="data",
    kinds={"pandas", "parquet"},
    # eager() never fills an asset that was missing before automation started, so the root of
    # the graph also runs once when first found missing: a fresh deployment trains by itself.
    automation_condition=dg.AutomationCondition.eager()
    | dg.AutomationCondition.missing().newly_true(),
)
def iris_dataset(
    context: dg.AssetExecutionContext, config: IrisDatasetConfig, store: DatasetStore
) -> dg.MaterializeResult:
    """Canonical iris data, validated and split once into a train part and a fixed benchmark.

    Read from ``data/iris.csv``; scikit-learn's copy is used only when that file is missing or
    empty. The benchmark is never trained on: every model is scored on it.
    """
    from mlops_assets.core.common.hashing import frame_sha256
    from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark

    reference = load_reference_data(Path(config.csv_path), TASK)
    if reference.fallback_reason:
        context.log.warning(f"Using scikit-learn's iris: {reference.fallback_reason}")
    split = split_benchmark(
        reference.frame, TASK, fraction=config.benchmark_fraction, seed=config.seed
    )
    store.write_frame(split.train, store.REFERENCE_TRAIN)
    store.write_frame(split.benchmark, store.BENCHMARK)
    class_counts = reference.frame[TASK.label].value_counts().sort_index()
    return dg.MaterializeResult(
        metadata={
            "source": reference.source,
            "source_location": reference.location,
            "fallback_reason": reference.fallback_reason or "",
            "dagster/row_count": len(reference.frame),
            "train_rows": len(split.train),
            "benchmark_rows": len(split.benchmark),
            "benchmark_sha256": frame_sha256(split.benchmark),
            "train_sha256": frame_sha256(split.train),
            "class_counts": dg.MetadataValue.json(
                {str(k): int(v) for k, v in class_counts.items()}
            ),
            "train_path": dg.MetadataValue.path(store.uri(store.REFERENCE_TRAIN)),
            "benchmark_path": dg.MetadataValue.path(store.uri(store.BENCHMARK)),
            "preview": dg.MetadataValue.md(
                f"```\n{split.train.head(5).to_string(index=False)}\n```"
            ),
        }
    )


@dg.asset(
    group_name="data",
    kinds={"pandas", "parquet"},
    partitions_def=contributions_partitions,
    # It reads iris to judge duplicates and outliers but declares no dependency on it: that
    # would put this partitioned asset into `iris_dataset*`, which the CLI then refuses
    # without --partition.
)
def contributed_data(
    context: dg.AssetExecutionContext,
    config: ContributionConfig,
    store: DatasetStore,
    landing: LandingZone,
) -> dg.MaterializeResult:
    """One contribution file: read, columns mapped, rows validated, accepted or rejected.

    Clean rows go to ``clean.parquet``, rejected rows with their reasons to
    ``rejected.parquet``, and every decision to ``report.json``; the original file is never
    modified.
    """
    import pandas as pd

    from mlops_assets.core.intake.processing import process_contribution

    contribution_id = context.partition_key
    # The sensor names the file in the run's tags; a run launched by hand finds it by its key.
    landing_path = context.run.tags.get("mlops/landing_path") or next(
        (
            f.relative_path
            for f in landing.list_files()
            if contribution_key(f.relative_path) == contribution_id
        ),
        None,
    )
    if landing_path is None:
        raise UpstreamMissingError(
            f"no file in the landing zone {landing.location} matches {contribution_id}",
            hint="the file was moved or deleted after it was detected; submit it again",
        )
    if not store.exists(store.BENCHMARK):
        raise UpstreamMissingError(
            "contributions are judged against iris, which is not written yet",
            hint="materialize iris_dataset first",
        )
    reference = pd.concat(
        [store.read_frame(store.REFERENCE_TRAIN), store.read_frame(store.BENCHMARK)]
    )
    # Earlier contributions are read to find duplicates; this one is written beside them.
    contributions_root = store.fetch_tree(store.CONTRIBUTIONS, ending=READ_BY_INTAKE)
    with landing.local_copy(landing_path) as path:
        report = process_contribution(
            path,
            TASK,
            reference=reference,
            contributions_root=contributions_root,
            contribution_id=contribution_id,
            contributor=landing_path.split("/")[0],
            policy=config.policy(),
            limits=config.limits(),
            landing_path=landing_path,
            snapshot_root=store.local_path(store.ORIGINALS),
        )
    # The kept bytes first: a report never names a snapshot that is not stored.
    if report.snapshot:
        store.publish(f"{store.ORIGINALS}/{report.snapshot}")
    store.publish(store.contribution(contribution_id))
    context.log.info(f"{safe_text(landing_path)}: {report.decision}")
    return dg.MaterializeResult(
        metadata={
            "accepted": report.accepted,
            "decision": report.decision,
            "contributor": report.contributor,
            "landing_path": landing_path,
            "sha256": report.sha256,
            "rows_in": report.rows_in,
            "rows_clean": report.rows_clean,
            "rows_rejected": report.rows_rejected,
            "dagster/row_count": report.rows_clean,
            "quality_score": report.quality_score,
            "outliers": report.outliers,
            "file_format": report.file_format,
            "duplicate_of": report.duplicate_of or "",
            "rejection_reasons": dg.MetadataValue.json(report.rejection_reasons),
            "pii_found": dg.MetadataValue.json(report.pii_found),
            "dropped_columns": dg.MetadataValue.json(report.dropped_columns),
            "report_path": dg.MetadataValue.path(
                store.uri(store.contribution(contribution_id, "report.json"))
            ),
        }
    )


@dg.asset(
    group_name="data",
    kinds={"pandas", "parquet"},
    deps=[iris_dataset, contributed_data],
    # Contributions trigger it through retrain_sensor (accepted ones only, batched); eager()
    # follows the iris data. Ignoring contributed_data also keeps a contribution that is still
    # being ingested (a missing partition) from blocking it.
    automation_condition=dg.AutomationCondition.eager().ignore(
        dg.AssetSelection.assets(contributed_data)
    ),
)
def integrated_dataset(
    context: dg.AssetExecutionContext, config: IntegrationConfig, store: DatasetStore
) -> dg.MaterializeResult:
    """The training set: iris train part + every accepted contribution, benchmark rows and
    duplicates removed, shuffled reproducibly; versioned by its content hash."""

    from mlops_assets.core.data.integration import (
        MergePolicy,
        integrate,
        load_accepted_contributions,
    )

    if not store.exists(store.REFERENCE_TRAIN):
        raise UpstreamMissingError(
            "the iris train part has not been written yet", hint="materialize iris_dataset first"
        )
    contributions = load_accepted_contributions(
        store.fetch_tree(store.CONTRIBUTIONS, ending=READ_BY_INTAKE),
        max_rows=config.max_contributed_rows,
        seed=config.seed,
    )
    dataset = integrate(
        store.read_frame(store.REFERENCE_TRAIN),
        contributions,
        store.read_frame(store.BENCHMARK),
        TASK,
        seed=config.seed,
        policy=MergePolicy(
            strategy=config.strategy,
            shuffle=config.shuffle,
            block_rows=config.block_rows,
            max_contributed_share=config.max_contributed_share,
            max_rows=config.max_rows,
        ),
    )
    key = store.integrated(dataset.sha256)
    store.write_frame(dataset.frame, key)
    return dg.MaterializeResult(
        metadata={
            "sha256": dataset.sha256,
            "path": dg.MetadataValue.path(store.uri(key)),
            "dagster/row_count": len(dataset.frame),
            "contributions": dg.MetadataValue.json([c.contribution_id for c in contributions]),
            "contributors": dg.MetadataValue.json(sorted({c.contributor for c in contributions})),
            "rows_by_source": dg.MetadataValue.json(dataset.rows_by_source),
            "strategy": config.strategy,
            **{k: v for k, v in dataset.stats.items()},
        }
    )
