"""Merging the reference train part and accepted contributions into one training set.

Long on purpose: the merge strategies, the shuffles, the provenance columns and the
benchmark leak check are one contract on the training set's rows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.common.hashing import frame_sha256
from mlops_assets.core.common.row_matching import RowMatching, matched_earlier, near_pairs_sql
from mlops_assets.core.intake.readers import ROW_INDEX
from mlops_assets.task import TaskSchema

SOURCE = "source"
CONTRIBUTION_ID = "contribution_id"
CONTRIBUTOR = "contributor"
ROW_ID = "row_id"
SAMPLE_WEIGHT = "sample_weight"  # optional per-row weight column of a training frame
PROVENANCE_COLUMNS = (ROW_ID, SOURCE, CONTRIBUTION_ID, CONTRIBUTOR, ROW_INDEX)

REFERENCE_SOURCE = "reference"
CONTRIBUTION_SOURCE = "contribution"


STRATEGIES = ("append", "interleave", "weighted")
SHUFFLES = ("random", "stratified", "blocks", "none")


@dataclass(frozen=True)
class Contribution:
    """An accepted contribution's clean rows (task columns plus ``row_index``), and when it
    landed (seconds since the epoch): contributions are merged in that order."""

    contribution_id: str
    contributor: str
    rows: pd.DataFrame
    quality_score: float = 100.0
    landed_at: float = 0.0
    # When its intake looked up earlier rows, and when its outcome was recorded (from the
    # catalog): which intakes could not see each other. None: unknown, so compared with all.
    looked_up_at: float | None = None
    recorded_at: float | None = None

    @property
    def landing_order(self) -> tuple[float, str]:
        return (self.landed_at, self.contribution_id)


@dataclass(frozen=True)
class ContributedRows:
    """Accepted contributions' rows in one frame (the task's columns, ``row_index`` and
    ``contribution_id``) and each contribution's facts (``facts``: its ``rows`` left empty),
    in landing order: what a retrain reads from the catalog, with no frame per contribution,
    so that merging 100,000 contributions costs what merging their rows does."""

    rows: pd.DataFrame
    facts: list[Contribution]

    @classmethod
    def of(cls, contributions: list[Contribution]) -> ContributedRows:
        ordered = sorted(contributions, key=lambda c: c.landing_order)
        frames = [_indexed(c.rows).assign(**{CONTRIBUTION_ID: c.contribution_id}) for c in ordered]
        empty = pd.DataFrame(columns=[ROW_INDEX, CONTRIBUTION_ID])
        rows = pd.concat(frames, ignore_index=True) if frames else empty
        facts = [replace(c, rows=rows.iloc[0:0]) for c in ordered]
        return cls(rows, facts)

    def split(self) -> list[Contribution]:
        """One :class:`Contribution` per contribution, each with its rows."""
        groups = dict(tuple(self.rows.groupby(CONTRIBUTION_ID, sort=False)))
        return [
            replace(
                c,
                rows=groups.get(c.contribution_id, self.rows.iloc[0:0])
                .drop(columns=CONTRIBUTION_ID)
                .reset_index(drop=True),
            )
            for c in self.facts
        ]


def _indexed(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a ``row_index`` (its position, when it has none)."""
    return rows if ROW_INDEX in rows else rows.assign(**{ROW_INDEX: range(len(rows))})


@dataclass(frozen=True)
class AlreadyGiven:
    """Rows of a contribution that earlier rows had already brought (at the task's
    resolution), so it is not trained on them twice: how many of how many, by whom (an
    earlier contribution's id, or ``reference``), and that said in words."""

    contributor: str
    rows: int
    of: int
    by: dict[str, int]
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _given_sentence(rows: int, of: int, by: dict[str, int], landed: dict[str, Contribution]) -> str:
    """E.g. "32 of your 60 rows had already been given by alice at 2026-12-04 14:03:12 UTC"
    (``landed``: the contributions by id)."""
    from datetime import UTC, datetime

    givers = []
    for cid, count in sorted(by.items(), key=lambda item: (-item[1], item[0])):
        if cid == REFERENCE_SOURCE:
            who = "the reference data"
        else:
            at = datetime.fromtimestamp(landed[cid].landed_at, UTC)
            who = f"{landed[cid].contributor} at {at:%Y-%m-%d %H:%M:%S} UTC"
        givers.append(f"{who} ({count})" if len(by) > 1 else who)
    every = "all " if rows == of else ""
    return (
        f"{every}{rows} of your {of} rows had already been given by {', '.join(givers)}: "
        "not trained on twice, and worth nothing"
    )


