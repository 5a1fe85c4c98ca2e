"""SQL Server catalog queries `analytics-etl doctor` asks (compiled with the mssql dialect in
the default tests, run against a real server by the `mssql` suite)."""

from __future__ import annotations

import sqlalchemy as sa

# sys.change_tracking_databases.retention_period_units_desc -> seconds
RETENTION_UNIT_SECONDS = {"MINUTES": 60, "HOURS": 3600, "DAYS": 86400}


def database_change_tracking_sql() -> sa.TextClause:
    """One row when Change Tracking is on for the database: (retention, unit, auto cleanup)."""
    return sa.text("SELECT retention_period, retention_period_units_desc, is_auto_cleanup_on "
                   "FROM sys.change_tracking_databases WHERE database_id = DB_ID()")


def tracked_tables_sql() -> sa.TextClause:
    """(schema, table) of every table with Change Tracking enabled."""
    return sa.text("SELECT OBJECT_SCHEMA_NAME(object_id) AS schema_name, OBJECT_NAME(object_id) AS table_name "
                   "FROM sys.change_tracking_tables")


def snapshot_isolation_sql() -> sa.TextClause:
    """'ON' when ALLOW_SNAPSHOT_ISOLATION is on (Change Tracking reads need it)."""
    return sa.text("SELECT snapshot_isolation_state_desc FROM sys.databases WHERE database_id = DB_ID()")


def view_change_tracking_sql(qualified: str) -> sa.TextClause:
    """1 when this login may read the table's change history (VIEW CHANGE TRACKING)."""
    return sa.text("SELECT HAS_PERMS_BY_NAME(:object_name, 'OBJECT', 'VIEW CHANGE TRACKING')").bindparams(
        sa.bindparam("object_name", qualified, type_=sa.Unicode))


def connection_encryption_sql() -> sa.TextClause:
    """Whether this connection is encrypted (needs VIEW SERVER STATE; absent otherwise)."""
    return sa.text("SELECT encrypt_option FROM sys.dm_exec_connections WHERE session_id = @@SPID")


def retention_seconds(period: int, unit: str) -> int:
    return int(period) * RETENTION_UNIT_SECONDS.get(str(unit).upper(), 86400)
