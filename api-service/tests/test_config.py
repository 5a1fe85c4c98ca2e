"""Start-up configuration: bad settings or a bad whitelist stop the service with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics_api.config import DEFAULT_WHITELIST, get_settings
from analytics_api.main import create_app
from analytics_shared.errors import ConfigError

BIN = Path(sys.executable).parent / "analytics-api"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH0_", "RATE_LIMIT", "QUERY_", "STORAGE_"))}
    env.update(extra)
    return env


def test_auth0_domain_derives_jwks_and_issuer() -> None:
    s = get_settings(auth0_domain="https://tenant.eu.auth0.com/", auth0_api_audience="https://api")
    assert s.auth0_jwks_url == "https://tenant.eu.auth0.com/.well-known/jwks.json"
    assert s.auth0_issuer == "https://tenant.eu.auth0.com/"


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"auth0_api_audience": "https://api"}, "AUTH0_DOMAIN"),
    ({"auth0_domain": "t.auth0.com"}, "AUTH0_API_AUDIENCE"),
    ({"auth0_jwks_url": "file:///x/jwks.json", "auth0_api_audience": "a"}, "AUTH0_ISSUER"),
    ({"auth0_jwks_url": "http://evil.example/jwks.json", "auth0_issuer": "i", "auth0_api_audience": "a"},
     "AUTH0_JWKS_URL: plain http:// is only allowed to a loopback host"),
    ({"auth0_domain": "t.auth0.com", "auth0_api_audience": "a", "rate_limit_storage_url": "mongodb://x"}, "RATE_LIMIT_STORAGE_URL"),
    ({"auth0_domain": "t.auth0.com", "auth0_api_audience": "a", "query_timeout_seconds": 0}, "QUERY_TIMEOUT_SECONDS"),
    ({"auth0_domain": "t.auth0.com", "auth0_api_audience": "a", "forwarded_allow_ips": "10.0.0.1/8"},
     "FORWARDED_ALLOW_IPS: 10.0.0.1/8 has host bits set"),
    ({"auth0_domain": "t.auth0.com", "auth0_api_audience": "a", "forwarded_allow_ips": "*, proxy.internal"},
     "FORWARDED_ALLOW_IPS: "),
])
def test_bad_settings_fail_with_the_variable_named(overrides, fragment) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError) as info:
        get_settings(**overrides)
    assert fragment in info.value.message and "\n" not in info.value.message


@pytest.mark.parametrize(("url", "fragment"), [
    ("http://127.0.0.1.attacker.example/jwks.json", "loopback host (127.0.0.1, ::1, localhost), not '127.0.0.1.attacker"),
    ("http://localhost.attacker.example/jwks.json", "not 'localhost.attacker.example'"),
    ("http://localhost@attacker.example/jwks.json", "no user@ part (this one would fetch from 'attacker.example')"),
    ("http://127.0.0.1:8080@attacker.example/jwks.json", "from 'attacker.example'"),
    ("https://tenant.auth0.com@attacker.example/.well-known/jwks.json", "from 'attacker.example'"),
    ("https://user:hunter2@tenant.auth0.com/jwks.json", "no user@ part"),
    ("http://attacker.example/jwks.json?next=http://127.0.0.1/", "not 'attacker.example'"),
    ("http://0x7f000001/jwks.json", "not '0x7f000001'"),  # a name to the URL parser, whatever a resolver makes of it
    ("http://10.0.0.1/jwks.json", "not '10.0.0.1'"),
    ("ftp://127.0.0.1/jwks.json", "must be https://HOST/"),
    ("https:///jwks.json", "must be https://HOST/"),
    ("//tenant.auth0.com/jwks.json", "must be https://HOST/"),
    ("http://[::1/jwks.json", "is not a valid URL"),
    ("http://127.0.0.1:99999/jwks.json", "is not a valid URL"),
])
def test_jwks_url_host_is_parsed_not_prefix_matched(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_settings(auth0_jwks_url=url, auth0_issuer="i", auth0_api_audience="a")
    message = info.value.message
    assert "AUTH0_JWKS_URL: " in message and fragment in message and "\n" not in message, message
    assert "hunter2" not in message


@pytest.mark.parametrize("url", [
    "https://tenant.eu.auth0.com/.well-known/jwks.json", "HTTPS://Tenant.Auth0.com/jwks.json",
    "http://127.0.0.1:8080/.well-known/jwks.json", "http://127.3.2.1/jwks.json", "http://localhost/jwks.json",
    "HTTP://LOCALHOST:9000/jwks.json", "http://[::1]:9000/jwks.json", "file:///app/data/issuer/jwks.json",
    "file://./data/issuer/jwks.json",
])
def test_jwks_url_accepts_https_files_and_loopback_http(url: str) -> None:
    assert get_settings(auth0_jwks_url=url, auth0_issuer="i", auth0_api_audience="a").auth0_jwks_url == url


def test_a_jwks_url_derived_from_the_domain_names_the_domain() -> None:
    with pytest.raises(ConfigError) as info:
        get_settings(auth0_domain="tenant.auth0.com@attacker.example", auth0_api_audience="a")
    assert "AUTH0_DOMAIN: takes no user@ part (this one would fetch from 'attacker.example')" in info.value.message


@pytest.mark.parametrize(("content", "fragment"), [
    ("{not json", "not valid JSON"),
    (json.dumps({"tables": {}, "functions": []}), "allows no table"),
    (json.dumps({"tables": {"orders": {"colums": ["id"]}}, "functions": []}), "tables.orders.colums"),
    (json.dumps({"tables": {"orders": {}}, "functions": ["COUNT"],
                 "queries": {"q": {"sql": "SELECT * FROM secrets"}}}), "named query 'q'"),
    (json.dumps({"tables": {"orders": {}}, "functions": [],
                 "queries": {"q": {"sql": "SELECT 1 FROM orders", "params": {"p": {"type": "uuid"}}}}}), "queries.q.params.p.type"),
])
def test_malformed_whitelist_stops_the_start(make_settings, tmp_path, content, fragment) -> None:  # noqa: ANN001
    path = tmp_path / "whitelist.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        create_app(make_settings(query_whitelist_path=path))
    assert fragment in info.value.message and "QUERY_WHITELIST_PATH" in info.value.message


def test_shipped_whitelist_allows_the_five_demo_tables() -> None:
    data = json.loads(DEFAULT_WHITELIST.read_text())
    assert set(data["tables"]) == {"inventory", "products", "orders", "transactions", "customers"}
    assert all(rule["columns"] is None and rule["scope"] is None for rule in data["tables"].values())
    assert data["query_scope"] == "read:analytics"


def test_console_script_reports_missing_config_in_one_line() -> None:
    result = subprocess.run([str(BIN), "check-config"], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "AUTH0_DOMAIN" in result.stderr and "Traceback" not in result.stderr


def test_console_script_check_config_ok(tmp_path) -> None:  # noqa: ANN001
    env = clean_env(AUTH0_DOMAIN="tenant.auth0.com", AUTH0_API_AUDIENCE="https://api",
                    STORAGE_URL=f"file://{tmp_path}/store")
    result = subprocess.run([str(BIN), "check-config"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 5 tables")


def test_issuer_init_and_token_commands(tmp_path) -> None:  # noqa: ANN001
    from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LocalIssuer

    init = subprocess.run([str(BIN), "issuer-init", str(tmp_path / "iss")], capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    assert oct((tmp_path / "iss" / "issuer-key.pem").stat().st_mode & 0o777) == "0o600"
    again = subprocess.run([str(BIN), "issuer-init", str(tmp_path / "iss")], capture_output=True, text=True, timeout=60)
    assert again.stdout == init.stdout  # a second run keeps the key
    token = subprocess.run([str(BIN), "token", "--issuer-dir", str(tmp_path / "iss"), "--sub", "alice"],
                           env=clean_env(), capture_output=True, text=True, timeout=60).stdout.strip()
    import jwt

    key = LocalIssuer.load(tmp_path / "iss").key.public_key()
    decoded = jwt.decode(token, key, algorithms=["RS256"], audience=LOCAL_AUDIENCE)
    assert decoded["sub"] == "alice" and "read:analytics" in decoded["scope"]
