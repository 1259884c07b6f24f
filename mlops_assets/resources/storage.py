"""The dataset store: where datasets live as Parquet (and contribution reports as JSON)."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import dagster as dg

from mlops_assets.core.common import layout

if TYPE_CHECKING:
    import pandas as pd


class DatasetStore(dg.ConfigurableResource, ABC):
    """Datasets under `root`, a folder or a bucket, every one addressed by a key relative to
    it (`reference/train.parquet`).

    Code reads and writes local files: `fetch` gives the local path of a stored file,
    `fetch_tree` of a stored folder, `local_path` where to write one, and `publish`
    stores what was written there.
    """

    # The keys (`core/common/layout`).
    REFERENCE_TRAIN: ClassVar[str] = layout.REFERENCE_TRAIN
    BENCHMARK: ClassVar[str] = layout.BENCHMARK
    CONTRIBUTIONS: ClassVar[str] = layout.CONTRIBUTIONS
    ORIGINALS: ClassVar[str] = layout.ORIGINALS
    SCOREBOARD: ClassVar[str] = layout.SCOREBOARD
    ACCEPTED_ROWS: ClassVar[str] = layout.ACCEPTED_ROWS
    TASK: ClassVar[str] = layout.TASK

    root: str

    @staticmethod
    def contribution(contribution_id: str, file: str = "") -> str:
        """The key of a contribution's folder, or of `file` in it."""
        return layout.contribution(contribution_id, file)

    @staticmethod
    def integrated(sha256: str) -> str:
        return layout.integrated(sha256)

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where `key` is stored, for metadata and messages."""

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """Where to write `key` locally before `publish`."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def fetch(self, key: str) -> Path:
        """A local path holding the stored file `key`."""

    @abstractmethod
    def fetch_tree(self, key: str, ending: str | tuple[str, ...] = "") -> Path:
        """A local folder holding the stored files under `key` (those whose names end in
        `ending`, when given)."""

    @abstractmethod
    def publish(self, key: str) -> None:
        """Store what was written at `local_path(key)`: a file, or a folder replacing the
        stored one."""

    def read_frame(self, key: str) -> "pd.DataFrame":
        import pandas as pd

        return pd.read_parquet(self.fetch(key))

    def write_frame(self, frame: "pd.DataFrame", key: str) -> None:
        """Store `frame` (without its index) as Parquet; readers never see half of it."""
        from mlops_assets.core.common.storage import write_parquet

        write_parquet(frame, self.local_path(key))
        self.publish(key)

    def snapshot(self, key: str) -> "StoredSnapshot":
        """The frame at `key` as a cache: read when there, written whole."""
        return StoredSnapshot(self, key)

    def claim_for_task(self, name: str) -> None:
        """Record that this store holds task `name`'s data, refusing when it holds another
        task's (its datasets, models and attestations would be mixed or overwritten)."""
        from mlops_assets.core.common.storage import read_json, write_json
        from mlops_assets.errors import ConfigurationError

        if self.exists(self.TASK):
            held = read_json(self.fetch(self.TASK)).get("task")
            if held != name:
                raise ConfigurationError(
                    f"{self.uri('')} holds the {held!r} task's data, and MLOPS_TASK names {name!r}",
                    hint="give this task its own MLOPS_HOME (or MLOPS_STORAGE_URI and "
                    f"MLOPS_LANDING_URI), or set MLOPS_TASK back to the {held!r} task file",
                )
            return
        write_json({"task": name}, self.local_path(self.TASK))
        self.publish(self.TASK)

    def write_dataset(self, frame: "pd.DataFrame", sha256: str) -> str:
        """Store a training set under its content hash; returns its URI."""
        key = self.integrated(sha256)
        self.write_frame(frame, key)
        return self.uri(key)


@dataclass(frozen=True)
class StoredSnapshot:
    """A cached frame in the dataset store (`core.catalog.snapshot.SnapshotFile`)."""

    store: DatasetStore
    key: str

    def read(self) -> "pd.DataFrame | None":
        return self.store.read_frame(self.key) if self.store.exists(self.key) else None

    def write(self, frame: "pd.DataFrame") -> None:
        self.store.write_frame(frame, self.key)


class LocalDatasetStore(DatasetStore):
    """The store in a local folder: every key is a file under `root`, written in place
    atomically, so fetching and publishing have nothing to do."""

    def uri(self, key: str) -> str:
        return str(self.local_path(key))

    def local_path(self, key: str) -> Path:
        return Path(self.root).joinpath(*key.split("/"))

    def exists(self, key: str) -> bool:
        return self.local_path(key).exists()

    def fetch(self, key: str) -> Path:
        return self.local_path(key)

    def fetch_tree(self, key: str, ending: str | tuple[str, ...] = "") -> Path:
        return self.local_path(key)

    def publish(self, key: str) -> None:
        pass
