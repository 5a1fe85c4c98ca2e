"""API test fixtures: a published demo snapshot, a real RSA issuer behind a real JWKS endpoint,
settings per test, and an in-process client on create_app(settings)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer
from analytics_api.config import ApiSettings, get_settings
from analytics_api.main import create_app
from analytics_etl.config import get_settings as get_etl_settings
from analytics_etl.demo_source import create_demo_source
from analytics_etl.pipeline import run_sync
from analytics_shared.storage import LocalStore

DEMO_ROWS = 6000
# The smallest chunk size: the small demo snapshot (~1.5 MB) still spans several chunks.
ETL_CHUNK_SIZE = "256KiB"


class JwksServer:
    """Serves a JWKS document over real HTTP on loopback and counts fetches."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                server.fetches += 1
                body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def issuer() -> LocalIssuer:
    return LocalIssuer.generate(LOCAL_ISSUER)


@pytest.fixture
def jwks_server(issuer: LocalIssuer) -> Iterator[JwksServer]:
    server = JwksServer(issuer.jwks())
    yield server
    server.close()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo source and its first published snapshot, built once; tests get copies."""
    root = tmp_path_factory.mktemp("demo-template")
    create_demo_source(root / "source.db", rows=DEMO_ROWS, seed=7)
    settings = get_etl_settings(source_url=f"sqlite:///{root / 'source.db'}", storage_url=f"file://{root / 'store'}",
                                etl_state_dir=root / "state", cursor_lag_seconds=60, chunk_size=ETL_CHUNK_SIZE)
    run_sync(settings)
    return root


@pytest.fixture
def demo(tmp_path: Path, demo_template: Path) -> Path:
    """This test's own copy of the demo source, ETL state and store."""
    root = tmp_path / "demo"
    shutil.copytree(demo_template, root)
    return root


@pytest.fixture
def store(demo: Path) -> LocalStore:
    return LocalStore(demo / "store")


@pytest.fixture
def publish(demo: Path) -> Callable[[], object]:
    """Run the real ETL against this test's demo source: publishes a new snapshot if rows changed."""
    def run() -> object:
        settings = get_etl_settings(source_url=f"sqlite:///{demo / 'source.db'}", storage_url=f"file://{demo / 'store'}",
                                    etl_state_dir=demo / "state", cursor_lag_seconds=60, chunk_size=ETL_CHUNK_SIZE)
        return run_sync(settings)

    return run


@pytest.fixture
def make_settings(tmp_path: Path, store: LocalStore, jwks_server: JwksServer) -> Callable[..., ApiSettings]:
    def build(**overrides: object) -> ApiSettings:
        values: dict[str, object] = {
            "auth0_jwks_url": jwks_server.url, "auth0_issuer": LOCAL_ISSUER, "auth0_api_audience": LOCAL_AUDIENCE,
            "storage_url": store.url, "snapshot_cache_dir": tmp_path / "snapshot-cache",
            "snapshot_poll_seconds": 3600, "rate_limit_requests": 1000,
        }
        values.update(overrides)
        return get_settings(**values)

    return build


@pytest.fixture
def make_client(make_settings: Callable[..., ApiSettings]) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def build(*, peer: str = "testclient", **overrides: object) -> TestClient:
        """`peer`: the TCP client address the app sees."""
        client = TestClient(create_app(make_settings(**overrides)), client=(peer, 50000),
                            raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def token(issuer: LocalIssuer) -> Callable[..., str]:
    def mint(scopes: str = "read:analytics read:schema", **claims: object) -> str:
        return issuer.mint(scopes=scopes, **claims)

    return mint


@pytest.fixture
def auth(token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token()}"}
