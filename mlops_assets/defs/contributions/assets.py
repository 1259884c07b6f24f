"""`contributed_data`: one landed file taken in, judged, and stored with its report."""

from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.core.common.names import safe_text
from mlops_assets.defs.contributions.partitions import (
    CONTENT_VERSION_TAG,
    LANDED_AT_TAG,
    LANDING_PATH_TAG,
    STAGE_TAG,
    contributions_partitions,
)
from mlops_assets.defs.metadata import pictures
from mlops_assets.errors import UpstreamMissingError
from mlops_assets.resources import (
    CatalogDatabase,
    DatasetStore,
    IntakeSettings,
    LandingZone,
    TaskDefinition,
)

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.core.intake.report import ContributionReport
    from mlops_assets.core.reporting.plots import Plot

CONTRIBUTED_DATA = dg.AssetKey("contributed_data")
DECISION_TAG = "mlops/decision"  # accepted | rejected, on the intake run


class ContributionConfig(dg.Config):
    """For a run launched by hand: the file, when no intake of this partition ran before."""

    landing_path: str | None = None


def build_contributed_data(reference_asset: str) -> dg.AssetsDefinition:
    """`contributed_data`, which reads the task's reference data asset `reference`
    (`TaskSchema.dataset_asset`) to judge duplicates and outliers, and says so."""
    return dg.asset(
        name=CONTRIBUTED_DATA.path[-1],
        group_name="data",
        kinds={"pandas", "parquet"},
        partitions_def=contributions_partitions,
        deps=[reference_asset],
    )(contributed_data)


def contributed_data(
    context: dg.AssetExecutionContext,
    config: ContributionConfig,
    intake_policy: IntakeSettings,
    store: DatasetStore,
    landing: LandingZone,
    task: TaskDefinition,
    catalog: CatalogDatabase,
) -> dg.MaterializeResult:
    """One contribution file: read, columns mapped, rows validated, accepted or rejected.

    Clean rows go to `clean.parquet`, rejected rows with their reasons to
    `rejected.parquet`, and every decision to `report.json`; the original file is never
    modified. The run names its file (the sensor's tag): the zone is never listed here.
    Earlier contributions are looked up in the catalog, which records this one's outcome
    once its files are stored.
    """
    from mlops_assets.core.intake.processing import process_contribution

    landing_path = _landing_path(context, config)
    if not store.exists(store.BENCHMARK):
        raise UpstreamMissingError(
            "contributions are judged against the reference data, which is not written yet",
            hint=f"materialize {task.schema().dataset_asset} first",
        )
    schema = task.schema()
    train, benchmark = store.read_frame(store.REFERENCE_TRAIN), store.read_frame(store.BENCHMARK)
    # A private benchmark is never compared at intake: which rows were refused would tell a
    # contributor which rows it holds.
    compared = None if schema.private_benchmark else benchmark
    records = catalog.open(schema, store)
    with landing.local_copy(landing_path) as path:
        report = process_contribution(
            path,
            schema,
            reference=train,
            benchmark=compared,
            contributions_root=store.local_path(store.CONTRIBUTIONS),
            contribution_id=context.partition_key,
            contributor=landing_path.split("/")[0],
            policy=intake_policy.policy(),
            limits=intake_policy.limits(),
            landing_path=landing_path,
            records=records,
            publish=lambda report: _publish(store, report),
            landed_at=_landed_at(context),
            snapshot_root=store.local_path(store.ORIGINALS),
            sidecar=landing.sidecar(landing_path),
        )
    plots = _draw(store, context.partition_key, [train, benchmark], task)
    _tell_outcome(context, landing_path, report)
    report_key = store.contribution(context.partition_key, "report.json")
    metadata = {**report.to_metadata(landing_path), **pictures(plots)}
    return dg.MaterializeResult(
        metadata={**metadata, "report_path": dg.MetadataValue.path(store.uri(report_key))}
    )


def _publish(store: DatasetStore, report: "ContributionReport") -> None:
    """Store the contribution's folder, after the bytes it keeps: a report never names a
    snapshot that is not stored."""
    if report.snapshot:
        store.publish(f"{store.ORIGINALS}/{report.snapshot}")
    store.publish(store.contribution(report.contribution_id))


def _draw(
    store: DatasetStore,
    contribution_id: str,
    reference_parts: "list[pd.DataFrame]",
    task: TaskDefinition,
) -> "list[Plot]":
    """The contribution's class balance and feature drift against the reference (its parts),
    stored beside its report (`plots/`, the files the retrain logs to MLflow) and
    returned."""
    import pandas as pd

    from mlops_assets.core.reporting.plots import PLOTS_FOLDER, contribution_plots

    clean = store.local_path(store.contribution(contribution_id, "clean.parquet"))
    if not clean.exists():
        return []
    plots = contribution_plots(pd.read_parquet(clean), pd.concat(reference_parts), task.schema())
    folder = store.local_path(store.contribution(contribution_id, PLOTS_FOLDER))
    folder.mkdir(exist_ok=True)
    for plot in plots:
        (folder / plot.file_name).write_bytes(plot.png)
    return plots


def _tell_outcome(
    context: dg.AssetExecutionContext, landing_path: str, report: "ContributionReport"
) -> None:
    """The decision in the log (after a warning if the file changed since the sensor saw it)
    and as the run's `mlops/decision` tag (the runs list shows it): a rejection is an
    outcome of a successful run, with what to do about it."""
    _note_if_changed(context, landing_path, report.sha256)
    hint = f" What to do: {report.hint}" if report.hint else ""
    context.log.info(f"{safe_text(landing_path)}: {report.decision}.{hint}")
    status = "accepted" if report.accepted else "rejected"
    context.instance.add_run_tags(context.run_id, {DECISION_TAG: status})


def _landing_path(context: dg.AssetExecutionContext, config: ContributionConfig) -> str:
    """The file this partition is: the run's tag (set by the sensor, kept by a re-execution),
    the config, or the tag of this partition's first intake run (a launch from the UI)."""
    if path := context.run.tags.get(LANDING_PATH_TAG) or config.landing_path:
        return path
    first = context.instance.get_run_records(
        dg.RunsFilter(tags={"dagster/partition": context.partition_key, STAGE_TAG: "ingest"}),
        limit=1,
        ascending=True,
    )
    if first and (path := first[0].dagster_run.tags.get(LANDING_PATH_TAG)):
        return path
    raise UpstreamMissingError(
        f"no landing file is known for the contribution {context.partition_key}",
        hint="let contribution_sensor launch its intake, or give the file in the run config: "
        "ops: {contributed_data: {config: {landing_path: <contributor>/<file>}}}",
    )


def _landed_at(context: dg.AssetExecutionContext) -> float:
    """When the file landed: the sensor's tag (kept by a re-execution), else now (a run
    launched by hand takes the file now)."""
    import time

    tagged = context.run.tags.get(LANDED_AT_TAG)
    return float(tagged) if tagged else time.time()


def _note_if_changed(context: dg.AssetExecutionContext, landing_path: str, sha256: str) -> None:
    """The bytes judged are the bytes hashed while they were copied; say so when they are not
    what the sensor saw (the file was rewritten between detection and intake)."""
    seen = context.run.tags.get(CONTENT_VERSION_TAG, "")
    if seen.startswith("sha256:") and seen != f"sha256:{sha256}":
        context.log.warning(
            f"{safe_text(landing_path)} changed after it was detected: judged as read now "
            f"(sha256 {sha256[:12]}), not as first seen ({seen[7:19]})"
        )
