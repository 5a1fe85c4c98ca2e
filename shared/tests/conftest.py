"""Fixtures: a real moto S3 server (session), one bucket per test, and a store over both backends."""

from __future__ import annotations

import itertools

import boto3
import pytest

from analytics_shared.storage import LocalStore, ObjectStore, S3Store

_bucket_ids = itertools.count()








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
