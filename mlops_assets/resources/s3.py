"""The S3 / MinIO flavours of the landing zone and the dataset store as resources, through
dagster-aws's `S3Resource`; the work is `core.storage.s3`'s.

Its own module because importing dagster-aws (and boto3) costs seconds: only a deployment
that keeps files on S3 pays for it.
"""

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from mlops_assets.core.intake.landing import LandingFile, Listing
from mlops_assets.core.storage.s3 import S3Landing, S3Store
from mlops_assets.resources.landing import LandingZone
from mlops_assets.resources.storage import DatasetStore


def _client(resource: "S3LandingZone | S3DatasetStore") -> Any:
    """The resource's boto3 client, made once: making one costs ~0.15 s of CPU, and a run that
    fetches many objects would otherwise spend seconds on it."""
    if resource._s3_client is None:
        resource._s3_client = resource.s3.get_client()
    return resource._s3_client


class S3LandingZone(LandingZone):
    """A landing zone under `s3://<bucket>/<prefix>`."""

    writes_are_atomic: ClassVar[bool] = True

    bucket: str
    prefix: str = ""
    s3: S3Resource
    _s3_client: Any = PrivateAttr(default=None)

    def _zone(self) -> S3Landing:
        return S3Landing(self.bucket, self.prefix, lambda: _client(self))

    @property
    def location(self) -> str:
        return self._zone().location

    def scan(self) -> Listing:
        return self._zone().scan()

    def content_version(self, file: LandingFile) -> str:
        # The ETag is the MD5 of the bytes for single-part uploads (and derived from them for
        # multipart ones): a content identity without downloading the object.
        return f"etag:{file.etag}"

    def local_copy(self, relative_path: str) -> AbstractContextManager[Path]:
        return self._zone().local_copy(relative_path)

    def put(self, source: Path, relative_path: str) -> None:
        self._zone().put(source, relative_path)


class S3DatasetStore(DatasetStore):
    """The dataset store under `root` = `s3://<bucket>/<prefix>`: keys are objects, read
    and written through a local mirror of the keys in use."""

    s3: S3Resource
    _s3_client: Any = PrivateAttr(default=None)

    def _store(self) -> S3Store:
        return S3Store(self.root, lambda: _client(self))

    def uri(self, key: str) -> str:
        return self._store().uri(key)

    def local_path(self, key: str) -> Path:
        return self._store().local_path(key)

    def exists(self, key: str) -> bool:
        return self._store().exists(key)

    def fetch(self, key: str) -> Path:
        return self._store().fetch(key)

    def fetch_tree(self, key: str, ending: str | tuple[str, ...] = "") -> Path:
        return self._store().fetch_tree(key, ending)

    def publish(self, key: str) -> None:
        self._store().publish(key)
