"""The S3 / MinIO flavour of the landing zone, through dagster-aws's ``S3Resource``.

Its own module because importing dagster-aws (and boto3) costs seconds: only a deployment
whose landing zone is on S3 pays for it.
"""

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from dagster_aws.s3 import S3Resource

from mlops_assets.defs.resources import LandingFile, LandingZone, is_contribution_name


class S3LandingZone(LandingZone):
    """A landing zone under ``s3://<bucket>/<prefix>``."""

    writes_are_atomic: ClassVar[bool] = True

    bucket: str
    prefix: str = ""
    s3: S3Resource

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, relative_path: str) -> str:
        if ".." in relative_path.split("/") or relative_path.startswith("/"):
            raise ValueError(f"{relative_path!r} is outside the landing zone")
        return f"{self.prefix.strip('/')}/{relative_path}".lstrip("/")

    def list_files(self) -> list[LandingFile]:
        # The paginator follows continuation tokens, so zones past 1,000 keys are listed whole.
        prefix = f"{self.prefix.strip('/')}/".lstrip("/")
        pages = (
            self.s3.get_client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        files = []
        for page in pages:
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :]
                parts = relative.split("/")
                if len(parts) != 2 or not parts[0] or not is_contribution_name(parts[1]):
                    continue
                files.append(
                    LandingFile(
                        relative_path=relative,
                        contributor=parts[0],
                        name=parts[1],
                        size=item["Size"],
                        mtime=item["LastModified"].timestamp(),
                        etag=item["ETag"].strip('"'),
                    )
                )
        return sorted(files, key=lambda f: (f.mtime, f.relative_path))

    def content_version(self, file: LandingFile) -> str:
        # The ETag is the MD5 of the bytes for single-part uploads (and derived from them for
        # multipart ones): a content identity without downloading the object.
        return f"etag:{file.etag}"

    @contextlib.contextmanager
    def local_copy(self, relative_path: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="mlops-landing-") as tmp:
            path = Path(tmp) / Path(relative_path).name
            self.s3.get_client().download_file(self.bucket, self._key(relative_path), str(path))
            yield path

    def put(self, source: Path, relative_path: str) -> None:
        self.s3.get_client().upload_file(str(source), self.bucket, self._key(relative_path))
