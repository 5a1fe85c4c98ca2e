"""Fixtures: a real moto S3 server (session), one bucket per test, and a store over both backends."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from analytics_shared.storage import LocalStore, ObjectStore, S3Store

_bucket_ids = itertools.count()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def s3_client(aws_env: None, moto_endpoint: str):  # noqa: ANN201
    return boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture
def s3_bucket(s3_client) -> str:  # noqa: ANN001
    name = f"test-bucket-{next(_bucket_ids)}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(s3_bucket: str, moto_endpoint: str) -> S3Store:
    return S3Store(s3_bucket, "pfx/", endpoint_url=moto_endpoint)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path) -> ObjectStore:  # noqa: ANN001
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")
