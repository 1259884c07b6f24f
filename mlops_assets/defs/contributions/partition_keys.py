"""The `contributions` partition keys a tick compares the landing zone with: kept in the code
server between ticks and read incrementally, by storage id, so a tick over a zone of 100,000
taken files reads the few keys added since the last one, not all 100,000."""

import threading
from dataclasses import dataclass

import dagster as dg
from dagster._serdes import serialize_value

# Read whole again at least this often: a partition deleted from the instance is forgotten
# within this (it is the only change an incremental read cannot see).
REREAD_SECONDS = 300.0
_PAGE = 10_000


@dataclass
class _Keys:
    keys: set[str]
    cursor: str | None  # the storage id read up to
    read_whole_at: float


_remembered: dict[str, _Keys] = {}
_lock = threading.Lock()


def known_partitions(instance: dg.DagsterInstance, name: str, now: float) -> set[str]:
    """Every partition key of the dynamic partitions ``name`` in ``instance`` (do not change
    the set: the next tick starts from it)."""
    try:
        # The instance is made anew for each tick from the same reference: it names it.
        identity = f"{name}\n{serialize_value(instance.get_ref())}"
    except Exception:  # an instance of this process alone (tests): nothing to remember
        return set(instance.get_dynamic_partitions(name))
    with _lock:
        known = _remembered.get(identity)
        if known is None or now - known.read_whole_at >= REREAD_SECONDS:
            # The newest id first, then every key: a key added between the two is read twice,
            # never missed.
            newest = instance.get_paginated_dynamic_partitions(name, limit=1, ascending=False)
            known = _Keys(set(instance.get_dynamic_partitions(name)), newest.cursor, now)
            _remembered[identity] = known
        while True:
            page = instance.get_paginated_dynamic_partitions(
                name, limit=_PAGE, ascending=True, cursor=known.cursor
            )
            known.keys.update(page.results)
            known.cursor = page.cursor
            if not page.has_more:
                return known.keys
