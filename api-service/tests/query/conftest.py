"""Fixtures for the SQL guard tests: the shipped guard and copies of one real published snapshot."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from analytics_api.query.guard import SqlGuard
from analytics_api.snapshots.database import open_hardened, read_columns
from analytics_api.whitelist import Whitelist, load_whitelist
from analytics_shared.manifest import read_manifest
from analytics_shared.snapshot_files import fetch_snapshot
from analytics_shared.storage import LocalStore

WHITELIST_PATH = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "query_whitelist.json"


@pytest.fixture(scope="session")
def shipped_whitelist() -> Whitelist:
    return load_whitelist(WHITELIST_PATH)


@pytest.fixture(scope="session")
def guard(shipped_whitelist: Whitelist) -> SqlGuard:
    return SqlGuard(shipped_whitelist)


@pytest.fixture(scope="session")
def snapshot_file(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The snapshot the real ETL published for the demo source, downloaded as the API would."""
    store = LocalStore(demo_template / "store")
    manifest, _ = read_manifest(store)
    assert manifest is not None
    path = tmp_path_factory.mktemp("guard-snapshot") / "snapshot.db"
    fetch_snapshot(store, manifest, path)
    return path


def _copy(snapshot_file: Path, name: str) -> Path:
    # One file per connection: DuckDB refuses two configurations for one file in one process.
    target = snapshot_file.with_name(name)
    if not target.exists():
        shutil.copyfile(snapshot_file, target)
    return target


@pytest.fixture(scope="session")
def hardened(snapshot_file: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection the API uses: read-only, no external access, configuration locked."""
    conn = open_hardened(_copy(snapshot_file, "hardened.db"), memory_limit="1GB", threads=1)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def direct(snapshot_file: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A plain read-only connection for running the user's original SQL untouched."""
    conn = duckdb.connect(str(_copy(snapshot_file, "direct.db")), read_only=True, config={"threads": 1})
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def snapshot_schema(hardened: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    return read_columns(hardened, ["inventory", "products", "orders", "transactions", "customers"])
