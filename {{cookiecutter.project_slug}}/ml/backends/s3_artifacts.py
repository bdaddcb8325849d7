"""Artifacts in S3, keyed by content hash: s3://<artifacts bucket>/sha256/<hash>/<name>.

Every object is written with SSE-KMS under the stack's key. A reader only ever learns a
URI after the upload has completed, and S3 makes an object (multipart or not) visible
only once it is whole, so no half-written object is ever referenced.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from ml.errors import ArtifactError
from ml.hashing import file_sha256

MULTIPART_THRESHOLD = 64 * 1024 * 1024  # above this, boto3's transfer manager uploads in parallel parts


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


class S3ArtifactStore:
    def __init__(self, s3: Any, bucket: str, kms_key_arn: str) -> None:
        from boto3.s3.transfer import TransferConfig

        self._s3 = s3
        self.bucket = bucket
        self._kms = kms_key_arn
        self._transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=16 * 1024 * 1024)

    @property
    def client(self) -> Any:
        """The S3 client, for reading outside the artifact bucket (an S3 [data].source: ml/data_source.py)."""
        return self._s3

    def put(self, path: Path) -> str:
        digest = file_sha256(path)
        key = f"sha256/{digest}/{path.name}"
        uri = f"s3://{self.bucket}/{key}"
        if self.exists(uri):  # same hash, same bytes: storing twice is a no-op
            return uri
        self._upload(path, key, {"Metadata": {"sha256": digest}})
        return uri

    def _upload(self, path: Path, key: str, extra: dict[str, Any]) -> None:
        try:
            self._s3.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self._kms, **extra},
                Config=self._transfer,
            )
        except (S3UploadFailedError, ClientError) as error:
            raise ArtifactError(
                f"uploading {path.name} to s3://{self.bucket}/{key} failed: {error}. Transient errors were "
                "already retried; check the role's s3:PutObject and kms:GenerateDataKey on this bucket and key."
            ) from None

    def get(self, uri: str, destination: Path) -> Path:
        bucket, key = split_uri(uri)
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
        os.close(fd)
        try:
            self._s3.download_file(bucket, key, tmp, Config=self._transfer)
        except ClientError as error:
            Path(tmp).unlink(missing_ok=True)
            if _not_found(error):
                raise FileNotFoundError(f"artifact {uri} is missing") from None
            raise
        Path(tmp).replace(destination)
        return destination

    def exists(self, uri: str) -> bool:
        bucket, key = split_uri(uri)
        try:
            self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if _not_found(error):
                return False
            raise
        return True

    def put_at(self, path: Path, key: str) -> str:
        """Upload to a fixed key (job inputs such as code), encrypted like every other object."""
        self._upload(path, key, {})
        return f"s3://{self.bucket}/{key}"

    def list(self, prefix: str) -> list[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def adopt(self, uri: str, name: str) -> str:
        """Re-key an object a job wrote (e.g. model.tar.gz) under its content hash; return the new URI."""
        with tempfile.TemporaryDirectory() as scratch:
            local = self.get(uri, Path(scratch) / name)
            return self.put(local)


def _not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
