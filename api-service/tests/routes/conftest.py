"""Fixtures for suites that attack one snapshot through the real app with their own whitelist."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer
from analytics_api.config import get_settings
from analytics_api.main import create_app
from analytics_shared.manifest import read_manifest
from analytics_shared.snapshot_files import fetch_snapshot
from analytics_shared.storage import LocalStore

WHITELIST_PATH = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "query_whitelist.json"


@pytest.fixture(scope="module")
def snapshot_copy(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """This module's copy of the demo store, and its snapshot as one file (for the oracles)."""
    root = tmp_path_factory.mktemp("attacked")
    shutil.copytree(demo_template / "store", root / "store")
    store = LocalStore(root / "store")
    manifest, _ = read_manifest(store)
    fetch_snapshot(store, manifest, root / "snapshot.db")
    return root, root / "snapshot.db"


@pytest.fixture(scope="session")
def serving(issuer: LocalIssuer) -> Callable[[Path, dict], AbstractContextManager[TestClient]]:
    """serving(root, whitelist): the app on `root`'s store with this whitelist and the issuer's keys."""
    return partial(_serving, issuer=issuer)


@contextmanager
def _serving(root: Path, whitelist: dict, *, issuer: LocalIssuer) -> Iterator[TestClient]:
    (root / "whitelist.json").write_text(json.dumps(whitelist))
    (root / "jwks.json").write_text(json.dumps(issuer.jwks()))
    settings = get_settings(auth0_jwks_url=f"file://{root / 'jwks.json'}", auth0_issuer=LOCAL_ISSUER,
                            auth0_api_audience=LOCAL_AUDIENCE, storage_url=f"file://{root / 'store'}",
                            snapshot_cache_dir=root / "cache", snapshot_poll_seconds=3600,
                            rate_limit_requests=100_000, query_whitelist_path=root / "whitelist.json")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client
