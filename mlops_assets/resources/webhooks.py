"""Webhook events of the registry, through the outbox."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from mlops_assets.core.registry.webhooks import DeliveryPolicy, VersionEvent


class Webhooks(dg.ConfigurableResource):
    """Standard Webhooks for registry events to `url` (off when unset), signed with
    `secret` (`MLOPS_WEBHOOK_SECRET`: one or more space-separated `whsec_` secrets, given
    as an `EnvVar` so the UI never shows it). Every event waits in `outbox` until a
    receiver takes it; see `mlops_assets.core.registry.webhooks`."""

    url: str | None = None
    secret: str | None = None
    outbox: str
    timeout_seconds: float = 5.0
    max_age_seconds: float

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.secret)

    def _policy(self, timeout: float | None = None) -> "DeliveryPolicy":
        from mlops_assets.core.registry.webhooks import DeliveryPolicy

        return DeliveryPolicy(timeout=timeout or self.timeout_seconds, max_age=self.max_age_seconds)

    def send(self, event_type: str, data: dict[str, Any], *, timeout: float = 2.0) -> str | None:
        """Queue the event, then try it once within `timeout` seconds (a slow receiver does
        not hold up the caller); a line for the log, None when webhooks are off."""
        if not self.enabled:
            return None
        from mlops_assets.core.registry.webhooks import Outbox, WebhookEvent, parse_secrets, send

        assert self.url is not None and self.secret is not None
        return send(
            Outbox(Path(self.outbox)),
            self.url,
            parse_secrets(self.secret),
            WebhookEvent.new(event_type, data),
            self._policy(timeout),
        )

    def announce(self, event: "VersionEvent") -> list[str]:
        """Send every event `event` is (see `VersionEvent.types`); lines for the log."""
        lines = [self.send(event_type, event.data()) for event_type in event.types()]
        return [line for line in lines if line]

    def deliver_due(self) -> dict[str, int] | None:
        """Try every queued event whose next attempt is due; None when webhooks are off."""
        if not self.enabled:
            return None
        from mlops_assets.core.registry.webhooks import Outbox, deliver_due, parse_secrets

        assert self.url is not None and self.secret is not None
        return deliver_due(
            Outbox(Path(self.outbox)), self.url, parse_secrets(self.secret), self._policy()
        )
