"""The S3 / MinIO flavours of the landing zone and the dataset store, on a boto3 client.

Its own module because importing boto3 costs seconds: only a deployment that keeps files on
S3 pays for it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from mlops_assets.core.common.names import safe_text
from mlops_assets.core.intake.landing import (
    OLDEST_FIRST,
    LandingFile,
    Listing,
    RefusedEntry,
    entry_problem,
    is_waiting,
    refused,
)
from mlops_assets.errors import StorageUnavailableError


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client as dagster-aws's ``S3Resource`` makes one (credentials and region
    from the environment, 5 attempts), for ``endpoint_url`` when given (MinIO): the command
    line's, which does not load Dagster."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def _error_code(exc: BaseException | None) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


@contextlib.contextmanager
def storage_errors(location: str) -> Iterator[None]:
    """S3 failures a user can fix, as ``STORAGE_UNAVAILABLE`` naming the place and the fix."""
    try:
        yield
    except (ClientError, S3UploadFailedError, BotoCoreError) as exc:
        # upload_file wraps the ClientError it caught; the code is on that one.
        code = _error_code(exc) or _error_code(exc.__context__)
        if code == "NoSuchBucket":
            raise StorageUnavailableError(
                f"the bucket of {location} does not exist",
                hint="create it (compose's create-bucket service does) or fix the URI",
            ) from exc
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            raise StorageUnavailableError(
                f"{location} refused the credentials ({code})",
                hint="check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ) from exc
        if isinstance(exc, BotoCoreError):
            raise StorageUnavailableError(
                f"{location} cannot be reached ({exc})",
                hint="check MLOPS_S3_ENDPOINT_URL and that the S3 server is up",
            ) from exc
        raise


def _key_problem(relative: str) -> str | None:
    """Why an object key (relative to the zone's prefix) is no contribution: an absolute path,
    ``..`` segments, or anything but ``<contributor>/<file>`` with safe names."""
    if relative.startswith("/") or ".." in relative.split("/"):
        return "a path that leaves the landing zone"
    return entry_problem(relative.split("/"))


def _objects(client: Any, bucket: str, prefix: str) -> Iterator[dict]:
    """Every object under ``prefix``: the paginator follows continuation tokens, so prefixes
    past 1,000 keys are listed whole."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


class S3Landing:
    """A landing zone under ``s3://<bucket>/<prefix>``; ``client()`` gives the boto3 client."""

    def __init__(self, bucket: str, prefix: str, client: Callable[[], Any]) -> None:
        self.bucket, self.prefix, self._client = bucket, prefix, client

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, relative_path: str) -> str:
        from mlops_assets.errors import LandingEntryRefusedError

        if problem := _key_problem(relative_path):
            raise LandingEntryRefusedError(
                f"{safe_text(relative_path, limit=200)} in the landing zone is refused: {problem}",
                hint="put the file at <contributor>/<file>",
            )
        return f"{self.prefix.strip('/')}/{relative_path}".lstrip("/")

    def scan(self) -> Listing:
        prefix = f"{self.prefix.strip('/')}/".lstrip("/")
        files: list[LandingFile] = []
        refusals: list[RefusedEntry] = []
        with storage_errors(self.location):
            for item in _objects(self._client(), self.bucket, prefix):
                relative = item["Key"][len(prefix) :]
                if is_waiting(relative.rsplit("/", 1)[-1]):
                    continue
                if problem := _key_problem(relative):
                    refusals.append(refused(relative, problem))
                    continue
                contributor, name = relative.split("/")
                files.append(
                    LandingFile(
                        relative_path=relative,
                        contributor=contributor,
                        name=name,
                        size=item["Size"],
                        mtime=item["LastModified"].timestamp(),
                        etag=item["ETag"].strip('"'),
                    )
                )
        return Listing(
            sorted(files, key=OLDEST_FIRST),
            sorted(refusals, key=lambda r: r.relative_path),
            oldest_first=True,
        )

    @contextlib.contextmanager
    def local_copy(self, relative_path: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="mlops-landing-") as tmp:
            path = Path(tmp) / Path(relative_path).name
            with storage_errors(self.location):
                self._client().download_file(self.bucket, self._key(relative_path), str(path))
            yield path

    def exists(self, relative_path: str) -> bool:
        with storage_errors(self.location):
            try:
                self._client().head_object(Bucket=self.bucket, Key=self._key(relative_path))
            except ClientError as exc:
                if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        return True

    def put(self, source: Path, relative_path: str) -> None:
        with storage_errors(self.location):
            self._client().upload_file(str(source), self.bucket, self._key(relative_path))

    def remove(self, relative_path: str) -> None:
        with storage_errors(self.location):
            self._client().delete_object(Bucket=self.bucket, Key=self._key(relative_path))


