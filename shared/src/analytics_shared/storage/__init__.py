"""Object stores: S3 (boto3) and a local directory behind one interface."""

from __future__ import annotations

from urllib.parse import urlparse

from analytics_shared.errors import ConfigError
from analytics_shared.storage.base import ObjectInfo, ObjectStore, StoredObject
from analytics_shared.storage.local import LocalStore
from analytics_shared.storage.s3 import S3Store

__all__ = ["ObjectInfo", "ObjectStore", "StoredObject", "LocalStore", "S3Store", "open_store"]


def open_store(url: str, *, region: str = "us-east-1", endpoint_url: str | None = None) -> ObjectStore:
    """Open the store named by STORAGE_URL: s3://bucket/prefix or file:///dir (file://./rel too)."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"STORAGE_URL {url!r} names no bucket")
        return S3Store(parsed.netloc, parsed.path, region=region, endpoint_url=endpoint_url)
    if parsed.scheme == "file":
        # file://./data/store is relative to the working directory; file:///abs is absolute.
        path = parsed.netloc + parsed.path if parsed.netloc else parsed.path
        return LocalStore(path)
    raise ConfigError(f"STORAGE_URL {url!r} must start with s3:// or file://")
