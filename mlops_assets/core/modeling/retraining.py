"""When to retrain: the state the retrain trigger keeps, and how long it waits after a failed
retrain before it tries again."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

FIRST_RETRY_WAIT = 30.0
MAX_RETRY_WAIT = 900.0


@dataclass(frozen=True)
class RetrainCursor:
    """``through``: the event-log id of the last ``contributed_data`` materialization a
    successful retrain has trained on; ``launched``: the id the retrain under way (or the last
    one launched) was asked to cover. Only a success moves ``through``, so a contribution is
    never given up because its retrain failed."""

    through: int | None = None
    launched: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> RetrainCursor:
        if not text:
            return cls()
        if text.isdigit():  # the cursor of earlier versions: the id itself
            return cls(through=int(text))
        stored = json.loads(text)
        return cls(stored.get("through"), stored.get("launched"))

    def dump(self) -> str:
        return json.dumps({"through": self.through, "launched": self.launched})

    def succeeded(self) -> RetrainCursor:
        """The launched retrain succeeded: everything it covered is trained on."""
        return replace(self, through=self.launched, launched=None)

    def launching(self, newest: int) -> RetrainCursor:
        return replace(self, launched=newest)

    def skipping(self, newest: int) -> RetrainCursor:
        """Nothing up to ``newest`` needs a retrain (no contribution accepted)."""
        return replace(self, through=newest)


def retry_wait(failures: int) -> float:
    """Seconds to wait after ``failures`` retrains in a row failed: 30 s, doubled each time,
    at most 15 min (an MLflow server down for an hour gets a dozen attempts, not hundreds)."""
    if failures <= 0:
        return 0.0
    return min(MAX_RETRY_WAIT, FIRST_RETRY_WAIT * 2 ** (failures - 1))


@dataclass(frozen=True)
class Ingested:
    """One ``contributed_data`` materialization the retrain trigger looks at."""

    storage_id: int
    partition: str
    accepted: bool


@dataclass(frozen=True)
class RetrainPlan:
    """What one tick of the retrain trigger does: request a retrain (covering everything
    ingested up to ``through``), or say why not; and the cursor to keep."""

    cursor: RetrainCursor
    skip_reason: str | None = None
    through: int | None = None
    attempt: int = 1
    accepted: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        more = f" and {len(self.accepted) - 5} more" if len(self.accepted) > 5 else ""
        return ", ".join(self.accepted[:5]) + more


def plan_retrain(
    cursor: RetrainCursor,
    ingested: list[Ingested],
    *,
    busy_intakes: int,
    busy_retrains: int,
    failures: int,
    seconds_since_failure: float,
) -> RetrainPlan:
    """Retrain once nothing is being ingested or retrained, when contributions were accepted
    since the last successful retrain, and not before the backoff after failures is over."""
    if not ingested:
        return RetrainPlan(cursor, "no contribution to train on")
    if busy_intakes or busy_retrains:
        return RetrainPlan(
            cursor,
            f"waiting: {busy_intakes} intake(s) still deciding and {busy_retrains} retrain(s) "
            "unfinished",
        )
    accepted = tuple(i.partition for i in ingested if i.accepted)
    newest = ingested[-1].storage_id
    if not accepted:
        return RetrainPlan(
            cursor.skipping(newest),
            f"{len(ingested)} contribution(s) ingested, none accepted: no retrain",
        )
    wait = retry_wait(failures) - seconds_since_failure
    if wait > 0:
        return RetrainPlan(
            cursor, f"{failures} retrain(s) failed in a row: trying again in {wait:.0f} s"
        )
    return RetrainPlan(
        cursor.launching(newest), through=newest, attempt=failures + 1, accepted=accepted
    )
