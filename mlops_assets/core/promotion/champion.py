"""Moving ``champion``: after a decided promotion, by hand (audited), or back to
``previous-champion`` (a rollback). The old champion always keeps ``previous-champion``, so
a rollback is one command and a second rollback undoes the first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops_assets.core.registry import tags as tag
from mlops_assets.core.registry.client import get_version_by_alias
from mlops_assets.core.registry.tags import CHAMPION, PREVIOUS_CHAMPION
from mlops_assets.core.registry.webhooks import VersionEvent

if TYPE_CHECKING:
    from mlflow import MlflowClient


def promote_to_champion(client: MlflowClient, model_name: str, version: str) -> str | None:
    """Point ``champion`` at ``version``; the old champion keeps ``previous-champion``.

    Returns the previous champion's version, if any.
    """
    previous = get_version_by_alias(client, model_name, CHAMPION)
    if previous is not None and str(previous.version) != str(version):
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, previous.version)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    return str(previous.version) if previous is not None else None


@dataclass(frozen=True)
class ChampionChange:
    """Who moved ``champion`` from one version to another, how, why and when."""

    model_name: str
    from_version: str | None
    to_version: str
    how: str  # "rollback" or "manual"
    actor: str
    reason: str
    at: str

    def version_event(self) -> VersionEvent:
        return VersionEvent(
            model_name=self.model_name,
            version=self.to_version,
            aliases=[CHAMPION],
            promoted=True,
            reason=self.reason,
            how=self.how,
            by=self.actor,
            previous_version=self.from_version,
        )


def set_champion_by_hand(
    client: MlflowClient, model_name: str, version: str, *, actor: str, reason: str, how: str
) -> ChampionChange:
    """Point ``champion`` at ``version`` outside the promotion gate, and audit it as tags on
    the version (``champion_set_by``, ``champion_set_how``, ``champion_set_reason``,
    ``champion_set_at``). The old champion keeps ``previous-champion``."""
    from datetime import UTC, datetime

    from mlflow.exceptions import MlflowException

    from mlops_assets.errors import ConfigurationError, ModelNotFoundError

    if not reason.strip():
        raise ConfigurationError(
            "a manual change of the champion needs a reason", hint="pass --reason '...'"
        )
    try:
        client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise ModelNotFoundError(
            f"{model_name} has no version {version}",
            hint="`mlops model show --json` lists the current versions' tags and aliases",
        ) from None
    change = ChampionChange(
        model_name=model_name,
        from_version=promote_to_champion(client, model_name, str(version)),
        to_version=str(version),
        how=how,
        actor=actor,
        reason=reason.strip(),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    audit = {"by": change.actor, "how": change.how, "reason": change.reason, "at": change.at}
    for key, value in {**audit, "from": change.from_version or "none"}.items():
        client.set_model_version_tag(
            model_name, str(version), f"{tag.CHAMPION_SET_PREFIX}{key}", value
        )
    return change


def rollback_champion(
    client: MlflowClient, model_name: str, *, actor: str, reason: str
) -> ChampionChange:
    """Move ``champion`` back to ``previous-champion``; the version rolled back from becomes
    ``previous-champion``, so a second rollback undoes the first."""
    from mlops_assets.errors import ModelNotFoundError

    previous = get_version_by_alias(client, model_name, PREVIOUS_CHAMPION)
    if previous is None:
        raise ModelNotFoundError(
            f"{model_name} has no {PREVIOUS_CHAMPION!r} version to roll back to",
            hint="a rollback needs an earlier champion; promote a version by hand instead",
        )
    return set_champion_by_hand(
        client, model_name, str(previous.version), actor=actor, reason=reason, how="rollback"
    )
