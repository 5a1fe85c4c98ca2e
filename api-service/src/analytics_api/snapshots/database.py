"""One opened snapshot: a read-only, locked-down DuckDB database plus what it holds."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from analytics_api.errors import SnapshotRejected
from analytics_api.snapshots.files import LocalCopy
from analytics_shared.manifest import Manifest


def open_hardened(path: Path, *, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    """Read-only, no file or network access, no extension loading, then configuration locked.

    Defence in depth behind the SQL whitelist: even a query that slipped past it cannot
    read files, load code or turn these settings back on.
    """
    config = {
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_community_extensions": False,
        "python_enable_replacements": False,
        "memory_limit": memory_limit,
        "threads": threads,
        "lock_configuration": True,
    }
    try:
        return duckdb.connect(str(path), read_only=True, config=config)
    except duckdb.Error as exc:
        raise SnapshotRejected(f"cannot open snapshot {path.name}: {str(exc).splitlines()[0][:300]}") from None


def read_columns(conn: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, dict[str, str]]:
    """Column names and DuckDB types of the given tables/views, in table order."""
    rows = conn.execute(
        "SELECT lower(table_name), column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND lower(table_name) IN (SELECT unnest($1::VARCHAR[])) "
        "ORDER BY table_name, ordinal_position", [tables]).fetchall()
    schema: dict[str, dict[str, str]] = {}
    for table, column, dtype in rows:
        schema.setdefault(table, {})[column] = dtype
    return schema


@dataclass(eq=False)
class Snapshot:
    manifest: Manifest
    local: LocalCopy
    conn: duckdb.DuckDBPyConnection
    schema: dict[str, dict[str, str]]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    users: int = 0
    retired: bool = False
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def path(self) -> Path:
        return self.local.path

    def enter(self) -> bool:
        """Take one use; False if it was already retired and closed (take the new current)."""
        with self._lock:
            if self.closed:
                return False
            self.users += 1
            return True

    def leave(self) -> bool:
        """Drop one use; True when it is retired and now unused: the caller must close it."""
        with self._lock:
            self.users -= 1
            self.closed = self.retired and self.users == 0
            return self.closed

    def retire(self) -> bool:
        """No new uses; True when nobody uses it any more: the caller must close it."""
        with self._lock:
            self.retired = True
            self.closed = self.users == 0
            return self.closed


def load_snapshot(manifest: Manifest, local: LocalCopy, tables: list[str], *, memory_limit: str,
                  threads: int) -> Snapshot:
    conn = open_hardened(local.path, memory_limit=memory_limit, threads=threads)
    try:
        schema = read_columns(conn, tables)
        conn.execute("SELECT 1").fetchall()
    except duckdb.Error as exc:
        conn.close()
        raise SnapshotRejected(f"snapshot {manifest.version} is unreadable: {str(exc).splitlines()[0][:300]}") from None
    return Snapshot(manifest=manifest, local=local, conn=conn, schema=schema)
