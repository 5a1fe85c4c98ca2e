"""Object store on S3 or anything speaking its API (MinIO, moto) via boto3.

The manifest is written with S3 conditional writes (If-Match on the ETag read,
If-None-Match: * for the first manifest), so two ETL instances cannot clobber
each other's publish.
"""

from __future__ import annotations

from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from analytics_shared.errors import ObjectNotFound, PreconditionFailed, StorageError
from analytics_shared.storage.base import ObjectInfo, ObjectStore, StoredObject

_MISSING = {"NoSuchKey", "404", "NotFound"}
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store(ObjectStore):
    def __init__(self, bucket: str, prefix: str = "", *, region: str = "us-east-1",
                 endpoint_url: str | None = None, client=None) -> None:  # noqa: ANN001
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client or boto3.client(
            "s3", region_name=region, endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 5, "mode": "standard"},
                          connect_timeout=10, read_timeout=60),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def _fail(self, exc: Exception, what: str, key: str) -> Exception:
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if code in _MISSING:
                return ObjectNotFound(f"{key} not found in {self.url}")
            if code in _CONFLICT:
                return PreconditionFailed(f"{key} changed since it was read ({code})")
        return StorageError(f"S3 {what} {self.url}/{key} failed: {exc}")

    def get(self, key: str) -> StoredObject:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return StoredObject(data=resp["Body"].read(), etag=resp["ETag"].strip('"'))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "get", key) from exc

    def put(self, key: str, data: bytes, *, if_match: str | None = None,
            if_none_match: bool = False, content_type: str = "application/json") -> str:
        extra: dict[str, str] = {}
        if if_match is not None:
            extra["IfMatch"] = f'"{if_match}"'
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        try:
            resp = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                          ContentType=content_type, **extra)
            return resp["ETag"].strip('"')
        except (ClientError, BotoCoreError) as exc:
            err = self._fail(exc, "put", key)
            if if_match is not None and isinstance(err, ObjectNotFound):
                # S3 answers If-Match on a deleted key with 404; to the caller the
                # object changed since it was read, as LocalStore reports it.
                err = PreconditionFailed(f"{key} no longer exists (deleted since it was read)")
            raise err from exc

    def upload_file(self, key: str, path: Path) -> ObjectInfo:
        try:
            self.client.upload_file(str(path), self.bucket, self._key(key),
                                    ExtraArgs={"ContentType": "application/octet-stream"})
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "upload", key) from exc
        info = self.head(key)
        if info is None or info.size != Path(path).stat().st_size:
            raise StorageError(f"upload of {key} did not arrive whole")
        return info

    def download_file(self, key: str, path: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._key(key), str(path))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "download", key) from exc

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                return None
            raise self._fail(exc, "head", key) from exc
        except BotoCoreError as exc:
            raise self._fail(exc, "head", key) from exc
        return ObjectInfo(key=key, size=resp["ContentLength"], etag=resp["ETag"].strip('"'),
                          last_modified=resp.get("LastModified"))

    def list(self, prefix: str) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix))
            for page in pages:
                for item in page.get("Contents", []):
                    out.append(ObjectInfo(key=self._strip(item["Key"]), size=item["Size"],
                                          etag=item["ETag"].strip('"'),
                                          last_modified=item.get("LastModified")))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "list", prefix) from exc
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "delete", key) from exc

    def delete_many(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = keys[start:start + 1000]
            try:
                resp = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise self._fail(exc, "delete", batch[0]) from exc
            errors = resp.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(f"S3 delete of {len(errors)} objects in {self.url} failed; first "
                                   f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")