_scratch: Path | None = None


def _process_scratch() -> Path:
    """One scratch folder per process, removed when it exits. A run is one process, so runs
    never share a mirror, and every run reads what is stored now."""
    global _scratch
    if _scratch is None:
        # Named like every scratch folder: a killed run's mirror is swept by the next intake.
        _scratch = Path(tempfile.mkdtemp(prefix=f"mlops-{os.getpid()}-store-"))
        atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


class S3Store:
    """The dataset store under ``root`` = ``s3://<bucket>/<prefix>``: keys are objects, read
    and written through a local mirror of the keys in use."""

    def __init__(self, root: str, client: Callable[[], Any]) -> None:
        self.root, self._client = root, client

    @property
    def _bucket(self) -> str:
        return self.root.removeprefix("s3://").partition("/")[0]

    def _object_key(self, key: str) -> str:
        prefix = self.root.removeprefix("s3://").partition("/")[2].strip("/")
        return f"{prefix}/{key}".lstrip("/")

    def uri(self, key: str) -> str:
        return f"s3://{self._bucket}/{self._object_key(key)}"

    def local_path(self, key: str) -> Path:
        return _process_scratch().joinpath(self._bucket, *self._object_key(key).split("/"))

    def _head(self, key: str) -> dict | None:
        with storage_errors(self.root):
            try:
                return self._client().head_object(Bucket=self._bucket, Key=self._object_key(key))
            except ClientError as exc:
                if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def fetch(self, key: str) -> Path:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(f"{self.uri(key)} does not exist")
        path = self.local_path(key)
        self._download(self._object_key(key), path, head["ContentLength"], head["LastModified"])
        return path

    def fetch_tree(self, key: str, ending: str | tuple[str, ...] = "") -> Path:
        root, prefix = self.local_path(key), f"{self._object_key(key)}/"
        fetched = set()
        with storage_errors(self.root):
            for item in _objects(self._client(), self._bucket, prefix):
                if item["Key"].endswith(ending):
                    path = root.joinpath(*item["Key"][len(prefix) :].split("/"))
                    self._download(item["Key"], path, item["Size"], item["LastModified"])
                    fetched.add(path)
        # What was deleted from the bucket since an earlier fetch must not linger here.
        for path in root.rglob("*") if root.is_dir() else ():
            if path.is_file() and path.name.endswith(ending) and path not in fetched:
                path.unlink()
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _download(self, object_key: str, path: Path, size: int, modified: datetime) -> None:
        mtime = modified.timestamp()
        if path.is_file() and path.stat().st_size == size and path.stat().st_mtime == mtime:
            return  # fetched before and unchanged since
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.download")
        with storage_errors(self.root):
            self._client().download_file(self._bucket, object_key, str(tmp))
        os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)

    def remove(self, key: str) -> None:
        """Delete the stored file ``key`` (and the local mirror's copy); gone already is fine."""
        self.local_path(key).unlink(missing_ok=True)
        with storage_errors(self.root):
            self._client().delete_object(Bucket=self._bucket, Key=self._object_key(key))

    def publish(self, key: str) -> None:
        """Upload ``local_path(key)``. A folder replaces the stored one: its JSON files go
        last, since readers find a contribution by its ``report.json``, then the objects the
        new folder no longer has are deleted."""
        path = self.local_path(key)
        with storage_errors(self.root):
            client = self._client()
            if not path.is_dir():
                client.upload_file(str(path), self._bucket, self._object_key(key))
                return
            files = sorted(
                (p for p in path.rglob("*") if p.is_file()),
                key=lambda p: (p.suffix == ".json", p),
            )
            uploaded = set()
            for file in files:
                object_key = self._object_key(f"{key}/{file.relative_to(path).as_posix()}")
                client.upload_file(str(file), self._bucket, object_key)
                uploaded.add(object_key)
            for item in _objects(client, self._bucket, f"{self._object_key(key)}/"):
                if item["Key"] not in uploaded:
                    client.delete_object(Bucket=self._bucket, Key=item["Key"])
