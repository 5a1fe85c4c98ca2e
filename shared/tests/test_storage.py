"""The ObjectStore contract, run against LocalStore and S3Store (real moto server)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from analytics_shared.errors import ConfigError, ObjectNotFound, PreconditionFailed, StorageError
from analytics_shared.storage import LocalStore, ObjectStore, S3Store, open_store


def test_put_get_roundtrip_and_etag(store: ObjectStore) -> None:
    data = b'{"hello": "world"}'
    etag = store.put("a/b.json", data)
    assert etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
    obj = store.get("a/b.json")
    assert obj.data == data
    assert obj.etag == etag
    info = store.head("a/b.json")
    assert info is not None
    assert (info.key, info.size, info.etag) == ("a/b.json", len(data), etag)


def test_get_missing_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("nope.json")


def test_head_missing_is_none(store: ObjectStore) -> None:
    assert store.head("nope.json") is None


def test_if_none_match_on_existing_key_fails(store: ObjectStore) -> None:
    store.put("k.json", b"one")
    with pytest.raises(PreconditionFailed):
        store.put("k.json", b"two", if_none_match=True)
    assert store.get("k.json").data == b"one"


def test_if_none_match_on_new_key_succeeds(store: ObjectStore) -> None:
    etag = store.put("fresh.json", b"x", if_none_match=True)
    assert store.get("fresh.json").etag == etag


def test_if_match_stale_etag_fails_and_leaves_object(store: ObjectStore) -> None:
    stale = store.put("k.json", b"v1")
    current = store.put("k.json", b"v2")
    assert current != stale
    with pytest.raises(PreconditionFailed):
        store.put("k.json", b"v3", if_match=stale)
    obj = store.get("k.json")
    assert obj.data == b"v2"
    assert obj.etag == current


def test_if_match_current_etag_succeeds(store: ObjectStore) -> None:
    store.put("k.json", b"v1")
    current = store.get("k.json").etag
    new = store.put("k.json", b"v2", if_match=current)
    obj = store.get("k.json")
    assert obj.data == b"v2"
    assert obj.etag == new


def test_if_match_on_deleted_key_fails(store: ObjectStore) -> None:
    etag = store.put("k.json", b"v1")
    store.delete("k.json")
    with pytest.raises(PreconditionFailed):
        store.put("k.json", b"v2", if_match=etag)
    assert store.head("k.json") is None


def test_upload_download_large_file(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    payload = os.urandom(9 * 1024 * 1024 + 123)  # above boto3's 8 MB multipart threshold
    src.write_bytes(payload)
    info = store.upload_file("history/big.db", src)
    assert info.key == "history/big.db"
    assert info.size == len(payload)
    if isinstance(store, S3Store):
        assert info.etag.endswith("-2"), info.etag  # really went up as a multipart upload
    dst = tmp_path / "back.bin"
    store.download_file("history/big.db", dst)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(payload).digest()


def test_download_missing_raises_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        store.download_file("nope.db", tmp_path / "out.db")


def test_local_upload_existing_key_fails(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    src = tmp_path / "f.bin"
    src.write_bytes(b"first")
    store.upload_file("history/f.db", src)
    src.write_bytes(b"second")
    with pytest.raises(PreconditionFailed):
        store.upload_file("history/f.db", src)
    assert store.get("history/f.db").data == b"first"


def test_upload_rejects_keys_outside_the_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    src = tmp_path / "built.db"
    src.write_bytes(b"x" * 1000)
    with pytest.raises(StorageError, match="escapes"):
        store.upload_file("../outside.db", src)


def test_get_bytes_and_delete_many(store: ObjectStore) -> None:
    keys = [f"chunks/{i:04d}" for i in range(1005)] if isinstance(store, S3Store) else ["chunks/a", "chunks/b"]
    for key in keys:
        store.put(key, key.encode(), content_type="application/octet-stream")
    assert store.get_bytes(keys[-1]) == keys[-1].encode()
    with pytest.raises(ObjectNotFound):
        store.get_bytes("chunks/none")
    store.delete_many(keys[:-1] + ["chunks/never-existed"])  # S3: more than one DeleteObjects batch
    assert [o.key for o in store.list("chunks/")] == [keys[-1]]


def test_unconditional_puts_in_parallel_each_land_whole(tmp_path: Path) -> None:
    """Chunk uploads write without the store lock: each rename is atomic on its own."""
    from concurrent.futures import ThreadPoolExecutor

    store = LocalStore(tmp_path / "store")
    blobs = {f"chunks/{i}": bytes([i]) * 100_000 for i in range(32)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: store.put(*kv), [*blobs.items(), *blobs.items()]))
    assert {o.key: store.get_bytes(o.key) for o in store.list("chunks/")} == blobs
    assert not [p for p in (store.root / "chunks").iterdir() if p.name.startswith(".tmp-")]


def test_list_sorted_and_filtered(store: ObjectStore) -> None:
    for key in ["runs/2024-01-02/b.json", "history/z.db", "runs/2024-01-01/a.json",
                "history/a.db", "current/manifest.json", "runs/2024-01-01/c.json"]:
        store.put(key, key.encode())
    keys = [o.key for o in store.list("runs/")]
    assert keys == ["runs/2024-01-01/a.json", "runs/2024-01-01/c.json", "runs/2024-01-02/b.json"]
    assert [o.key for o in store.list("history/")] == ["history/a.db", "history/z.db"]
    sizes = {o.key: o.size for o in store.list("")}
    assert len(sizes) == 6
    assert sizes["history/z.db"] == len(b"history/z.db")
    assert store.list("missing/") == []


def test_delete_then_missing(store: ObjectStore) -> None:
    store.put("d.json", b"x")
    store.delete("d.json")
    assert store.head("d.json") is None
    with pytest.raises(ObjectNotFound):
        store.get("d.json")


def test_delete_missing_is_fine(store: ObjectStore) -> None:
    store.delete("never-existed.json")


def test_s3_keys_live_under_prefix(s3_store: S3Store, s3_client, s3_bucket: str) -> None:  # noqa: ANN001
    s3_store.put("a.json", b"x")
    s3_client.put_object(Bucket=s3_bucket, Key="other/b.json", Body=b"y")
    raw = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert sorted(raw) == ["other/b.json", "pfx/a.json"]
    assert [o.key for o in s3_store.list("")] == ["a.json"]


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd"])
def test_local_key_escaping_root(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(StorageError):
        store.put(key, b"x")
    with pytest.raises(StorageError):
        store.get(key)
    assert not (tmp_path / "x").exists()


def test_local_list_hides_lock_and_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("k.json", b"x", if_none_match=True)  # takes the .lock
    assert (tmp_path / "store" / ".lock").exists()
    assert [o.key for o in store.list("")] == ["k.json"]


# --- open_store -------------------------------------------------------------

def test_open_store_s3(aws_env: None) -> None:
    store = open_store("s3://my-bucket/some/prefix/", endpoint_url="http://127.0.0.1:1")
    assert isinstance(store, S3Store)
    assert store.bucket == "my-bucket"
    assert store.prefix == "some/prefix"
    assert store.url == "s3://my-bucket/some/prefix"


def test_open_store_s3_without_bucket() -> None:
    with pytest.raises(ConfigError, match="STORAGE_URL"):
        open_store("s3:///prefix")


def test_open_store_file_absolute(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/abs")
    assert isinstance(store, LocalStore)
    assert store.root == (tmp_path / "abs").resolve()
    assert store.root.is_dir()


def test_open_store_file_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("file://./data/store")
    assert isinstance(store, LocalStore)
    assert store.root == (tmp_path / "data" / "store").resolve()


@pytest.mark.parametrize("url", ["ftp://x/y", "http://host/p", "/plain/path", ""])
def test_open_store_bad_scheme(url: str) -> None:
    with pytest.raises(ConfigError, match="STORAGE_URL"):
        open_store(url)
