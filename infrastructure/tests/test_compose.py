"""docker-compose.yml: valid against the Compose Specification, and consistent with the files,
settings and SQL it wires together (no Docker engine needed)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath

import jsonschema
import pytest
import yaml

from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LOCAL_ISSUER
from analytics_api.config import get_settings as get_api_settings
from analytics_etl.config import get_settings as get_etl_settings

# The Compose Specification's JSON schema lives in the project's shared/ next to the repository.
COMPOSE_SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "compose-spec.json"
ONE_SHOTS = {"sqlserver-init", "minio-init"}
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
SUBSTITUTION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([?-])([^}]*))?\}")


def _interpolate(value: str, top_env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:?message} and ${NAME:-default} against the top-level .env."""
    def one(match: re.Match) -> str:
        name, kind, extra = match.groups()
        if top_env.get(name):
            return top_env[name]
        assert kind == "-", f"${{{name}}} has no value and no default"
        return extra
    return SUBSTITUTION.sub(one, value)


def _services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def _env_files(service: dict) -> list[tuple[str, bool]]:
    out = []
    entries = service.get("env_file", [])
    for entry in [entries] if isinstance(entries, str) else entries:
        if isinstance(entry, str):
            out.append((entry, True))
        else:
            out.append((entry["path"], entry.get("required", True)))
    return out


def _merged_env(repo: Path, service: dict, helpers, *, top_env: dict[str, str]) -> dict[str, str]:  # noqa: ANN001
    """What the container's environment would be: required env_files, then `environment:`."""
    env: dict[str, str] = {}
    for path, required in _env_files(service):
        if required:
            for name, value in helpers["read_env_names"](repo / path).items():
                if value is not None:
                    env[name] = value
    for name, value in service.get("environment", {}).items():
        env[name] = _interpolate(str(value), top_env)
    return env


@pytest.fixture(scope="module")
def top_env(repo: Path, helpers) -> dict[str, str]:  # noqa: ANN001
    values = helpers["read_env_names"](repo / ".env.example")
    return {k: v for k, v in values.items() if v is not None}


def test_valid_against_the_compose_specification(compose: dict) -> None:
    assert COMPOSE_SCHEMA.is_file(), f"the Compose Specification schema is missing: {COMPOSE_SCHEMA}"
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_no_obsolete_version_key(compose: dict) -> None:
    assert "version" not in compose


def test_expected_services(compose: dict) -> None:
    assert set(_services(compose)) == {"sqlserver", "sqlserver-init", "minio", "minio-init", "redis",
                                       "etl-service", "api-service"}


@pytest.mark.parametrize("name", ["etl-service", "api-service"])
def test_build_context_and_dockerfile_exist(compose: dict, repo: Path, name: str) -> None:
    build = _services(compose)[name]["build"]
    context = repo / build["context"]
    assert context.resolve() == repo, "the images need the repository root (shared/, uv.lock) as context"
    assert (context / build["dockerfile"]).is_file()
    assert build["dockerfile"] == f"{name}/Dockerfile"


def test_env_files(compose: dict, repo: Path) -> None:
    for name, service in _services(compose).items():
        for path, required in _env_files(service):
            if required:
                assert (repo / path).is_file(), f"{name}: required env_file {path} does not exist"
            else:
                assert path.endswith("/.env"), f"{name}: optional env_file {path}"
                assert (repo / (path + ".example")).is_file(), f"{name}: {path} has no {path}.example"
    for name in ("etl-service", "api-service"):
        files = _env_files(_services(compose)[name])
        assert (f"{name}/.env", False) in files, f"{name} must read the optional {name}/.env"


def test_healthchecks_on_every_long_running_service(compose: dict) -> None:
    for name, service in _services(compose).items():
        if name in ONE_SHOTS:
            assert service.get("restart") == "no", f"{name} is a one-shot and must not restart"
            assert "healthcheck" not in service
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), f"{name} does not restart"


