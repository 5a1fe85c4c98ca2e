"""The .env.example files document every variable each service reads (taken from the settings
classes and gunicorn_conf.py, so a new setting fails here until it is documented), nothing else,
and their active lines form a valid configuration. The real .env files are gitignored."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from pydantic import ByteSize, TypeAdapter

from analytics_api.config import ApiSettings, get_settings as get_api_settings
from analytics_etl.config import EtlSettings, get_settings as get_etl_settings

AWS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def _gunicorn_env(repo: Path) -> set[str]:
    conf = (repo / "api-service/src/analytics_api/gunicorn_conf.py").read_text()
    names = set(re.findall(r"""os\.environ\.(?:get|setdefault)\(\s*["']([A-Z_]+)["']""", conf))
    assert {"PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "GRACEFUL_TIMEOUT", "BIND"} <= names, names
    return names


def _expected(repo: Path, service: str) -> set[str]:
    if service == "etl-service":
        return {name.upper() for name in EtlSettings.model_fields} | AWS
    return {name.upper() for name in ApiSettings.model_fields} | AWS | _gunicorn_env(repo)


@pytest.mark.parametrize("service", ["etl-service", "api-service"])
def test_every_variable_is_documented_and_nothing_else(repo: Path, helpers, service: str) -> None:  # noqa: ANN001
    documented = set(helpers["read_env_names"](repo / service / ".env.example"))
    expected = _expected(repo, service)
    assert not expected - documented, f"{service}/.env.example misses {sorted(expected - documented)}"
    assert not documented - expected, f"{service}/.env.example names unknown {sorted(documented - expected)}"


def _apply(monkeypatch: pytest.MonkeyPatch, values: dict[str, str | None], names: set[str]) -> None:
    for key in list(os.environ):
        if key in names:
            monkeypatch.delenv(key)
    for key, value in values.items():
        if value is not None:
            monkeypatch.setenv(key, value)


def test_etl_example_is_a_valid_configuration(repo: Path, helpers, monkeypatch) -> None:  # noqa: ANN001
    values = helpers["read_env_names"](repo / "etl-service" / ".env.example")
    _apply(monkeypatch, values, _expected(repo, "etl-service"))
    settings = get_etl_settings()
    assert settings.source_url.startswith("mssql+pyodbc://")
    assert settings.storage_url.startswith("s3://")


def test_api_example_is_a_valid_configuration(repo: Path, helpers, monkeypatch) -> None:  # noqa: ANN001
    values = helpers["read_env_names"](repo / "api-service" / ".env.example")
    _apply(monkeypatch, values, _expected(repo, "api-service"))
    settings = get_api_settings()
    assert settings.auth0_jwks_url.startswith("https://") and settings.auth0_api_audience
    assert settings.storage_url.startswith("s3://")


@pytest.mark.parametrize("service", ["etl-service", "api-service"])
def test_documented_defaults_match_the_code(repo: Path, helpers, service: str) -> None:  # noqa: ANN001
    values = {}
    for line in (repo / service / ".env.example").read_text().splitlines():
        match = re.match(r"^#\s?([A-Z][A-Z0-9_]*)=(\S+)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    fields = (EtlSettings if service == "etl-service" else ApiSettings).model_fields
    compared = 0
    for name, shown in values.items():
        field = fields.get(name.lower())
        if field is None or name in ("ETL_STATE_DIR", "QUERY_WHITELIST_PATH", "SNAPSHOT_CACHE_DIR"):
            continue  # gunicorn settings, or paths the image sets (documented with the image's value)
        default = field.default
        if isinstance(default, ByteSize):  # a size may be shown as 256KiB: compare the bytes
            shown = str(TypeAdapter(ByteSize).validate_python(shown))
        rendered = str(default).lower() if isinstance(default, bool) else str(default)
        if isinstance(default, float) and default.is_integer():
            rendered = str(int(default))
        assert shown == rendered, f"{service}/.env.example shows {name}={shown}, the code defaults to {rendered}"
        compared += 1
    assert compared >= 5


def test_top_level_example_is_for_compose_only(repo: Path, helpers) -> None:  # noqa: ANN001
    values = helpers["read_env_names"](repo / ".env.example")
    assert values and all(values.values()), "every compose secret needs a working example value"
    for name, value in values.items():
        assert "$" not in value, f"{name}: compose would interpolate the $ in its value"
        if name.startswith("MSSQL_") and name.endswith("PASSWORD"):
            classes = sum(bool(re.search(p, value)) for p in (r"[A-Z]", r"[a-z]", r"\d", r"[^A-Za-z0-9]"))
            assert len(value) >= 8 and classes >= 3, f"{name} would fail SQL Server's password policy"
            assert "'" not in value


def test_real_env_files_are_gitignored(repo: Path) -> None:
    for path in (".env", "etl-service/.env", "api-service/.env"):
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=repo, check=False, timeout=30)
        assert result.returncode == 0, f"{path} (secrets) is not gitignored"
    for path in (".env.example", "etl-service/.env.example", "api-service/.env.example"):
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=repo, check=False, timeout=30)
        assert result.returncode == 1, f"{path} must be committed"
