"""Object store on a local directory: the embedded default (file://./data/store).

Writes go to a temporary file and are renamed into place, so a reader never
sees half an object. Conditional writes hold an exclusive lock on a sidecar
lock file while they compare ETags, which makes them atomic between processes
on one host (the only place a local directory is shared).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Iterator

from analytics_shared.errors import ObjectNotFound, PreconditionFailed, StorageError
from analytics_shared.storage.base import ObjectInfo, ObjectStore, StoredObject


def _etag_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LocalStore(ObjectStore):
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.url = f"file://{self.root}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create local store {self.root}: {exc}") from exc

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageError(f"key escapes the store root: {key!r}")
        return path

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.root / ".lock").open("a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_atomic(self, path: Path, write) -> None:  # noqa: ANN001 - callable(fh)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> StoredObject:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{key} not found in {self.url}") from None
        return StoredObject(data=data, etag=hashlib.md5(data, usedforsecurity=False).hexdigest())

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{key} not found in {self.url}") from None

    def put(self, key: str, data: bytes, *, if_match: str | None = None,
            if_none_match: bool = False, content_type: str = "application/json") -> str:
        path = self._path(key)
        if if_match is None and not if_none_match:
            # The rename is atomic on its own; only a compare-then-write needs the store's lock
            # (so parallel chunk uploads do not queue on it).
            self._write_atomic(path, lambda fh: fh.write(data))
        else:
            with self._locked():
                if if_none_match and path.exists():
                    raise PreconditionFailed(f"{key} already exists")
                if if_match is not None:
                    current = _etag_of(path) if path.exists() else None
                    if current != if_match:
                        raise PreconditionFailed(f"{key} changed since it was read")
                self._write_atomic(path, lambda fh: fh.write(data))
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    def upload_file(self, key: str, path: Path) -> ObjectInfo:
        target = self._path(key)
        if target.exists():
            raise PreconditionFailed(f"{key} already exists")

        def copy(fh) -> None:  # noqa: ANN001
            with Path(path).open("rb") as src:
                shutil.copyfileobj(src, fh, 1 << 20)

        self._write_atomic(target, copy)
        # No ETag: hashing a snapshot again would be a second full read (head() computes it).
        stat = target.stat()
        return ObjectInfo(key=key, size=stat.st_size, etag="", last_modified=datetime.fromtimestamp(stat.st_mtime, UTC))

    def download_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.exists():
            raise ObjectNotFound(f"{key} not found in {self.url}")
        shutil.copyfile(source, path)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key=key, size=stat.st_size, etag=_etag_of(path),
                          last_modified=datetime.fromtimestamp(stat.st_mtime, UTC))

    def list(self, prefix: str) -> list[ObjectInfo]:
        out = []
        for path in self.root.rglob("*"):
            if not path.is_file() or path.name.startswith(".") or path.name == ".lock":
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                stat = path.stat()
                out.append(ObjectInfo(key=key, size=stat.st_size, etag="",
                                      last_modified=datetime.fromtimestamp(stat.st_mtime, UTC)))
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
