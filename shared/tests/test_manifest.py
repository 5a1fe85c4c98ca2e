"""Manifest format, parsing and compare-and-swap publishing on both backends."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from analytics_shared.errors import ManifestError, PreconditionFailed
from analytics_shared.manifest import (
    MANIFEST_KEY,
    Manifest,
    new_version,
    parse_manifest,
    read_manifest,
    write_manifest,
)
from analytics_shared.storage import ObjectStore


def _valid(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format_version": 1,
        "version": "2024-05-06T07:08:09Z-abc123",
        "previous_version": None,
        "created_at": "2024-05-06T07:08:09Z",
        "database_key": "history/analytics_2024-05-06_07-08-09_abc123.db",
        "sha256": "a" * 64,
        "size_bytes": 4096,
        "duckdb_version": "2.0.0",
        "source": {"dialect": "mssql", "database": "Sales"},
        "tables": {
            "dbo.orders": {
                "rows": 10,
                "columns": [{"name": "id", "type": "BIGINT"}],
                "primary_key": ["id"],
                "change_detection": "rowversion",
                "watermark": 1234,
            }
        },
    }
    doc.update(changes)
    return doc


def _manifest(**changes: Any) -> Manifest:
    return parse_manifest(json.dumps(_valid(**changes)).encode())


# --- new_version ------------------------------------------------------------

def test_new_version_format() -> None:
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    version, key = new_version(now)
    m = re.fullmatch(r"2024-05-06T07:08:09Z-([0-9a-f]{6})", version)
    assert m, version
    assert key == f"history/analytics_2024-05-06_07-08-09_{m.group(1)}.index.json"
    version, key = new_version(now, format_version=1)
    assert key.endswith(f"_{version[-6:]}.db")


def test_new_version_converts_to_utc() -> None:
    now = datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    version, key = new_version(now)
    assert version.startswith("2024-05-06T07:08:09Z-")
    assert key.startswith("history/analytics_2024-05-06_07-08-09_")


def test_new_version_default_now_and_unique() -> None:
    v1, k1 = new_version()
    v2, k2 = new_version()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ-[0-9a-f]{6}", v1)
    assert re.fullmatch(r"history/analytics_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}\.index\.json", k1)
    assert (v1, k1) != (v2, k2)
    # what new_version makes, the manifest accepts
    _manifest(version=v1, format_version=2, database_key=None, index_key=k1, chunk_size=262144)
    _manifest(version=v2, database_key=new_version(format_version=1)[1])


# --- read/write (CAS) on both stores -----------------------------------------

def test_read_manifest_empty_store(store: ObjectStore) -> None:
    assert read_manifest(store) == (None, None)


def test_first_write_only_once(store: ObjectStore) -> None:
    first = _manifest()
    etag = write_manifest(store, first, expected_etag=None)
    with pytest.raises(PreconditionFailed):
        write_manifest(store, _manifest(version="other"), expected_etag=None)
    manifest, read_etag = read_manifest(store)
    assert read_etag == etag
    assert manifest == first


def test_cas_with_read_etag_succeeds_old_etag_fails(store: ObjectStore) -> None:
    old_etag = write_manifest(store, _manifest(), expected_etag=None)
    current, etag = read_manifest(store)
    assert current is not None and etag == old_etag

    second = _manifest(version="v2", previous_version=current.version)
    new_etag = write_manifest(store, second, expected_etag=etag)
    assert new_etag != old_etag

    with pytest.raises(PreconditionFailed):
        write_manifest(store, _manifest(version="v3-loser"), expected_etag=old_etag)

    manifest, etag = read_manifest(store)
    assert manifest is not None and manifest.version == "v2"
    assert manifest.previous_version == "2024-05-06T07:08:09Z-abc123"
    assert etag == new_etag


def test_read_manifest_malformed_in_store(store: ObjectStore) -> None:
    store.put(MANIFEST_KEY, b"{not json")
    with pytest.raises(ManifestError):
        read_manifest(store)


# --- parsing ------------------------------------------------------------------

def _without(field: str) -> dict[str, Any]:
    doc = _valid()
    del doc[field]
    return doc


def _table_rows(rows: int) -> dict[str, Any]:
    doc = _valid()
    doc["tables"]["dbo.orders"]["rows"] = rows
    return doc


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json at all", id="not-json"),
        pytest.param(b"[1, 2]", id="json-array"),
        pytest.param(json.dumps(_without("sha256")).encode(), id="missing-sha256"),
        pytest.param(json.dumps(_without("database_key")).encode(), id="missing-database_key"),
        pytest.param(json.dumps(_without("tables")).encode(), id="missing-tables"),
        pytest.param(json.dumps(_valid(format_version=3)).encode(), id="format-version-3"),
        pytest.param(json.dumps(_valid(format_version=2)).encode(), id="format-2-without-index_key"),
        pytest.param(json.dumps(_valid(index_key="history/a.index.json")).encode(), id="format-1-with-index_key"),
        pytest.param(json.dumps(_valid(format_version=2, database_key=None, index_key="chunks/a",
                                       chunk_size=262144)).encode(), id="index-outside-history"),
        pytest.param(json.dumps(_valid(format_version=2, database_key=None, chunk_size=262144,
                                       index_key="history/../chunks/x.index.json")).encode(), id="index-dotdot"),
        pytest.param(json.dumps(_valid(format_version=2, database_key=None,
                                       index_key="history/a.index.json")).encode(), id="format-2-without-chunk_size"),
        pytest.param(json.dumps(_valid(chunk_size=262144)).encode(), id="format-1-with-chunk_size"),
        pytest.param(json.dumps(_valid(sha256="A" * 64)).encode(), id="sha256-uppercase"),
        pytest.param(json.dumps(_valid(sha256="a" * 63)).encode(), id="sha256-short"),
        pytest.param(json.dumps(_valid(sha256="g" * 64)).encode(), id="sha256-not-hex"),
        pytest.param(json.dumps(_valid(database_key="snapshots/a.db")).encode(), id="key-outside-history"),
        pytest.param(json.dumps(_valid(database_key="history/../current/manifest.json")).encode(),
                     id="key-dotdot"),
        pytest.param(json.dumps(_valid(database_key="/history/a.db")).encode(), id="key-absolute"),
        pytest.param(json.dumps(_table_rows(-1)).encode(), id="negative-rows"),
        pytest.param(json.dumps(_table_rows(2**63)).encode(), id="rows-beyond-int64"),
        pytest.param(json.dumps(_valid(size_bytes=0)).encode(), id="zero-size"),
    ],
)
def test_malformed_manifests(body: bytes) -> None:
    with pytest.raises(ManifestError, match="malformed manifest"):
        parse_manifest(body)


def test_format_version_error_is_explained() -> None:
    with pytest.raises(ManifestError, match="format_version 3 .this code reads 1 and 2"):
        parse_manifest(json.dumps(_valid(format_version=3)).encode())
    with pytest.raises(ManifestError, match="format 2 needs index_key"):
        parse_manifest(json.dumps(_valid(format_version=2)).encode())


def test_both_formats_name_their_history_object() -> None:
    one = _manifest()
    two = _manifest(format_version=2, database_key=None, index_key="history/analytics_x.index.json",
                    chunk_size=262144, published_at="2024-05-06T07:08:10Z")
    assert one.object_key == one.database_key and one.published_at is None
    assert two.object_key == "history/analytics_x.index.json" and two.database_key is None
    assert two.published_at == datetime(2024, 5, 6, 7, 8, 10, tzinfo=UTC)


def test_written_manifest_carries_only_its_format_s_key(store: ObjectStore) -> None:
    """A format-1 manifest stays readable by API hosts that predate format 2 (no index_key)."""
    write_manifest(store, _manifest(), expected_etag=None)
    assert not {"index_key", "chunk_size"} & set(json.loads(store.get(MANIFEST_KEY).data))
    two = _manifest(version="v2", format_version=2, database_key=None, index_key="history/a.index.json",
                    chunk_size=262144)
    write_manifest(store, two, expected_etag=read_manifest(store)[1])
    body = json.loads(store.get(MANIFEST_KEY).data)
    assert "database_key" not in body and body["index_key"] == "history/a.index.json"
    assert read_manifest(store)[0] == two


def test_valid_manifest_with_unknown_fields_parses() -> None:
    doc = copy.deepcopy(_valid(future_field={"x": 1}))
    doc["tables"]["dbo.orders"]["new_table_field"] = "y"
    doc["source"]["host"] = "db1"
    m = parse_manifest(json.dumps(doc).encode())
    assert m.version == "2024-05-06T07:08:09Z-abc123"
    assert m.tables["dbo.orders"].rows == 10
    assert m.tables["dbo.orders"].change_detection == "rowversion"
    assert m.created_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert m.model_extra == {"future_field": {"x": 1}}


def test_manifest_roundtrips_through_json() -> None:
    m = _manifest()
    assert parse_manifest(m.model_dump_json().encode()) == m


def test_timestamps_without_an_offset_are_read_as_utc() -> None:
    """A hand-edited or foreign manifest may write times without `Z`. Readers subtract them from
    aware UTC times (/ready, /snapshot, the swap-delay metric): a naive datetime there raised
    TypeError, which crashed API startup and made /snapshot a 500."""
    doc = _valid(created_at="2024-05-06T07:08:09", published_at="2024-05-06T07:08:10.5")
    doc["tables"]["dbo.orders"].update(synced_at="2024-05-06T07:08:00", reconciled_at="2024-05-06T06:00:00")
    m = parse_manifest(json.dumps(doc).encode())
    assert m.created_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert m.published_at == datetime(2024, 5, 6, 7, 8, 10, 500000, tzinfo=UTC)
    table = m.tables["dbo.orders"]
    assert table.synced_at == datetime(2024, 5, 6, 7, 8, tzinfo=UTC)
    assert table.reconciled_at == datetime(2024, 5, 6, 6, tzinfo=UTC)
    # times with an offset keep meaning the same instant
    assert _manifest(created_at="2024-05-06T09:08:09+02:00").created_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.mark.parametrize("version", ["ünïcødé", "tab\there", "nul\x00", "", "v" * 257, "two words"])
def test_a_version_outside_printable_ascii_is_malformed(version: str) -> None:
    """The version travels in HTTP headers and file names (see api-service test_cache_faults)."""
    with pytest.raises(ManifestError, match="malformed manifest .* at version"):
        parse_manifest(json.dumps(_valid(version=version)).encode())
    assert _manifest(version="v" * 256).version == "v" * 256