def test_depends_on_conditions(compose: dict) -> None:
    services = _services(compose)
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}'s health, which it lacks"
            elif condition == "service_completed_successfully":
                assert target in ONE_SHOTS, f"{name} waits for {target} to exit, but it runs forever"
            else:
                pytest.fail(f"{name}: depends_on {target} with condition {condition}")
    assert services["sqlserver-init"]["depends_on"] == {"sqlserver": {"condition": "service_healthy"}}
    assert services["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert services["etl-service"]["depends_on"] == {
        "sqlserver-init": {"condition": "service_completed_successfully"},
        "minio-init": {"condition": "service_completed_successfully"}}
    assert services["api-service"]["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "minio-init": {"condition": "service_completed_successfully"}}


def test_api_publishes_its_port(compose: dict) -> None:
    api = _services(compose)["api-service"]
    container_port = api["environment"]["PORT"]
    published = [str(p).rsplit(":", 1) for p in api.get("ports", [])]
    assert [container_port] in [p[1:] for p in published], api.get("ports")
    probe = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{container_port}/health" in probe


def test_every_interpolated_variable_is_documented(compose: dict, repo: Path, helpers) -> None:  # noqa: ANN001
    text = (repo / "docker-compose.yml").read_text()
    used = set(INTERPOLATION.findall(text))
    documented = helpers["read_env_names"](repo / ".env.example")
    assert used, "compose takes no secret from .env?"
    missing = used - set(documented)
    assert not missing, f"used in docker-compose.yml but not in .env.example: {sorted(missing)}"
    unused = set(documented) - used
    assert not unused, f"documented in .env.example but unused by docker-compose.yml: {sorted(unused)}"
    assert all(documented[name] for name in used), "give every .env.example variable a working value"


def test_no_secret_is_written_into_the_compose_file(compose: dict) -> None:
    for name, service in _services(compose).items():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET", key):
                assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", str(value)), f"{name}: {key} must come from .env"


def test_bind_mounted_scripts_exist(compose: dict, repo: Path) -> None:
    for name in ONE_SHOTS:
        service = _services(compose)[name]
        mounts = {}
        for volume in service["volumes"]:
            host, container, *_ = volume.split(":")
            assert host.startswith("./"), f"{name}: {volume} should be a bind mount of the repository"
            assert (repo / host).is_dir(), f"{name}: {host} does not exist"
            mounts[container] = repo / host
        script = service["entrypoint"][-1]
        owner = next(m for m in mounts if PurePosixPath(script).is_relative_to(m))
        host_file = mounts[owner] / PurePosixPath(script).relative_to(owner)
        assert host_file.is_file(), f"{name}: entrypoint {script} maps to missing {host_file}"


def test_minio_bucket_users_and_policies_line_up(compose: dict, repo: Path) -> None:
    services = _services(compose)
    bucket = services["minio-init"]["environment"]["MINIO_BUCKET"]
    init = (repo / "infrastructure" / "minio" / "init.sh").read_text()
    for svc, policy_file, writable in (("etl-service", "etl-policy.json", True),
                                       ("api-service", "api-policy.json", False)):
        env = services[svc]["environment"]
        assert env["STORAGE_URL"] == f"s3://{bucket}"
        assert env["S3_ENDPOINT_URL"] == "http://minio:9000"
        user = env["AWS_ACCESS_KEY_ID"]
        assert re.search(rf"mc admin user add local {re.escape(user)} ", init), f"minio-init never creates {user}"
        policy = json.loads((repo / "infrastructure" / "minio" / policy_file).read_text())
        assert policy_file in init
        actions = {a for st in policy["Statement"] for a in st["Action"]}
        resources = {r for st in policy["Statement"] for r in st["Resource"]}
        assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
        assert ("s3:PutObject" in actions) is writable and ("s3:DeleteObject" in actions) is writable
        assert {"s3:GetObject", "s3:ListBucket"} <= actions
        if not writable:
            assert actions == {"s3:GetObject", "s3:ListBucket"}


def test_etl_connects_with_the_login_and_database_init_sql_creates(compose: dict, repo: Path, helpers,  # noqa: ANN001
                                                                   top_env, monkeypatch) -> None:  # noqa: ANN001
    services = _services(compose)
    env = _merged_env(repo, services["etl-service"], helpers, top_env=top_env)
    sql = (repo / "infrastructure" / "mssql" / "init.sql").read_text()
    assert re.search(rf"CREATE DATABASE {env['MSSQL_DATABASE']};", sql)
    assert re.search(rf"CREATE LOGIN {env['MSSQL_USERNAME']} WITH PASSWORD = N'\$\(MSSQL_ETL_PASSWORD\)'", sql)
    assert services["sqlserver-init"]["environment"]["MSSQL_ETL_PASSWORD"].startswith("${MSSQL_ETL_PASSWORD")
    assert services["etl-service"]["environment"]["MSSQL_PASSWORD"].startswith("${MSSQL_ETL_PASSWORD")
    assert env["MSSQL_HOST"] == "sqlserver" == services["sqlserver-init"]["environment"]["MSSQL_HOST"]
    for key in list(os.environ):
        if key.startswith(("MSSQL_", "SOURCE_", "STORAGE_", "S3_", "ETL_", "TABLES_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = get_etl_settings()
    assert settings.source_url.startswith("mssql+pyodbc://analytics_etl:")
    assert "@sqlserver:1433/analytics_demo?driver=ODBC+Driver+18+for+SQL+Server" in settings.source_url
    # The stack's server has a self-signed certificate: trusted there, by its own setting.
    assert "Encrypt=yes&TrustServerCertificate=yes" in settings.source_url
    assert settings.storage_url == "s3://analytics"


def test_api_configuration_is_valid_and_matches_the_local_issuer(compose: dict, repo: Path, helpers,  # noqa: ANN001
                                                                  top_env, monkeypatch) -> None:  # noqa: ANN001
    api = _services(compose)["api-service"]
    env = _merged_env(repo, api, helpers, top_env=top_env)
    command = " ".join(api["command"])
    issuer_dir = re.search(r"analytics-api issuer-init (\S+)", command).group(1)
    assert command.rstrip().endswith("exec analytics-api serve"), command
    assert env["AUTH0_JWKS_URL"] == f"file://{issuer_dir}/jwks.json"
    assert env["AUTH0_ISSUER"] == LOCAL_ISSUER
    assert env["AUTH0_API_AUDIENCE"] == LOCAL_AUDIENCE
    volume_targets = [v.split(":")[1] for v in api["volumes"]]
    assert any(PurePosixPath(issuer_dir).is_relative_to(t) for t in volume_targets), "issuer keys must persist"
    assert env["RATE_LIMIT_STORAGE_URL"] == "redis://redis:6379/0"
    assert int(env["WEB_CONCURRENCY"]) >= 2
    for key in list(os.environ):
        if key.startswith(("AUTH0_", "RATE_LIMIT_", "STORAGE_", "S3_", "QUERY_", "SNAPSHOT_", "CORS_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = get_api_settings()  # the app's own validation (one clear line on a bad value)
    assert settings.rate_limit_storage_url.startswith("redis://")
    assert settings.cors_origin_list


def test_compose_file_parses_without_yaml_surprises(repo: Path) -> None:
    text = (repo / "docker-compose.yml").read_text()
    # "no" must stay a string for restart: YAML 1.1 would otherwise read a bare no as false.
    assert not re.search(r"restart:\s*no\s*$", text, re.M)
    assert yaml.safe_load(text)["name"] == "analytics-platform"


def test_etl_healthcheck_probes_its_own_readiness_route(compose: dict) -> None:
    etl = _services(compose)["etl-service"]
    argv = etl["healthcheck"]["test"]
    assert argv[:3] == ["CMD", "python", "-c"], "slim images have no curl: probe with python's urllib"
    compile(argv[3], "<healthcheck>", "exec")
    url = re.search(r"'(http://127\.0\.0\.1:(\d+)(/\w+))'", argv[3])
    assert url, argv[3]
    assert url.group(2) == etl["environment"]["ETL_HTTP_PORT"], "the probe must hit the port the ETL listens on"
    assert url.group(3) == "/ready", "healthy = syncs keep succeeding, as the old `analytics-etl health` check"