@dataclass(frozen=True)
class MergePolicy:
    """How the sources are combined.

    ``append`` concatenates; ``interleave`` alternates rows source by source; ``weighted``
    caps contributed rows at ``max_contributed_share`` of the result (a stratified sample per
    contribution) and gives each row a ``sample_weight`` (its contribution's quality score /
    100, reference rows 1.0) that training uses. ``max_rows`` (0: no cap) samples the result
    down, stratified by class.

    ``shuffle``: ``random`` permutes all rows; ``stratified`` interleaves classes so any prefix
    keeps the class balance; ``blocks`` cuts the rows, in source order, into blocks of
    ``block_rows`` and shuffles the blocks and the rows inside each (a reader streaming the
    data block by block can reproduce it); ``none`` keeps source order.
    """

    strategy: str = "append"
    shuffle: str = "random"
    max_contributed_share: float = 0.5
    max_rows: int = 0
    block_rows: int = 65_536


@dataclass(frozen=True)
class IntegratedDataset:
    frame: pd.DataFrame
    sha256: str
    stats: dict[str, int] = field(default_factory=dict)
    rows_by_source: dict[str, int] = field(default_factory=dict)
    # Per contribution with rows that earlier ones had brought: how many, and by whom.
    already_given: dict[str, AlreadyGiven] = field(default_factory=dict)

    def to_metadata(
        self, contributions: list[Contribution] | ContributedRows, strategy: str
    ) -> dict[str, Any]:
        """What ``integrated_dataset`` records: its version (content hash), the contributions
        it holds rows of, in landing order, and the rows each one had been beaten to (when
        each landed is the catalog's to say: a copy here was megabytes at 100,000)."""
        if isinstance(contributions, ContributedRows):
            contributions = contributions.facts
        ordered = sorted(contributions, key=lambda c: c.landing_order)
        held = [c for c in ordered if c.contribution_id in self.rows_by_source]
        return {
            "sha256": self.sha256,
            "dagster/row_count": len(self.frame),
            "contributions": [c.contribution_id for c in held],
            "contributors": sorted({c.contributor for c in held}),
            "already_given": {cid: given.to_dict() for cid, given in self.already_given.items()},
            "rows_by_source": self.rows_by_source,
            "strategy": strategy,
            **self.stats,
        }


@dataclass(frozen=True)
class ClassBalance:
    """Whether a training set has enough rows and no class below its minimum share."""

    passed: bool
    description: str
    rows: int
    shares: dict[str, float]


def class_balance(
    labels: pd.Series, classes: tuple[str, ...], *, min_share: float, min_rows: int
) -> ClassBalance:
    """A flood of one class from contributions must not starve the others."""
    shares = {c: float((labels == c).mean()) if len(labels) else 0.0 for c in classes}
    too_small = {c: s for c, s in shares.items() if s < min_share}
    problems = [f"{c} is {s:.1%} of the rows" for c, s in too_small.items()]
    if len(labels) < min_rows:
        problems.append(f"{len(labels)} rows < {min_rows} required")
    return ClassBalance(
        passed=not problems,
        description="; ".join(problems)
        or f"{len(labels)} rows, every class at least {min_share:.0%}",
        rows=len(labels),
        shares={c: round(s, 4) for c, s in shares.items()},
    )


