"""Settings base: environment variables, validated once, failing with one clear line."""

from __future__ import annotations

import re
from typing import Annotated, TypeVar

from pydantic import AfterValidator, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from analytics_shared.errors import ConfigError

S = TypeVar("S", bound="StorageSettings")
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


def _memory_size(value: str) -> str:
    # Checked here: DuckDB would only refuse it when a database is opened, far from the cause.
    if value and not _MEMORY.match(value):
        raise ValueError("must be a size such as 512MB, 2GB or 1.5GiB")
    return value.strip()


# A DuckDB memory_limit: "2GB", "512MiB"; empty means DuckDB's default (80% of the RAM).
MemorySize = Annotated[str, AfterValidator(_memory_size)]


class StorageSettings(BaseSettings):
    """Where snapshots and the manifest live; read identically by both services."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    storage_url: str = ""
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _default_storage_url(self):  # noqa: ANN202 - pydantic hook
        if not self.storage_url:
            if self.s3_bucket:
                prefix = self.s3_prefix.strip("/")
                self.storage_url = f"s3://{self.s3_bucket}/{prefix}" if prefix else f"s3://{self.s3_bucket}"
            else:
                self.storage_url = "file://./data/store"
        if not self.storage_url.startswith(("s3://", "file://")):
            raise ValueError("STORAGE_URL must start with s3:// or file://")
        return self


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings from the environment, turning validation errors into one ConfigError line."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper() or "configuration"
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
