"""The pre-check: a file judged exactly as the pipeline's intake would judge it, before it is
submitted (`mlops check`, `mlops submit`, the upload API)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets.core.data.reference_data import benchmark_split, load_reference_data
from mlops_assets.core.intake.intake import intake_contribution
from mlops_assets.core.intake.limits import IntakeLimits
from mlops_assets.core.intake.report import ContributionReport, IntakePolicy

if TYPE_CHECKING:
    from mlops_assets.core.data.reference_data import BenchmarkSplit
    from mlops_assets.settings import Settings
    from mlops_assets.task import TaskSchema


@dataclass
class Prechecker:
    """Judges files against ``task``'s reference data (``reference``, split as the pipeline
    splits it), under the pipeline's policy and limits. The split is made once, on first
    use: a long-lived server checks many files."""

    task: TaskSchema
    reference: str
    benchmark_fraction: float
    seed: int
    policy: IntakePolicy
    limits: IntakeLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> Prechecker:
        """The pre-check of a deployment: its task, reference data, split, policy and limits
        (what the pipeline's `IntakeSettings` resource holds, read without Dagster, whose
        import alone is seconds a contributor would wait on every check)."""
        return cls(
            settings.task,
            settings.reference,
            settings.benchmark_fraction,
            settings.seed,
            policy=IntakePolicy(
                min_valid_share=settings.min_valid_share,
                min_quality=settings.min_quality,
                min_rows=settings.min_rows,
                keep_outliers=settings.keep_outliers,
            ),
            limits=IntakeLimits(
                max_bytes=settings.max_decompressed_bytes,
                max_ratio=settings.max_compression_ratio,
                timeout_seconds=settings.intake_timeout,
            ),
        )

    def __post_init__(self) -> None:
        self._split: BenchmarkSplit | None = None
        self._lock = threading.Lock()

    def split(self) -> BenchmarkSplit:
        with self._lock:
            if self._split is None:
                self._split = benchmark_split(
                    load_reference_data(self.reference, self.task),
                    self.task,
                    fraction=self.benchmark_fraction,
                    seed=self.seed,
                )
            return self._split

    def check(self, path: Path, contributor: str) -> ContributionReport:
        """The report the pipeline would write for ``path`` (raises when it cannot be read)."""
        split = self.split()
        return intake_contribution(
            path,
            self.task,
            reference=split.train,
            # A private benchmark is never compared before training: which rows were refused
            # would tell a contributor which rows it holds.
            benchmark=None if self.task.private_benchmark else split.benchmark,
            contribution_id=path.name,
            contributor=contributor,
            policy=self.policy,
            limits=self.limits,
        )