def integrate(
    reference_train: pd.DataFrame,
    contributions: list[Contribution] | ContributedRows,
    benchmark: pd.DataFrame,
    task: TaskSchema,
    *,
    seed: int,
    policy: MergePolicy | None = None,
    matching: RowMatching | None = None,
) -> IntegratedDataset:
    """Merge contributions into the reference train part by ``policy``, clean and order it.

    Rows are compared at the task's resolution (``matching``; by default inferred from the
    reference train part and the benchmark). Rows that match a benchmark row are removed (a
    contribution that copies benchmark rows must not inflate the score; see
    :func:`benchmark_overlap`). When the task takes identical rows for copies, the first to
    bring a row owns it: sources are taken in order (the reference first, then contributions
    by landing time) and a row matching an earlier one (any row of the reference; a row of
    the same class of a contribution) is dropped and counted against the contribution it
    came in (``already_given``). The rows are then ordered by the policy's shuffle with
    ``seed``. Every row carries a stable ``row_id`` of ``source:contribution_id:row_index``.
    """
    policy = policy or MergePolicy()
    _check_policy(policy)
    matching = matching or RowMatching.for_task(task, pd.concat([reference_train, benchmark]))
    batch = (
        contributions
        if isinstance(contributions, ContributedRows)
        else ContributedRows.of(contributions)
    )
    contributions = batch.facts
    parts = [_with_provenance(reference_train, REFERENCE_SOURCE, task.name, "", 1.0, task)]
    if len(batch.rows):
        parts.append(_contributed_with_provenance(batch, policy, task))
    merged = pd.concat(parts, ignore_index=True)
    del parts
    rows_in = len(merged)

    leaked = _leaked(merged, benchmark, task, matching)
    merged = _without(merged, leaked)
    duplicated = pd.Series(False, index=merged.index)
    already_given: dict[str, AlreadyGiven] = {}
    if task.drops_duplicates:  # with "keep", identical rows are observations: all are kept
        duplicated, already_given = _given_before(merged, task, matching, batch)
    merged = _without(merged, duplicated)
    capped = 0
    if policy.strategy == "weighted":
        merged, capped = _cap_contributed_share(merged, policy.max_contributed_share, task, seed)
    if policy.max_rows and len(merged) > policy.max_rows:
        capped += len(merged) - policy.max_rows
        merged = _stratified_sample(merged, policy.max_rows, task, seed)

    columns = [*task.columns, *PROVENANCE_COLUMNS, SAMPLE_WEIGHT]
    frame = _order(merged, policy, task, seed)[columns]
    del merged  # the peak of a retrain's memory is hashing: two million rows are not kept twice
    frame.index = pd.RangeIndex(len(frame))
    return IntegratedDataset(
        frame=frame,
        sha256=frame_sha256(frame),
        stats={
            "rows_in": rows_in,
            "benchmark_rows_removed": int(leaked.sum()),
            "duplicates_removed": int(duplicated.sum()),
            "rows_sampled_out": capped,
            "rows_out": len(frame),
        },
        rows_by_source={str(k): int(v) for k, v in frame[CONTRIBUTION_ID].value_counts().items()},
        already_given=already_given,
    )


def _without(frame: pd.DataFrame, dropped: pd.Series) -> pd.DataFrame:
    """``frame`` without the ``dropped`` rows (itself when there are none: no copy of a
    training set's millions of rows for nothing)."""
    return frame.loc[~dropped] if dropped.any() else frame


