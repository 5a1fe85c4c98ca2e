"""ETL settings from the environment (names fixed by DESIGN.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote_plus

from pydantic import AfterValidator, ByteSize, Field, PrivateAttr, model_validator

from analytics_etl.table_config import TableOptions, load_table_config
from analytics_shared.chunks import check_chunk_size
from analytics_shared.settings import MemorySize, StorageSettings, load_settings

# "256KiB", "1MiB" or bytes; a multiple of DuckDB's 256 KiB block.
ChunkSize = Annotated[ByteSize, AfterValidator(check_chunk_size)]


def _webhook_url(value: str) -> str:
    # Checked at start: a typo would otherwise surface only when the first incident is lost.
    if value and not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s):// URL (a Slack incoming webhook or anything accepting its JSON)")
    return value


WebhookUrl = Annotated[str, AfterValidator(_webhook_url)]


class EtlSettings(StorageSettings):
    source_url: str = ""
    mssql_host: str = ""
    mssql_port: int = 1433
    mssql_database: str = ""
    mssql_username: str = ""
    mssql_password: str = ""
    mssql_driver: str = "ODBC Driver 18 for SQL Server"
    # Accept the server's certificate without verifying it: only for a self-signed test server
    # (docker-compose turns it on for its own); TLS itself stays on either way.
    mssql_trust_server_certificate: bool = False
    tables_to_sync: str = "inventory,products,orders,transactions,customers"
    sync_interval_seconds: int = Field(60, ge=1)
    change_detection: Literal["auto", "timestamp", "rowversion", "change_tracking", "full"] = "auto"
    cursor_column: str = "updated_at"
    cursor_lag_seconds: int = Field(300, ge=0)
    delete_reconcile_every: int = Field(10, ge=0)
    history_keep: int = Field(24, ge=1)
    # Format 2 (chunks) by default; 1 keeps publishing whole files for API hosts not yet upgraded.
    manifest_format: int = Field(2, ge=1, le=2)  # an int, not Literal[1, 2]: the environment gives text
    chunk_size: ChunkSize = ByteSize(256 * 1024)
    upload_concurrency: int = Field(8, ge=1, le=64)
    # A superseded version (its index and chunks) stays at least this long, so a reader still
    # loading it finishes; unreferenced chunks younger than this are never deleted, and the
    # chunk garbage collection runs at most once per this period.
    gc_grace_seconds: int = Field(3600, ge=0)
    etl_state_dir: Path = Path("./data/etl-state")
    batch_size: int = Field(50_000, ge=100)
    # Full loads of tables with one integer key and at least PARTITION_MIN_ROWS rows (the
    # catalog's estimate) are read as many small key ranges by this many workers while DuckDB
    # inserts (PostgreSQL, SQL Server); 1 = one connectorx stream. 2: faster than one stream
    # even on a 2-core host shared with the source, at ~100 MB more peak memory (docs/benchmarks.md).
    read_partitions: int = Field(2, ge=1, le=16)
    partition_min_rows: int = Field(1_000_000, ge=0)
    # Bounds the build's buffer pool, which otherwise keeps every block it wrote or read (up to 80%
    # of the RAM). 512MB: a 1 % change to a 55M-row source needs ~300 MB for its largest table
    # (256MB failed it); a 16.5M-row full load peaks at ~660 MB RSS instead of ~720 MB
    # (docs/benchmarks.md). Empty: DuckDB's own default.
    duckdb_memory_limit: MemorySize = "512MB"
    views_path: Path | None = None
    max_retries: int = Field(3, ge=0)
    # ---- operating the worker: HTTP (/health, /ready, /metrics), alerts, retention by age
    etl_http_port: int | None = Field(None, ge=0, le=65535)  # unset: PORT (Railway's); neither: no HTTP
    port: int | None = Field(None, ge=0, le=65535)
    # /ready, `analytics-etl health` and the snapshot-age alert: the last good sync (published or
    # unchanged) may be this old. Unset: 3 x SYNC_INTERVAL_SECONDS + 300.
    ready_max_age_seconds: int | None = Field(None, ge=1)
    alert_webhook_url: WebhookUrl = ""
    history_keep_hours: float = Field(0, ge=0)  # versions younger than this are kept too
    runs_keep_days: int = Field(30, ge=1)
    # Per-table overrides (table_config.py); read by get_settings, which reports its mistakes.
    tables_config_path: Path | None = None
    _tables: dict[str, TableOptions] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _source(self):  # noqa: ANN202 - pydantic hook
        if not self.source_url:
            if not self.mssql_host:
                raise ValueError("set SOURCE_URL, or MSSQL_HOST with MSSQL_DATABASE/USERNAME/PASSWORD")
            missing = [n for n in ("mssql_database", "mssql_username", "mssql_password") if not getattr(self, n)]
            if missing:
                raise ValueError("missing " + ", ".join(m.upper() for m in missing))
            self.source_url = (
                f"mssql+pyodbc://{quote_plus(self.mssql_username)}:{quote_plus(self.mssql_password)}"
                f"@{self.mssql_host}:{self.mssql_port}/{self.mssql_database}"
                f"?driver={quote_plus(self.mssql_driver)}&Encrypt=yes"
                + ("&TrustServerCertificate=yes" if self.mssql_trust_server_certificate else "")
            )
        if not self.table_names:
            raise ValueError("TABLES_TO_SYNC names no table")
        return self

    @property
    def http_port(self) -> int | None:
        return self.etl_http_port if self.etl_http_port is not None else self.port

    @property
    def ready_max_age(self) -> int:
        return self.ready_max_age_seconds or 3 * self.sync_interval_seconds + 300

    @property
    def table_names(self) -> list[str]:
        """TABLES_TO_SYNC, then the tables only the tables file names."""
        listed = [t.strip() for t in self.tables_to_sync.split(",") if t.strip()]
        targets = {t.split(".")[-1] for t in listed}
        return listed + [t for t in self._tables if t.split(".")[-1] not in targets]

    def table_options(self, qualified: str) -> TableOptions:
        """The tables file's options for a TABLES_TO_SYNC entry ([schema.]table or its bare name)."""
        if qualified in self._tables:
            return self._tables[qualified]
        target = qualified.split(".")[-1]
        return next((o for k, o in self._tables.items() if k.split(".")[-1] == target), TableOptions())

    @property
    def configured_tables(self) -> dict[str, TableOptions]:
        """The tables file's entries, by the name it gives them."""
        return dict(self._tables)

    def with_tables(self, tables: dict[str, TableOptions]) -> "EtlSettings":
        self._tables = dict(tables)
        return self


def get_settings(**overrides: object) -> EtlSettings:
    settings = load_settings(EtlSettings, **overrides)
    if settings.tables_config_path is not None:
        settings.with_tables(load_table_config(settings.tables_config_path))
    return settings
