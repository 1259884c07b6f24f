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