def _given_before(
    merged: pd.DataFrame,
    task: TaskSchema,
    matching: RowMatching,
    batch: ContributedRows,
) -> tuple[pd.Series, dict[str, AlreadyGiven]]:
    """Which rows of ``merged`` (in source order) an earlier row had brought, and per
    contribution how many, by whom, in words.

    Each intake has already refused the rows it could see were brought before (the reference
    and every contribution recorded before it looked); only the contributions some intake
    could not see (:func:`unseen_by_intake`) are compared here, with the reference, so a
    retrain costs what the races between intakes do, not every row against every other."""
    compared = unseen_by_intake(batch.facts)
    duplicated = pd.Series(False, index=merged.index)
    # The reference is always compared (with itself, too: it may hold a flower twice).
    reference = merged[SOURCE] == REFERENCE_SOURCE
    subset = (
        merged
        if compared is None
        else merged.loc[reference | merged[CONTRIBUTION_ID].isin(compared)]
    )
    rows = subset.assign(__order=range(len(subset)), __reference=subset[SOURCE] == REFERENCE_SOURCE)
    first = matched_earlier(
        rows, task, matching, order="__order", same_label_unless="__reference"
    ).to_numpy()
    duplicated.loc[subset.index] = first >= 0
    givers = subset[SOURCE].where(subset[SOURCE] == REFERENCE_SOURCE, subset[CONTRIBUTION_ID])
    taken = subset.loc[first >= 0].assign(__by=givers.to_numpy()[first[first >= 0]])
    sizes = batch.rows[CONTRIBUTION_ID].value_counts().to_dict()
    landed = {c.contribution_id: c for c in batch.facts}
    contributed = taken[taken[SOURCE] == CONTRIBUTION_SOURCE]
    # One count per (contribution, giver) for all of them at once.
    counts = contributed.groupby([CONTRIBUTION_ID, "__by"], sort=True).size()
    by_contribution: dict[str, dict[str, int]] = {}
    for (cid, giver), count in counts.items():
        by_contribution.setdefault(str(cid), {})[str(giver)] = int(count)
    already_given = {}
    for cid, by in by_contribution.items():
        rows, of = sum(by.values()), int(sizes[cid])
        sentence = _given_sentence(rows, of, by, landed)
        already_given[cid] = AlreadyGiven(landed[cid].contributor, rows, of, by, sentence)
    return duplicated, already_given


# Seconds of clock difference and commit delay: an intake is taken not to have seen the rows
# of a contribution recorded less than this before it looked up earlier rows.
UNSEEN_MARGIN = 60.0


def unseen_by_intake(facts: list[Contribution]) -> set[str] | None:
    """The contributions whose rows no intake compared: each one that landed after another
    whose outcome was recorded less than ``UNSEEN_MARGIN`` before it looked up earlier rows
    (the two intakes ran together, or the earlier file was taken in late), and those others.
    None when some contribution does not say when (all must be compared)."""
    if any(c.looked_up_at is None or c.recorded_at is None for c in facts):
        return None
    ordered = sorted(facts, key=lambda c: c.landing_order)
    unseen, latest = set(), -math.inf
    for c in ordered:
        if latest > c.looked_up_at - UNSEEN_MARGIN:  # type: ignore[operator]
            unseen.add(c.contribution_id)
        latest = max(latest, c.recorded_at)  # type: ignore[arg-type]
    # An earlier one is compared when it was recorded too late for a later one to see it.
    involved, threshold = set(unseen), math.inf
    for c in reversed(ordered):
        if c.recorded_at > threshold:  # type: ignore[operator]
            involved.add(c.contribution_id)
        if c.contribution_id in unseen:
            threshold = min(threshold, c.looked_up_at - UNSEEN_MARGIN)  # type: ignore[operator]
    return involved


def _check_policy(policy: MergePolicy) -> None:
    from mlops_assets.errors import ConfigurationError

    if policy.strategy not in STRATEGIES:
        raise ConfigurationError(
            f"unknown merge strategy {policy.strategy!r}", hint=f"use one of {STRATEGIES}"
        )
    if policy.shuffle not in SHUFFLES:
        raise ConfigurationError(
            f"unknown shuffle {policy.shuffle!r}", hint=f"use one of {SHUFFLES}"
        )
    if policy.block_rows < 1:
        raise ConfigurationError(
            f"block_rows={policy.block_rows} must be at least 1", hint="use e.g. 65536"
        )
    if not 0.0 <= policy.max_contributed_share < 1.0:
        raise ConfigurationError(
            f"max_contributed_share={policy.max_contributed_share} is outside [0, 1)",
            hint="use a share such as 0.5",
        )


def _stratified_sample(frame: pd.DataFrame, n: int, task: TaskSchema, seed: int) -> pd.DataFrame:
    """``n`` rows keeping each class's share (largest remainders get the leftover rows)."""
    if n <= 0:
        return frame.iloc[0:0]
    counts = frame[task.label].value_counts()
    exact = counts * n / len(frame)
    take = exact.astype(int)
    leftover = n - int(take.sum())
    take[(exact - take).sort_values(ascending=False).index[:leftover]] += 1
    return pd.concat(
        group.sample(n=int(take[label]), random_state=seed)
        for label, group in frame.groupby(task.label, sort=True)
    )


