"""Railway config-as-code files (infrastructure/railway/*.json): Railway's real schema, and
watch patterns that redeploy each service exactly when something its image is built from changes."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from analytics_api.routes.health import router as health_router
from analytics_etl.config import get_settings as get_etl_settings
from analytics_etl.http_server import start_http_server
from analytics_etl.metrics import EtlMetrics
from analytics_etl.status import WorkerStatus

CONFIGS = {"etl-service": "infrastructure/railway/etl.json", "api-service": "infrastructure/railway/api.json"}
OTHER = {"etl-service": "api-service", "api-service": "etl-service"}
# Keys of Railway's config-as-code schema (https://railway.com/railway.schema.json) this project
# may use; anything else is most likely a typo that Railway would ignore or reject.
BUILD_KEYS = {"builder", "dockerfilePath", "watchPatterns", "buildCommand"}
DEPLOY_KEYS = {"startCommand", "numReplicas", "healthcheckPath", "healthcheckTimeout", "restartPolicyType",
               "restartPolicyMaxRetries", "overlapSeconds", "drainingSeconds", "preDeployCommand",
               "cronSchedule", "sleepApplication", "region"}


def _load(repo: Path, service: str) -> dict:
    return json.loads((repo / CONFIGS[service]).read_text())


def _repo_files(repo: Path, top: str) -> list[str]:
    return [p.relative_to(repo).as_posix() for p in (repo / top).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts]


@pytest.mark.parametrize("service", CONFIGS)
def test_schema_and_builder(repo: Path, service: str) -> None:
    config = _load(repo, service)
    assert config["$schema"] == "https://railway.com/railway.schema.json"
    assert set(config) == {"$schema", "build", "deploy"}
    assert set(config["build"]) <= BUILD_KEYS, set(config["build"]) - BUILD_KEYS
    assert set(config["deploy"]) <= DEPLOY_KEYS, set(config["deploy"]) - DEPLOY_KEYS
    assert config["build"]["builder"] == "DOCKERFILE"
    dockerfile = config["build"]["dockerfilePath"]
    assert dockerfile == f"{service}/Dockerfile"
    assert (repo / dockerfile).is_file()


@pytest.mark.parametrize("service", CONFIGS)
def test_restart_policy_and_number_types(repo: Path, service: str) -> None:
    deploy = _load(repo, service)["deploy"]
    assert deploy["restartPolicyType"] == "ON_FAILURE"
    assert isinstance(deploy["restartPolicyMaxRetries"], int) and deploy["restartPolicyMaxRetries"] > 0
    # Railway's parser rejects numbers written as strings ("Expected number, received string").
    for key in ("numReplicas", "healthcheckTimeout", "overlapSeconds", "drainingSeconds",
                "restartPolicyMaxRetries"):
        if key in deploy:
            assert type(deploy[key]) is int, f"{service}: deploy.{key} must be a JSON number"


def test_only_one_etl_runs(repo: Path) -> None:
    deploy = _load(repo, "etl-service")["deploy"]
    assert deploy["numReplicas"] == 1
    assert deploy.get("overlapSeconds", 0) == 0, "old and new ETL deployments must not overlap"


def test_etl_healthcheck_is_the_liveness_route_on_port(repo: Path, tmp_path: Path) -> None:
    """Liveness, not /ready: Railway probes only while deploying and keeps the old deployment
    running until the probe passes; waiting for a first sync would run two ETLs that long."""
    deploy = _load(repo, "etl-service")["deploy"]
    assert isinstance(deploy["healthcheckTimeout"], int) and 30 <= deploy["healthcheckTimeout"] <= 300
    settings = get_etl_settings(source_url="sqlite:///x.db", port=8080)
    assert settings.http_port == 8080, "the ETL listens on the PORT Railway probes"
    status = WorkerStatus(tmp_path, max_age_seconds=60)
    status.scheduler_alive = lambda: True
    server = start_http_server(0, status, EtlMetrics(status), host="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{deploy['healthcheckPath']}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_api_healthcheck_is_the_readiness_route(repo: Path) -> None:
    deploy = _load(repo, "api-service")["deploy"]
    assert deploy["healthcheckPath"] == "/ready"
    assert isinstance(deploy["healthcheckTimeout"], int) and 60 <= deploy["healthcheckTimeout"] <= 900
    assert "/ready" in {route.path for route in health_router.routes}
    source = (repo / "api-service/src/analytics_api/routes/health.py").read_text()
    assert re.search(r'@router\.get\("/ready"', source)
    # Railway sends SIGTERM and waits drainingSeconds: Gunicorn's graceful timeout must fit in it.
    conf = (repo / "api-service/src/analytics_api/gunicorn_conf.py").read_text()
    graceful = int(re.search(r'"GRACEFUL_TIMEOUT", "(\d+)"', conf).group(1))
    assert deploy["drainingSeconds"] > graceful


@pytest.mark.parametrize("service", CONFIGS)
def test_watch_patterns_cover_the_service_and_shared_only(repo: Path, helpers, service: str) -> None:  # noqa: ANN001
    match = helpers["gitignore_match"]
    patterns = _load(repo, service)["build"]["watchPatterns"]
    assert patterns, f"{service}: without watch patterns every commit redeploys both services"

    def watched(path: str) -> bool:
        return any(match(p, path) for p in patterns)

    for path in _repo_files(repo, service) + _repo_files(repo, "shared/src") + ["uv.lock", "pyproject.toml",
                                                                                 CONFIGS[service]]:
        assert watched(path), f"{service}: a change to {path} would not redeploy it"
    assert watched("shared/schemas/query_whitelist.json")
    other = OTHER[service]
    for path in _repo_files(repo, other) + [CONFIGS[other], "docs/etl.md", "README.md", "bench/README.md"]:
        assert not watched(path), f"{service}: a change to {path} would redeploy it needlessly"


@pytest.mark.parametrize("service", CONFIGS)
def test_watch_patterns_cover_everything_the_dockerfile_copies(repo: Path, helpers, dockerfiles,  # noqa: ANN001
                                                               service: str) -> None:
    match = helpers["gitignore_match"]
    patterns = _load(repo, service)["build"]["watchPatterns"]
    for stage in dockerfiles[service].stages:
        for ins in stage.all("COPY"):
            if "from" in ins.flags():
                continue
            for src in ins.words()[:-1]:
                path = repo / src
                files = [path] if path.is_file() else [p for p in path.rglob("*.py")] + list(path.rglob("*.json"))
                for f in files:
                    rel = f.relative_to(repo).as_posix()
                    if "__pycache__" in rel or "/tests/" in rel:
                        continue
                    if rel == f"{OTHER[service]}/pyproject.toml":
                        # Copied only so uv sees the whole workspace; any change to it that matters
                        # here (a dependency, a version) also changes uv.lock, which is watched.
                        continue
                    assert any(match(p, rel) for p in patterns), f"{service}: {rel} is built in but not watched"


def test_the_pattern_matcher_is_gitignore_style(helpers) -> None:  # noqa: ANN001
    match = helpers["gitignore_match"]
    assert match("/uv.lock", "uv.lock") and not match("/uv.lock", "api-service/uv.lock")
    assert match("pyproject.toml", "api-service/pyproject.toml")  # unanchored: any depth
    assert match("/shared/**", "shared/src/analytics_shared/manifest.py")
    assert not match("/shared/**", "api-service/shared/x.py")
    assert match("etl-service/**", "etl-service/Dockerfile") and not match("etl-service/**", "x/etl-service/a")
