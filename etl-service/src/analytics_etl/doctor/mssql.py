"""SQL Server extras: ODBC driver and TLS settings, Change Tracking on the database and each
table with its retention against SYNC_INTERVAL_SECONDS, ALLOW_SNAPSHOT_ISOLATION and the VIEW
CHANGE TRACKING permission (queries in mssql_catalog.py)."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import sqlalchemy as sa

from analytics_etl import mssql_catalog as catalog
from analytics_etl.config import EtlSettings
from analytics_etl.doctor.check import Check, fail, first_line, ok, warn
from analytics_etl.source import TableSpec

_YES = {"yes", "true", "1", "on", "mandatory", "strict"}


def installed_odbc_drivers() -> list[str]:
    import pyodbc  # ImportError without unixODBC's libodbc

    return pyodbc.drivers()


def client_checks(url: sa.engine.URL, drivers=installed_odbc_drivers) -> Iterator[Check]:  # noqa: ANN001
    """What this machine needs before it can connect: the ODBC driver and TLS settings (from the URL)."""
    query = {k.lower(): v for k, v in url.query.items()}
    if url.get_driver_name() == "pyodbc":
        driver = query.get("driver", "")
        try:
            installed = drivers()
        except ImportError as exc:
            yield fail("sql server", f"pyodbc cannot load: {exc}",
                       "install unixODBC and msodbcsql18 (as etl-service/Dockerfile does)")
            installed = None
        if installed is not None and driver in installed:
            yield ok("sql server", f"ODBC driver {driver!r} installed")
        elif installed is not None:
            yield fail("sql server", f"ODBC driver {driver!r} is not installed (installed: {installed or 'none'})",
                       "install msodbcsql18 (as etl-service/Dockerfile does) or set MSSQL_DRIVER")
    encrypt = str(query.get("encrypt", "yes")).lower()
    trust = str(query.get("trustservercertificate", "no")).lower() in _YES
    if encrypt not in _YES:
        yield warn("sql server", "connection not encrypted (Encrypt=no)", "drop Encrypt=no from SOURCE_URL")
    elif trust:
        yield warn("sql server", "TLS on, but the server certificate is not verified (TrustServerCertificate)",
                   "only for a self-signed test server: set MSSQL_TRUST_SERVER_CERTIFICATE=false and give "
                   "the server a certificate this machine trusts")
    else:
        yield ok("sql server", "TLS on, server certificate verified")


def database_checks(engine: sa.Engine, settings: EtlSettings,
                    specs: dict[str, TableSpec]) -> Generator[Check, None, set[tuple[str, str]]]:
    """Change Tracking and snapshot isolation; returns the tracked (schema, table) pairs."""
    uses_ct = any(s.detection == "change_tracking" for s in specs.values())
    db = engine.url.database
    with engine.connect() as conn:
        ct = conn.execute(catalog.database_change_tracking_sql()).first()
        tracked = {(s, t) for s, t in conn.execute(catalog.tracked_tables_sql()).all()}
        snapshot = conn.execute(catalog.snapshot_isolation_sql()).scalar()
        try:
            encrypted = conn.execute(catalog.connection_encryption_sql()).scalar()
        except sa.exc.DBAPIError:
            encrypted = None  # needs VIEW SERVER STATE: the URL check above stands
    if ct is None:
        yield warn("sql server", "Change Tracking is off for the database: tables use rowversion, timestamp or full",
                   f"ALTER DATABASE [{db}] SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)")
    else:
        seconds = catalog.retention_seconds(ct[0], ct[1])
        interval = settings.sync_interval_seconds
        text = f"Change Tracking on, retention {ct[0]} {str(ct[1]).lower()}"
        fix = f"ALTER DATABASE [{db}] SET CHANGE_TRACKING (CHANGE_RETENTION = 2 DAYS)"
        if seconds <= interval:
            yield fail("sql server", f"{text}: not above SYNC_INTERVAL_SECONDS={interval}, every sync reloads", fix)
        elif seconds < 3 * interval:
            yield warn("sql server", f"{text}: under 3 x SYNC_INTERVAL_SECONDS; one missed sync reloads", fix)
        else:
            yield ok("sql server", f"{text} (SYNC_INTERVAL_SECONDS={interval})")
    if str(snapshot).upper() == "ON":
        yield ok("sql server", "ALLOW_SNAPSHOT_ISOLATION on")
    else:
        check = fail if uses_ct else warn
        yield check("sql server", f"ALLOW_SNAPSHOT_ISOLATION is {snapshot}: Change Tracking reads need it",
                    f"ALTER DATABASE [{db}] SET ALLOW_SNAPSHOT_ISOLATION ON")
    if encrypted is not None and str(encrypted).upper() != "TRUE":
        yield warn("sql server", "this connection is not encrypted", "set Encrypt=yes (the default)")
    return tracked


def table_checks(engine: sa.Engine, spec: TableSpec, subject: str) -> Iterator[Check]:
    qualified = f"{spec.schema or 'dbo'}.{spec.name}"
    try:
        with engine.connect() as conn:
            allowed = conn.execute(catalog.view_change_tracking_sql(qualified)).scalar()
    except sa.exc.DBAPIError as exc:
        yield fail(subject, f"cannot check VIEW CHANGE TRACKING: {first_line(exc)}")
        return
    if allowed == 1:
        yield ok(subject, "VIEW CHANGE TRACKING granted")
    else:
        yield fail(subject, "no VIEW CHANGE TRACKING permission: CHANGETABLE reads fail",
                   f"GRANT VIEW CHANGE TRACKING ON {qualified} TO the ETL login")