def _cap_contributed_share(
    frame: pd.DataFrame, share: float, task: TaskSchema, seed: int
) -> tuple[pd.DataFrame, int]:
    """Sample contributed rows down so they are at most ``share`` of the result."""
    contributed = frame[SOURCE] == CONTRIBUTION_SOURCE
    reference_rows = int((~contributed).sum())
    allowed = int(share * reference_rows / (1 - share))
    if contributed.sum() <= allowed:
        return frame, 0
    sampled = _stratified_sample(frame.loc[contributed], allowed, task, seed)
    return pd.concat([frame.loc[~contributed], sampled]), int(contributed.sum()) - allowed


def _order(frame: pd.DataFrame, policy: MergePolicy, task: TaskSchema, seed: int) -> pd.DataFrame:
    if policy.strategy == "interleave":
        # Alternate sources: the k-th row of every source before the (k+1)-th of any; the
        # shuffle, if any, applies within each source.
        if policy.shuffle != "none":
            frame = frame.sample(frac=1.0, random_state=seed)
        rank = frame.groupby(CONTRIBUTION_ID, sort=False).cumcount()
        order = frame.assign(_rank=rank).sort_values(["_rank", CONTRIBUTION_ID], kind="stable")
        return order.drop(columns="_rank")
    if policy.shuffle == "random":
        # Shuffled as `frame.sample` would, by position: one take of the wide frame, not two.
        return frame.iloc[_sampled_positions(len(frame), seed)]
    in_source_order = frame.sort_values([SOURCE, CONTRIBUTION_ID, ROW_INDEX], kind="stable")
    if policy.shuffle == "none":
        return in_source_order
    if policy.shuffle == "blocks":
        rng = np.random.default_rng(seed)
        block = np.arange(len(frame)) // policy.block_rows
        block_rank = rng.permutation(int(block[-1]) + 1 if len(block) else 0)[block]
        return in_source_order.iloc[np.lexsort((rng.random(len(frame)), block_rank))]
    # Stratified: classes interleaved in proportion, so any prefix keeps the class balance.
    shuffled = _sampled_positions(len(frame), seed)
    labels = frame[task.label].iloc[shuffled]
    position = labels.groupby(labels, sort=False).cumcount()
    size = labels.groupby(labels, sort=False).transform("size")
    return frame.iloc[shuffled[np.argsort(((position + 0.5) / size).to_numpy(), kind="stable")]]


def _sampled_positions(n: int, seed: int) -> np.ndarray:
    """The permutation ``frame.sample(frac=1.0, random_state=seed)`` takes of ``n`` rows."""
    return pd.Series(np.arange(n)).sample(frac=1.0, random_state=seed).to_numpy()


def accepted_contributions(
    rows: pd.DataFrame, facts: list[Contribution], *, max_rows: int, seed: int
) -> ContributedRows:
    """The accepted contributions, from ``rows`` (every accepted row, with ``row_index`` and
    ``contribution_id``, in landing order, as the catalog holds them) and ``facts`` (each
    contribution, its rows left empty), at most ``max_rows`` rows in all (0: no cap).

    Past the cap each contribution keeps the same fraction of its rows, chosen by a seeded
    hash of the row index.
    """
    if max_rows and len(rows) > max_rows:
        keep = max_rows / len(rows)
        hashed = pd.util.hash_pandas_object(
            pd.DataFrame({"i": rows[ROW_INDEX].to_numpy(), "s": seed}), index=False
        ).to_numpy()
        rows = rows.loc[(hashed % 1_000_000) < int(keep * 1_000_000)].reset_index(drop=True)
    return ContributedRows(rows, sorted(facts, key=lambda c: c.landing_order))


def benchmark_overlap(
    frame: pd.DataFrame,
    benchmark: pd.DataFrame,
    task: TaskSchema,
    matching: RowMatching | None = None,
) -> int:
    """Number of rows of the training set ``frame`` that leak the benchmark (see
    :func:`_leaked`), at the resolution of ``matching`` (by default inferred from the
    benchmark's own values)."""
    matching = matching or RowMatching.for_task(task, benchmark)
    return int(_leaked(frame, benchmark, task, matching).sum())


