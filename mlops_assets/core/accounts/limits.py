"""In-process rate limits: how many times a key (an account, a client address) may do
something in a window. One process serves the upload API, so its memory is the count; keys
that fall quiet are forgotten, so a flood of addresses cannot grow it without bound."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from mlops_assets.errors import RateLimitedError

MAX_KEYS = 100_000


class RateLimit:
    """At most ``limit`` events per ``window`` seconds for each key (a sliding window)."""

    def __init__(
        self, limit: int, window: float, *, what: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.what, self._clock = limit, window, what, clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        return events

    def check(self, key: str) -> None:
        """Raise :class:`RateLimitedError` when ``key`` has used up its window (nothing is
        counted: :meth:`hit` counts)."""
        with self._lock:
            now = self._clock()
            events = self._recent(key, now)
            if len(events) >= self.limit:
                wait = max(1.0, events[0] + self.window - now)
                raise RateLimitedError(
                    f"too many {self.what}: at most {self.limit} in {self.window:.0f} s",
                    hint=f"wait {wait:.0f} s",
                    retry_after=wait,
                )

    def hit(self, key: str) -> None:
        """Count one event of ``key``."""
        with self._lock:
            now = self._clock()
            if len(self._events) >= MAX_KEYS:
                self._forget_quiet(now)
            self._recent(key, now).append(now)

    def _forget_quiet(self, now: float) -> None:
        for key in [k for k, e in self._events.items() if not e or e[-1] <= now - self.window]:
            del self._events[key]
        if len(self._events) >= MAX_KEYS:  # all busy: the oldest go
            for key in list(self._events)[: MAX_KEYS // 10]:
                del self._events[key]
