"""docs/deployment-guide.md: its JSON (IAM policies, lifecycle rule) is valid and least-privilege,
and the names it tells users to type match the repository (config paths, scopes, commands)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analytics_api.cli import build_parser as api_parser

GUIDE = "docs/deployment-guide.md"
ETL_ACTIONS = {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
API_ACTIONS = {"s3:ListBucket", "s3:GetObject"}


@pytest.fixture(scope="module")
def guide(repo: Path) -> str:
    return (repo / GUIDE).read_text()


@pytest.fixture(scope="module")
def json_blocks(guide: str) -> list[dict]:
    blocks = re.findall(r"```json\n(.*?)```", guide, re.S)
    assert blocks, "the guide has no JSON examples"
    return [json.loads(b) for b in blocks]  # a JSON error fails the test


def _policies(blocks: list[dict]) -> dict[str, dict]:
    policies = [b for b in blocks if "Statement" in b]
    writers = [p for p in policies if any("s3:PutObject" in s["Action"] for s in p["Statement"])]
    readers = [p for p in policies if p not in writers]
    assert len(writers) == 1 and len(readers) == 1, "expected one ETL and one API policy"
    return {"etl": writers[0], "api": readers[0]}


def _actions(policy: dict) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


def test_iam_policies_are_least_privilege(json_blocks: list[dict]) -> None:
    policies = _policies(json_blocks)
    assert _actions(policies["etl"]) == ETL_ACTIONS
    assert _actions(policies["api"]) == API_ACTIONS, "the API may only read"
    for name, policy in policies.items():
        assert policy["Version"] == "2012-10-17"
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            for resource in statement["Resource"]:
                assert resource.startswith("arn:aws:s3:::") and "*" not in resource.split(":::")[1].split("/")[0]
                if statement["Action"] == ["s3:ListBucket"]:
                    assert "/" not in resource, f"{name}: ListBucket applies to the bucket ARN"
                else:
                    assert re.fullmatch(r"arn:aws:s3:::[\w.-]+/\w+/\*", resource), \
                        f"{name}: object actions must be limited to the prefix, got {resource}"


def test_compose_minio_policies_grant_the_same_actions(json_blocks: list[dict], repo: Path) -> None:
    policies = _policies(json_blocks)
    etl = json.loads((repo / "infrastructure/minio/etl-policy.json").read_text())
    api = json.loads((repo / "infrastructure/minio/api-policy.json").read_text())
    assert _actions(api) == _actions(policies["api"])
    assert _actions(policies["etl"]) <= _actions(etl) <= _actions(policies["etl"]) | {"s3:GetBucketLocation"}


def test_lifecycle_rule_aborts_incomplete_multipart_uploads_after_a_day(json_blocks: list[dict]) -> None:
    lifecycles = [b for b in json_blocks if "Rules" in b]
    assert len(lifecycles) == 1
    (rule,) = lifecycles[0]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rule["Filter"] == {"Prefix": ""}
    assert not {"Expiration", "NoncurrentVersionExpiration"} & set(rule), "retention is the ETL's job"


def test_config_file_paths_exist(guide: str, repo: Path) -> None:
    paths = set(re.findall(r"`(/infrastructure/railway/\w+\.json)`", guide))
    assert paths == {"/infrastructure/railway/etl.json", "/infrastructure/railway/api.json"}
    for path in paths:
        assert (repo / path.lstrip("/")).is_file()


def test_scopes_match_the_whitelist(guide: str, repo: Path) -> None:
    whitelist = json.loads((repo / "shared/schemas/query_whitelist.json").read_text())
    for scope in (whitelist["query_scope"], whitelist["schema_scope"]):
        assert f"| `{scope}` |" in guide, f"the Auth0 permissions table misses {scope}"
    assert "RS256" in guide and "Enable RBAC" in guide and "Add Permissions in the Access Token" in guide
    assert '"grant_type":"client_credentials"' in guide.replace("\\", "")


def test_local_token_commands_exist(guide: str, repo: Path) -> None:
    commands = re.findall(r"analytics-api (issuer-init|token) ([^)`\n]*)", guide)
    assert {c for c, _ in commands} == {"issuer-init", "token"}
    for command, rest in commands:
        api_parser().parse_args([command, *rest.split()])  # SystemExit (failure) on a wrong flag
    defaults = (repo / "infrastructure/compose/api-service.env").read_text()
    for line in ("AUTH0_JWKS_URL=file:///app/data/issuer/jwks.json", "AUTH0_API_AUDIENCE=https://analytics-api"):
        assert line in defaults and line.split("=", 1)[1] in guide


def test_every_compose_service_is_explained(guide: str, compose: dict) -> None:
    for name in compose["services"]:
        assert f"| `{name}` |" in guide, f"the compose section does not explain {name}"
