"""Static lint of etl-service/Dockerfile and api-service/Dockerfile (no Docker engine here).

Each check reads the real files and compares them with what the code and the other deployment
files expect: console scripts, subcommands, settings defaults, routes, uv's pinned version.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from analytics_api.cli import build_parser as api_parser
from analytics_api.routes.health import router as health_router
from analytics_etl.cli import build_parser as etl_parser
from analytics_etl.config import EtlSettings

SERVICES = ("etl-service", "api-service")
PACKAGE = {"etl-service": "analytics-etl", "api-service": "analytics-api"}
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE", re.IGNORECASE)


def _uv_syncs(dockerfile) -> list[list[str]]:  # noqa: ANN001
    runs = [ins.args for stage in dockerfile.stages for ins in stage.all("RUN")]
    return [cmd.split() for run in runs for cmd in re.split(r"&&|;", run) if re.search(r"\buv sync\b", cmd)]


@pytest.mark.parametrize("service", SERVICES)
def test_multi_stage_with_pinned_bases(dockerfiles, service: str) -> None:
    df = dockerfiles[service]
    assert len(df.stages) >= 2, f"{service}: expected a multi-stage build"
    stage_names = {s.name for s in df.stages if s.name}
    for stage in df.stages:
        base = df.resolve(stage.base)
        if base in stage_names:
            continue
        assert "$" not in base, f"{service}: unresolved ARG in FROM {stage.base}"
        name, _, tag = base.rpartition(":") if ":" in base.split("/")[-1] else (base, "", "")
        assert tag, f"{service}: base image {base} has no tag"
        assert "latest" not in tag, f"{service}: base image {base} uses a moving 'latest' tag"


def test_both_images_use_the_same_python(dockerfiles, repo: Path) -> None:
    images = {svc: dockerfiles[svc].resolve(dockerfiles[svc].final.base) for svc in SERVICES}
    assert len(set(images.values())) == 1, images
    image = next(iter(images.values()))
    match = re.fullmatch(r"python:(3)\.(\d+)-slim(?:-\w+)?", image)
    assert match, f"runtime base should be an official python slim image, got {image}"
    requires = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(x) for x in re.search(r">=\s*(\d+)\.(\d+)", requires).groups())
    assert (int(match.group(1)), int(match.group(2))) >= minimum, (image, requires)
    for svc in SERVICES:  # the venv's interpreter symlink must exist in the runtime stage
        builder = dockerfiles[svc].stage("builder")
        assert dockerfiles[svc].resolve(builder.base) == image, f"{svc}: builder and runtime Pythons differ"


@pytest.mark.parametrize("service", SERVICES)
def test_uv_is_pinned_to_the_bootstrap_version(dockerfiles, repo: Path, service: str) -> None:
    bootstrap = (repo / "scripts" / "bootstrap.sh").read_text()
    pinned = re.search(r'^UV_VERSION="([^"]+)"', bootstrap, re.M).group(1)
    df = dockerfiles[service]
    uv_images = [df.resolve(s.base) for s in df.stages if "astral-sh/uv" in df.resolve(s.base)]
    assert uv_images == [f"ghcr.io/astral-sh/uv:{pinned}"], uv_images


@pytest.mark.parametrize("service", SERVICES)
def test_uv_sync_is_frozen_and_scoped_to_the_service(dockerfiles, service: str) -> None:
    syncs = _uv_syncs(dockerfiles[service])
    assert len(syncs) >= 1, f"{service}: no `uv sync` in any RUN"
    for words in syncs:
        assert "--frozen" in words, f"{service}: {' '.join(words)} must install exactly uv.lock"
        assert "--no-dev" in words, f"{service}: {' '.join(words)} would install dev tools"
        package = words[words.index("--package") + 1]
        assert package == PACKAGE[service], f"{service}: uv sync installs {package}"
    # Dependencies-only layer first, then the workspace packages as wheels (venv stands alone).
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[-1]
    builder = dockerfiles[service].stage("builder")
    assert builder.env().get("UV_COMPILE_BYTECODE") == "1"
    assert builder.env().get("UV_PROJECT_ENVIRONMENT") == "/app/.venv"


@pytest.mark.parametrize("service", SERVICES)
def test_dependency_layer_comes_before_the_sources(dockerfiles, service: str) -> None:
    builder = dockerfiles[service].stage("builder")
    copies = [ins.words()[:-1] for ins in builder.all("COPY") if "from" not in ins.flags()]
    first_source_copy = next(i for i, srcs in enumerate(copies) if any(s.rstrip("/").endswith(("shared", "-service"))
                                                                        for s in srcs))
    before = [s for srcs in copies[:first_source_copy] for s in srcs]
    assert "uv.lock" in before and "pyproject.toml" in before, copies
    run_lines = [ins for ins in builder.instructions if ins.keyword in ("COPY", "RUN")]
    order = [("sync" if ins.keyword == "RUN" and "uv sync" in ins.args else ins.keyword) for ins in run_lines]
    assert order.index("sync") < max(i for i, k in enumerate(order) if k == "COPY"), order


@pytest.mark.parametrize("service", SERVICES)
def test_copy_sources_exist_and_reach_the_build_context(dockerfiles, dockerignore, helpers, repo: Path,
                                                        service: str) -> None:
    excluded = helpers["dockerignore_excluded"]
    for stage in dockerfiles[service].stages:
        for ins in stage.all("COPY") + stage.all("ADD"):
            if "from" in ins.flags():
                continue
            *sources, _dest = ins.words()
            for src in sources:
                path = repo / src
                assert path.exists(), f"{service}:{ins.line}: COPY source {src} is not in the repository"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                # What the build needs from it: code, package metadata, the lock, data files.
                needed = [f for f in files if f.suffix in (".py", ".toml", ".lock", ".json")
                          and "__pycache__" not in f.parts and "tests" not in f.parts]
                assert needed, f"{service}:{ins.line}: COPY {src} copies nothing the build uses"
                for f in needed:
                    rel = f.relative_to(repo).as_posix()
                    assert not excluded(dockerignore, rel), f"{service}:{ins.line}: {rel} is excluded by .dockerignore"


@pytest.mark.parametrize("service", SERVICES)
def test_final_stage_runs_as_a_non_root_user(dockerfiles, service: str) -> None:
    final = dockerfiles[service].final
    users = final.all("USER")
    assert users, f"{service}: the final stage has no USER (it would run as root)"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0"), f"{service}: final USER is {user}"
    # Every directory the service writes to is owned by that user.
    chowned = [ins.args for ins in final.all("RUN") if "chown" in ins.args]
    assert any(re.search(rf"chown\s+(-R\s+)?{re.escape(users[-1].args)}\s+/app/data", c) for c in chowned), chowned


def test_writable_state_dirs_live_under_the_users_data_dir(dockerfiles) -> None:
    etl_env = dockerfiles["etl-service"].final.env()
    api_env = dockerfiles["api-service"].final.env()
    assert PurePosixPath(etl_env["ETL_STATE_DIR"]).is_relative_to("/app/data")
    assert PurePosixPath(api_env["SNAPSHOT_CACHE_DIR"]).is_relative_to("/app/data")
    for svc, wanted in (("etl-service", etl_env["ETL_STATE_DIR"]), ("api-service", api_env["SNAPSHOT_CACHE_DIR"])):
        runs = " ".join(ins.args for ins in dockerfiles[svc].final.all("RUN"))
        assert f"mkdir -p {wanted}" in runs, f"{svc}: {wanted} is not created in the image"


@pytest.mark.parametrize("service", SERVICES)
def test_runtime_uses_the_builders_venv(dockerfiles, service: str) -> None:
    final = dockerfiles[service].final
    copies = [ins for ins in final.all("COPY") if ins.flags().get("from") == "builder"]
    assert any(ins.words() == ["/app/.venv", "/app/.venv"] for ins in copies), [c.args for c in copies]
    assert final.env()["PATH"].startswith("/app/.venv/bin:"), final.env()["PATH"]


@pytest.mark.parametrize("service", SERVICES)
def test_no_secrets_in_env_or_build_args(dockerfiles, service: str) -> None:
    df = dockerfiles[service]
    for stage in df.stages:
        for key in stage.env():
            assert not SECRET_WORDS.search(key), f"{service}: ENV {key} bakes a secret into the image"
        for ins in stage.all("ARG"):
            assert not SECRET_WORDS.search(ins.args.split("=")[0]), f"{service}: ARG {ins.args} leaks into history"
    for key in df.global_args:
        assert not SECRET_WORDS.search(key), f"{service}: ARG {key}"


@pytest.mark.parametrize("service", SERVICES)
def test_cmd_runs_a_console_script_that_exists(dockerfiles, repo: Path, service: str) -> None:
    cmd = dockerfiles[service].final.all("CMD")
    assert len(cmd) == 1, f"{service}: expected exactly one CMD"
    argv = cmd[0].exec_form
    assert argv, f"{service}: CMD must use the exec (JSON) form so signals reach the process"
    scripts = tomllib.loads((repo / service / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts, f"{service}: CMD runs {argv[0]}, not one of {sorted(scripts)}"
    parser = etl_parser() if service == "etl-service" else api_parser()
    parser.parse_args(argv[1:])  # SystemExit (a failure) if the subcommand does not exist
    expected = {"etl-service": ["analytics-etl", "run"], "api-service": ["analytics-api", "serve"]}[service]
    assert argv == expected


def test_etl_healthcheck_is_the_cli_health_command(dockerfiles) -> None:
    checks = dockerfiles["etl-service"].final.all("HEALTHCHECK")
    assert len(checks) == 1
    argv = checks[0].exec_form
    assert argv == ["analytics-etl", "health"], argv
    etl_parser().parse_args(argv[1:])
    start_period = checks[0].flags()["start-period"]
    assert int(start_period.rstrip("s")) >= 120, "the first sync needs time before the check counts"


def test_api_healthcheck_probes_the_liveness_route_on_port(dockerfiles) -> None:
    final = dockerfiles["api-service"].final
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1
    argv = checks[0].exec_form
    assert argv and argv[0] == "python", "slim images have no curl: probe with python's urllib"
    code = argv[-1]
    assert "urllib.request" in code and "127.0.0.1" in code and "PORT" in code, code
    path = re.search(r"/\w+(?=')", code.split("%s")[-1]).group(0)
    routes = {r.path for r in health_router.routes}
    assert path in routes, f"HEALTHCHECK probes {path}, not one of {routes}"
    compile(code, "<healthcheck>", "exec")
    env = final.env()
    assert env["PORT"] == "8000"
    assert [ins.args for ins in final.all("EXPOSE")] == [env["PORT"]]


def test_api_image_ships_the_whitelist_where_the_env_points(dockerfiles, repo: Path) -> None:
    final = dockerfiles["api-service"].final
    target = PurePosixPath(final.env()["QUERY_WHITELIST_PATH"])
    found = False
    for ins in final.all("COPY"):
        if "from" in ins.flags():
            continue
        *sources, dest = ins.words()
        for src in sources:
            src_path = repo / src
            if src_path.is_dir() and target.is_relative_to(dest):
                candidate = src_path / target.relative_to(dest)
                found = found or candidate.is_file()
    assert found, f"QUERY_WHITELIST_PATH={target} is not a file any COPY puts in the image"


def test_etl_installs_the_odbc_driver_its_settings_name(dockerfiles) -> None:
    runs = [ins.args for ins in dockerfiles["etl-service"].final.all("RUN")]
    install = [r for r in runs if "msodbcsql18" in r]
    assert install, "the ETL image must install Microsoft ODBC Driver 18 (msodbcsql18)"
    assert re.search(r"ACCEPT_EULA=Y\s+apt-get install[^;&]*\bmsodbcsql18\b", install[0]), install[0]
    assert re.search(r"apt-get install[^;&]*\bunixodbc\b", install[0]), "pyodbc needs libodbc (unixodbc)"
    assert "rm -rf /var/lib/apt/lists" in install[0]
    driver = EtlSettings.model_fields["mssql_driver"].default
    assert driver in install[0], f"the image should verify that {driver!r} (MSSQL_DRIVER's default) is registered"


def test_api_image_has_no_sql_server_driver(dockerfiles) -> None:
    text = dockerfiles["api-service"].text
    assert "msodbcsql" not in text and "unixodbc" not in text


def test_dockerignore_keeps_local_state_and_secrets_out(dockerignore, helpers) -> None:
    excluded = helpers["dockerignore_excluded"]
    for path in (".venv/bin/python", ".tools/bin/uv", "data/store/current/manifest.json", ".git/HEAD",
                 "bench/results/run.json", "etl-service/.env", "api-service/.env", ".env",
                 "shared/src/analytics_shared/__pycache__/x.pyc"):
        assert excluded(dockerignore, path), f"{path} would be sent to the Docker daemon"
    for path in ("uv.lock", "pyproject.toml", "shared/schemas/query_whitelist.json",
                 "etl-service/src/analytics_etl/cli.py", "api-service/src/analytics_api/main.py"):
        assert not excluded(dockerignore, path), f"{path} is needed by the build"
