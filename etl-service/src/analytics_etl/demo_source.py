"""Demo SQLite source database for exercising the ETL without SQL Server.

``create_demo_source`` builds a deterministic, realistic-looking OLTP-style
database (inventory, products, customers, orders, transactions) where every
table carries ``id``, ``created_at`` and ``updated_at`` so incremental
extraction by ``updated_at`` can be tested end to end.  ``mutate_demo_source``
then applies a small batch of updates, inserts and deletes, simulating the
activity that happens between two ETL runs.

Timestamps are stored as ISO text ``YYYY-MM-DD HH:MM:SS.ffffff`` (always with
fractional seconds) so they sort lexically and keep microsecond precision.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import islice

__all__ = ["DEMO_TABLES", "create_demo_source", "mutate_demo_source"]

DEMO_TABLES: tuple[str, ...] = ("inventory", "products", "orders", "transactions", "customers")

# Share of the total row budget per table; orders/transactions dominate like a
# real OLTP system.  Creation order respects the logical foreign keys.
_TABLE_SHARES: dict[str, float] = {
    "products": 0.02,
    "customers": 0.10,
    "inventory": 0.08,
    "orders": 0.40,
    "transactions": 0.40,
}

_CHUNK_SIZE = 50_000

# Fixed anchor keeps generated data identical across runs and machines.
_HISTORY_START = datetime(2022, 1, 1)
_HISTORY_SPAN_US = 2 * 365 * 86_400 * 1_000_000

_SCHEMA: dict[str, str] = {
    "products": """
        CREATE TABLE products (
            id INTEGER PRIMARY KEY,
            sku VARCHAR(32) NOT NULL,
            name VARCHAR(200) NOT NULL,
            category VARCHAR(50),
            price NUMERIC(12,2) NOT NULL,
            active BOOLEAN NOT NULL,
            description VARCHAR(500),
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL
        )""",
    "customers": """
        CREATE TABLE customers (
            id INTEGER PRIMARY KEY,
            email VARCHAR(200) NOT NULL,
            full_name VARCHAR(200) NOT NULL,
            country VARCHAR(2),
            signup_date DATE NOT NULL,
            loyalty_tier VARCHAR(20),
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL
        )""",
    "inventory": """
        CREATE TABLE inventory (
            id INTEGER PRIMARY KEY,
            product_id INTEGER NOT NULL,
            warehouse VARCHAR(50) NOT NULL,
            quantity INTEGER NOT NULL,
            price NUMERIC(12,2) NOT NULL,
            last_counted_at DATETIME,
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL
        )""",
    "orders": """
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL,
            status VARCHAR(20) NOT NULL,
            total NUMERIC(12,2) NOT NULL,
            currency VARCHAR(3) NOT NULL,
            ordered_at DATETIME NOT NULL,
            shipped_at DATETIME,
            note VARCHAR(500),
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL
        )""",
    "transactions": """
        CREATE TABLE transactions (
            id INTEGER PRIMARY KEY,
            order_id INTEGER NOT NULL,
            amount NUMERIC(12,2) NOT NULL,
            method VARCHAR(20) NOT NULL,
            reference VARCHAR(64),
            succeeded BOOLEAN NOT NULL,
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL
        )""",
}

_PRODUCT_NAMES = (
    "Café crème",
    "東京 tea",
    "Crème brûlée mix",
    "Jalapeño salsa",
    "Smørrebrød kit",
    "Straße map",
    "Chai latte",
    "Espresso beans",
    "Green tea",
    "Olive oil",
    "Dark chocolate",
    "Ceramic mug",
    "Notebook A5",
    "Desk lamp",
    "Wireless mouse",
    "Ergonomic chair",
)
_CATEGORIES = ("beverages", "food", "kitchen", "office", "electronics", "furniture")
_FIRST_NAMES = ("José", "Zoë", "Ana", "Björn", "Chloé", "David", "Emma", "Łukasz", "Mia", "Noah", "芳", "Søren")
_LAST_NAMES = ("Álvarez", "Müller", "Smith", "Nguyễn", "O'Brien", "Dubois", "王", "Kowalski", "Rossi", "Ødegaard")
_COUNTRIES = ("US", "DE", "FR", "GB", "JP", "BR", "IN", "PL", "NO", "ES")
_TIERS = ("bronze", "silver", "gold", "platinum")
_WAREHOUSES = ("north-1", "north-2", "south-1", "east-1", "west-1", "central")
_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")
_CURRENCIES = ("USD", "EUR", "GBP", "JPY")
_METHODS = ("card", "paypal", "bank_transfer", "gift_card", "cash")
_NOTES = ("Leave at door", "Gift — please wrap", "Livraison après 18h", "配達時間指定", "Call on arrival")

_COLUMNS: dict[str, tuple[str, ...]] = {
    "products": ("id", "sku", "name", "category", "price", "active", "description", "created_at", "updated_at"),
    "customers": ("id", "email", "full_name", "country", "signup_date", "loyalty_tier", "created_at", "updated_at"),
    "inventory": ("id", "product_id", "warehouse", "quantity", "price", "last_counted_at", "created_at", "updated_at"),
    "orders": (
        "id", "customer_id", "status", "total", "currency", "ordered_at", "shipped_at", "note", "created_at",
        "updated_at",
    ),
    "transactions": ("id", "order_id", "amount", "method", "reference", "succeeded", "created_at", "updated_at"),
}

_Row = tuple
_RowFactory = Callable[[int, str, str], _Row]


def format_timestamp(value: datetime) -> str:
    """Render a naive UTC datetime in the on-disk format (always with microseconds)."""
    return value.isoformat(" ", "microseconds")


def split_row_budget(rows: int) -> dict[str, int]:
    """Split ``rows`` across the tables by ``_TABLE_SHARES``; every table gets >= 1 row."""
    if rows < len(_TABLE_SHARES):
        raise ValueError(f"rows must be >= {len(_TABLE_SHARES)}, got {rows}")
    spare = rows - len(_TABLE_SHARES)
    counts = {table: 1 + int(spare * share) for table, share in _TABLE_SHARES.items()}
    # Rounding remainder goes to the largest table so the total is exact.
    counts["transactions"] += rows - sum(counts.values())
    return counts


def make_row_factories(counts: dict[str, int], rng: random.Random) -> dict[str, _RowFactory]:
    """Build per-table callables turning (id, created_at, updated_at) into a row tuple."""
    rand = rng.random
    n_products = max(counts.get("products", 1), 1)
    n_customers = max(counts.get("customers", 1), 1)
    n_orders = max(counts.get("orders", 1), 1)

    # Index lookups via int(rand() * n) are much faster than rng.choice/randint,
    # which matters at millions of rows.
    def pick(seq: tuple[str, ...]) -> str:
        return seq[int(rand() * len(seq))]

    def product_row(i: int, created: str, updated: str) -> _Row:
        # ids start at 1, so shift to make product 1 the first name verbatim.
        base = _PRODUCT_NAMES[(i - 1) % len(_PRODUCT_NAMES)]
        series = (i - 1) // len(_PRODUCT_NAMES)
        name = base if series == 0 else f"{base} #{series}"
        category = None if rand() < 0.05 else pick(_CATEGORIES)
        description = None if rand() < 0.3 else f"{base} — item {i}"
        return (i, f"SKU-{i:07d}", name, category, round(1 + rand() * 499, 2), int(rand() < 0.9), description,
                created, updated)

    def customer_row(i: int, created: str, updated: str) -> _Row:
        first, last = pick(_FIRST_NAMES), pick(_LAST_NAMES)
        country = None if rand() < 0.05 else pick(_COUNTRIES)
        tier = None if rand() < 0.4 else pick(_TIERS)
        return (i, f"customer{i}@example.com", f"{first} {last}", country, created[:10], tier, created, updated)

    def inventory_row(i: int, created: str, updated: str) -> _Row:
        counted = None if rand() < 0.2 else updated
        return (i, 1 + int(rand() * n_products), pick(_WAREHOUSES), int(rand() * 1000), round(1 + rand() * 499, 2),
                counted, created, updated)

    def order_row(i: int, created: str, updated: str) -> _Row:
        status = pick(_STATUSES)
        shipped = updated if status in ("shipped", "delivered") else None
        note = pick(_NOTES) if rand() < 0.1 else None
        return (i, 1 + int(rand() * n_customers), status, round(5 + rand() * 995, 2), pick(_CURRENCIES), created,
                shipped, note, created, updated)

    def transaction_row(i: int, created: str, updated: str) -> _Row:
        reference = None if rand() < 0.15 else f"TX{i:010d}"
        return (i, 1 + int(rand() * n_orders), round(1 + rand() * 999, 2), pick(_METHODS), reference,
                int(rand() < 0.97), created, updated)

    return {
        "products": product_row,
        "customers": customer_row,
        "inventory": inventory_row,
        "orders": order_row,
        "transactions": transaction_row,
    }


def generate_rows(count: int, factory: _RowFactory, rng: random.Random) -> Iterator[_Row]:
    """Yield ``count`` rows with created_at rising with id across the history window."""
    rand = rng.random
    start = _HISTORY_START
    step_us = _HISTORY_SPAN_US // max(count, 1)
    td = timedelta
    for i in range(1, count + 1):
        created_dt = start + td(microseconds=(i - 1) * step_us + int(rand() * step_us))
        # Most rows were never touched after creation; some were edited later.
        if rand() < 0.7:
            updated_dt = created_dt
        else:
            updated_dt = created_dt + td(microseconds=int(rand() * 30 * 86_400 * 1_000_000))
        created = created_dt.isoformat(" ", "microseconds")
        updated = created if updated_dt is created_dt else updated_dt.isoformat(" ", "microseconds")
        yield factory(i, created, updated)


def insert_chunked(conn: sqlite3.Connection, table: str, rows: Iterator[_Row]) -> None:
    """executemany in fixed-size chunks so memory stays bounded for huge tables."""
    columns = _COLUMNS[table]
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    while chunk := list(islice(rows, _CHUNK_SIZE)):
        conn.executemany(sql, chunk)


def create_demo_source(path: str | os.PathLike, *, rows: int = 10_000, seed: int = 7) -> dict[str, int]:
    """Create (overwriting) a demo SQLite source with ``rows`` rows in total; return {table: rowcount}."""
    path = os.fspath(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)

    counts = split_row_budget(rows)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # Durability is irrelevant for throwaway demo data; speed is not.
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        for table in _TABLE_SHARES:
            conn.execute(_SCHEMA[table])
            # Separate RNG per table keeps each table's data independent of chunking and of the others.
            table_rng = random.Random(f"{seed}:{table}")
            factory = make_row_factories(counts, table_rng)[table]
            insert_chunked(conn, table, generate_rows(counts[table], factory, table_rng))
            # Index after the bulk load: building once is cheaper than maintaining it per insert.
            conn.execute(f"CREATE INDEX ix_{table}_updated_at ON {table} (updated_at)")
        conn.execute("COMMIT")
        conn.execute("PRAGMA synchronous=NORMAL")
        return {table: counts[table] for table in DEMO_TABLES}
    finally:
        conn.close()


def to_naive_utc(value: datetime | None) -> datetime:
    """Normalise ``value`` (or now) to a naive UTC datetime, matching the stored format."""
    if value is None:
        value = datetime.now(timezone.utc)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def sample_ids(rng: random.Random, low: int, high: int, k: int, exclude: set[int] = frozenset()) -> list[int]:
    """Up to ``k`` distinct ids in [low, high] not in ``exclude`` (ids may have gaps from deletes)."""
    pool = high - low + 1 - len(exclude)
    if high < low or pool <= 0 or k <= 0:
        return []
    k = min(k, pool)
    chosen: set[int] = set()
    while len(chosen) < k:
        candidate = rng.randint(low, high)
        if candidate not in exclude:
            chosen.add(candidate)
    return sorted(chosen)


_UPDATE_SQL: dict[str, str] = {
    "products": "UPDATE products SET price = ROUND(price * ?, 2), updated_at = ? WHERE id = ?",
    "customers": "UPDATE customers SET loyalty_tier = ?, updated_at = ? WHERE id = ?",
    "inventory": "UPDATE inventory SET quantity = ?, updated_at = ? WHERE id = ?",
    "orders": "UPDATE orders SET status = ?, updated_at = ? WHERE id = ?",
    "transactions": "UPDATE transactions SET succeeded = ?, updated_at = ? WHERE id = ?",
}

# Only the high-churn tables lose rows, mirroring cancelled/voided records.
_DELETABLE_TABLES = ("orders", "transactions")


def update_value(table: str, rng: random.Random) -> object:
    """New value for the column ``_UPDATE_SQL[table]`` changes."""
    if table == "products":
        return round(0.8 + rng.random() * 0.4, 3)
    if table == "customers":
        return rng.choice(_TIERS)
    if table == "inventory":
        return rng.randrange(1000)
    if table == "orders":
        return rng.choice(_STATUSES)
    return int(rng.random() < 0.5)


def mutate_demo_source(
    path: str | os.PathLike,
    *,
    fraction: float = 0.01,
    seed: int | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Update ~``fraction`` of each table's rows, insert and delete a few; return change counts.

    Updated and inserted rows get ``updated_at = now`` (naive UTC; current time
    if omitted).  Deleted ids never overlap updated ones, so exactly
    ``updated + inserted`` rows end up stamped with ``now``.
    """
    rng = random.Random(seed)
    stamp = format_timestamp(to_naive_utc(now))
    totals = {"updated": 0, "inserted": 0, "deleted": 0}

    conn = sqlite3.connect(os.fspath(path), isolation_level=None)
    try:
        conn.execute("BEGIN")
        existing = {table: conn.execute(f"SELECT COUNT(*), MIN(id), MAX(id) FROM {table}").fetchone()
                    for table in DEMO_TABLES}
        new_counts = {table: max(1, round(existing[table][0] * fraction / 10)) for table in DEMO_TABLES}
        # New rows reference current max ids so logical foreign keys stay plausible.
        factories = make_row_factories({t: existing[t][2] or 1 for t in DEMO_TABLES}, rng)

        for table in DEMO_TABLES:
            count, low, high = existing[table]
            if not count:
                continue
            target = max(1, round(count * fraction))
            updated_ids = sample_ids(rng, low, high, target)
            cur = conn.executemany(_UPDATE_SQL[table],
                                   [(update_value(table, rng), stamp, row_id) for row_id in updated_ids])
            totals["updated"] += cur.rowcount

            n_new = new_counts[table]
            new_rows = [factories[table](high + k, stamp, stamp) for k in range(1, n_new + 1)]
            columns = _COLUMNS[table]
            cur = conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", new_rows
            )
            totals["inserted"] += cur.rowcount

            if table in _DELETABLE_TABLES:
                doomed = sample_ids(rng, low, high, n_new, exclude=set(updated_ids))
                cur = conn.executemany(f"DELETE FROM {table} WHERE id = ?", [(row_id,) for row_id in doomed])
                totals["deleted"] += cur.rowcount
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return totals
