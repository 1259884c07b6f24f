"""`registered_model_version`: the candidate registered, decided, attested and announced."""

from typing import Any

import dagster as dg

from mlops_assets.defs.automation import follows_upstream
from mlops_assets.defs.metadata import table, upstream_metadata, url
from mlops_assets.defs.training.assets import trained_model
from mlops_assets.resources import (
    CatalogDatabase,
    DatasetStore,
    MlflowTracking,
    ModelRegistry,
    PredictionApis,
    PromotionPolicy,
    TaskDefinition,
    Webhooks,
)


@dg.asset(
    group_name="model",
    kinds={"mlflow"},
    deps=[trained_model],
    automation_condition=follows_upstream(),
)
def registered_model_version(
    context: dg.AssetExecutionContext,
    registry: ModelRegistry,
    promotion_policy: PromotionPolicy,
    store: DatasetStore,
    webhooks: Webhooks,
    mlflow_tracking: MlflowTracking,
    serving: PredictionApis,
    task: TaskDefinition,
    catalog: CatalogDatabase,
) -> dg.MaterializeResult:
    """The candidate as a registry version: `challenger` always moves to it, `champion`
    only when it beats the champion on the primary metric by the configured margin (see
    `register_candidate`: a crash at any point is completed or cleaned up by a rerun)."""
    from mlops_assets.core.modeling.candidate import Candidate
    from mlops_assets.core.promotion.attestation import Provenance, attested_contributions
    from mlops_assets.core.promotion.registration import register_candidate
    from mlops_assets.core.registry.client import registry_errors

    candidate = Candidate.from_metadata(upstream_metadata(context, trained_model.key))
    entries = catalog.open(task.schema(), store).entries(ids=candidate.contributions)
    provenance = Provenance(
        dagster_run_id=context.run_id,
        benchmark_sha256=upstream_metadata(context, task.dataset_key())["benchmark_sha256"],
        contributions=attested_contributions([e.report for e in entries], candidate.contributions),
        task=task.schema().attested(),
    )
    with registry_errors(registry.tracking_uri), mlflow_tracking.step():
        done = register_candidate(
            registry.client(),
            tracking_uri=registry.tracking_uri,
            model_name=registry.model_name,
            candidate=candidate,
            gate=promotion_policy.gate(),
            provenance=provenance,
            run_is_over=lambda run_id: _run_is_over(context.instance, run_id),
        )
    context.log.info(done.reason)
    for number in done.abandoned:
        context.log.warning(f"v{number} was left half-registered by a dead run: tagged abandoned")
    # After the registry is final: an event never fails or undoes a registration.
    event = done.version_event(registry.model_name, candidate, promotion_policy.primary_metric)
    told = serving.champion_moved() if event.promoted else []
    for line in [*told, *webhooks.announce(event)]:
        context.log.info(line)
    return dg.MaterializeResult(
        metadata={
            **done.to_metadata(registry.model_name, promotion_policy.primary_metric, candidate),
            **_trained_on(candidate.contributions, provenance.contributions),
            "registry_url": url(registry.version_url(done.version)),
            "attestation": dg.MetadataValue.path(done.attestation_uri),
        }
    )


@dg.asset(
    group_name="model",
    kinds={"pandas", "parquet"},
    deps=[registered_model_version],
    automation_condition=follows_upstream(),
)
def contributor_scoreboard(
    store: DatasetStore, registry: ModelRegistry, task: TaskDefinition, catalog: CatalogDatabase
) -> dg.MaterializeResult:
    """Per contributor: contributions accepted, rejected and excluded, rows accepted, mean
    quality score, total value (each contribution's latest Shapley value) and the model
    versions their data is in; rebuilt after every retrain from the contribution catalog and
    the registry."""
    import pandas as pd

    from mlops_assets.core.intake.overview import (
        SCOREBOARD_COLUMNS,
        ContributionHistory,
        contribution_overview,
        contributor_scoreboard,
    )
    from mlops_assets.core.registry.client import registry_errors

    entries = catalog.open(task.schema(), store).entries()
    reports = [entry.report for entry in entries if entry.recorded]
    with registry_errors(registry.tracking_uri):
        versions = registry.client().search_model_versions(f"name = '{registry.model_name}'")
    history = ContributionHistory.from_versions([(str(v.version), v.tags) for v in versions])
    board = contributor_scoreboard(contribution_overview(reports, [], history))
    store.write_frame(pd.DataFrame(board, columns=list(SCOREBOARD_COLUMNS)), store.SCOREBOARD)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(board),
            "scoreboard": table(board, SCOREBOARD_COLUMNS),
            "path": dg.MetadataValue.path(store.uri(store.SCOREBOARD)),
        }
    )


def _trained_on(ids: list[str], attested: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The contributions a version was trained on, and their contributors."""
    return {"contributions": ids, "contributors": sorted({c["contributor"] for c in attested})}


def _run_is_over(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id) if run_id else None
    return run is None or run.is_finished