def _leaked(
    frame: pd.DataFrame, benchmark: pd.DataFrame, task: TaskSchema, matching: RowMatching
) -> pd.Series:
    """Rows of ``frame`` (with provenance) that match a benchmark row, whatever their class.
    When the task takes identical rows for real observations, the reference's own rows are
    not: its split put one observation in the benchmark and another, alike, in the train
    part."""
    leaked = _matches(frame, benchmark, task, matching)
    if not task.drops_duplicates:
        leaked &= frame[SOURCE] == CONTRIBUTION_SOURCE
    return leaked


def _contributed_with_provenance(
    batch: ContributedRows, policy: MergePolicy, task: TaskSchema
) -> pd.DataFrame:
    """Every contributed row with its provenance (see :func:`_with_provenance`), in landing
    order, computed for all rows at once."""
    facts = {c.contribution_id: c for c in batch.facts}
    rows = batch.rows
    order = {cid: rank for rank, cid in enumerate(facts)}
    rank = rows[CONTRIBUTION_ID].map(order)
    if not rank.is_monotonic_increasing:  # the catalog and its snapshot give landing order
        rows = rows.loc[rank.sort_values(kind="stable").index]
    frame = rows[task.columns].reset_index(drop=True)
    cids = rows[CONTRIBUTION_ID].astype(str).to_numpy()
    frame[ROW_INDEX] = rows[ROW_INDEX].astype("int64").to_numpy()
    frame[SOURCE] = CONTRIBUTION_SOURCE
    frame[CONTRIBUTION_ID] = cids
    frame[CONTRIBUTOR] = pd.Series(cids).map({k: c.contributor for k, c in facts.items()})
    # Each id built once (vectorised string addition makes every intermediate string too).
    indices = frame[ROW_INDEX].tolist()
    frame[ROW_ID] = [f"{CONTRIBUTION_SOURCE}:{c}:{i}" for c, i in zip(cids, indices, strict=True)]
    weighted = policy.strategy == "weighted"
    weights = {k: c.quality_score / 100 if weighted else 1.0 for k, c in facts.items()}
    frame[SAMPLE_WEIGHT] = pd.Series(cids).map(weights).astype(float)
    return frame


def _with_provenance(
    rows: pd.DataFrame,
    source: str,
    contribution_id: str,
    contributor: str,
    weight: float,
    task: TaskSchema,
) -> pd.DataFrame:
    frame = rows[task.columns].copy()
    index = rows[ROW_INDEX] if ROW_INDEX in rows else pd.Series(range(len(rows)), index=rows.index)
    frame[ROW_INDEX] = index.astype("int64").to_numpy()
    frame[SOURCE] = source
    frame[CONTRIBUTION_ID] = contribution_id
    frame[CONTRIBUTOR] = contributor
    frame[ROW_ID] = f"{source}:{contribution_id}:" + frame[ROW_INDEX].astype(str)
    frame[SAMPLE_WEIGHT] = float(weight)
    return frame


def _matches(
    frame: pd.DataFrame, other: pd.DataFrame, task: TaskSchema, matching: RowMatching
) -> pd.Series:
    """Whether each row of ``frame`` matches some row of ``other`` (features only)."""
    import duckdb

    if other.empty or frame.empty:
        return pd.Series(False, index=frame.index)
    rows = frame[task.columns].reset_index(drop=True).assign(row_id=range(len(frame)))
    # Matching is symmetric: the smaller side (the benchmark) looks up its neighbouring cells
    # in the larger, not each of a million training rows in the benchmark's.
    others = other[task.columns].reset_index(drop=True).assign(row_id=range(len(other)))
    pairs = near_pairs_sql(
        task, matching, "other_rows", "frame_rows", same_label=False, build_id="row_id"
    )
    with duckdb.connect() as db:
        db.register("frame_rows", rows)
        db.register("other_rows", others)
        hits = db.execute(f"SELECT DISTINCT build_id FROM ({pairs})").fetchnumpy()["build_id"]
    found = np.zeros(len(frame), dtype=bool)
    found[hits.astype(np.int64)] = True
    return pd.Series(found, index=frame.index)
