"""StorageSettings from the environment, and load_settings' one-line errors."""

from __future__ import annotations

import pytest

from analytics_shared.errors import ConfigError
from analytics_shared.settings import MemorySize, StorageSettings, load_settings

_VARS = ["STORAGE_URL", "S3_BUCKET", "S3_PREFIX", "S3_REGION", "S3_ENDPOINT_URL", "LOG_LEVEL"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_default_storage_url() -> None:
    s = load_settings(StorageSettings)
    assert s.storage_url == "file://./data/store"
    assert s.s3_region == "us-east-1"
    assert s.s3_endpoint_url is None


def test_s3_bucket_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_BUCKET", "bucket")
    monkeypatch.setenv("S3_PREFIX", "/prefix/")
    assert load_settings(StorageSettings).storage_url == "s3://bucket/prefix"


def test_s3_bucket_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_BUCKET", "bucket")
    assert load_settings(StorageSettings).storage_url == "s3://bucket"


def test_explicit_storage_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_URL", "file:///srv/store")
    monkeypatch.setenv("S3_BUCKET", "bucket")
    assert load_settings(StorageSettings).storage_url == "file:///srv/store"


def test_bad_scheme_names_storage_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_URL", "ftp://x")
    with pytest.raises(ConfigError) as info:
        load_settings(StorageSettings)
    msg = str(info.value)
    assert "STORAGE_URL" in msg
    assert "s3://" in msg and "file://" in msg
    assert "\n" not in msg


def test_overrides() -> None:
    s = load_settings(StorageSettings, storage_url="s3://b/p", log_level="DEBUG")
    assert (s.storage_url, s.log_level) == ("s3://b/p", "DEBUG")


def test_bad_override_type_names_field() -> None:
    with pytest.raises(ConfigError, match="S3_REGION"):
        load_settings(StorageSettings, s3_region=123)


class _WithMemory(StorageSettings):
    duckdb_memory_limit: MemorySize = ""


@pytest.mark.parametrize("value", ["", "2GB", "512MB", "1.5GiB", " 64mb "])
def test_memory_size_accepts_duckdb_sizes(value: str) -> None:
    assert load_settings(_WithMemory, duckdb_memory_limit=value).duckdb_memory_limit == value.strip()


@pytest.mark.parametrize("value", ["lots", "2 G", "-1GB", "1e9"])
def test_memory_size_rejects_anything_else_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="DUCKDB_MEMORY_LIMIT"):
        load_settings(_WithMemory, duckdb_memory_limit=value)
