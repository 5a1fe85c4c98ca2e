"""HTTP compression of query results: negotiation, what is left alone, ETags and 304s.

Bodies are read as sent (iter_raw) and decoded here with the codecs' own libraries, so a
wrong Content-Encoding or a corrupt body fails the test instead of being hidden by the client.
"""

from __future__ import annotations

import gzip

import brotli
import pytest
import zstandard
from starlette.responses import StreamingResponse

from analytics_api.main import create_app
from analytics_shared.errors import ConfigError

# ~300 orders: about 75 KB of JSON and 25 KB of CSV, well above the 1 KB threshold.
BIG = "SELECT * FROM orders ORDER BY id LIMIT 300"
SMALL = "SELECT id, status FROM orders WHERE id = 7"


def unzstd(body: bytes) -> bytes:
    # A frame from a stream has no content size in its header: decompress() would refuse it.
    return zstandard.ZstdDecompressor().decompressobj().decompress(body)


DECODE = {"gzip": gzip.decompress, "zstd": unzstd, "br": brotli.decompress, None: lambda body: body}


def fetch(client, headers: dict, accept_encoding: str | None, **params: str):  # noqa: ANN001, ANN201
    """(response, body as it was sent): `accept_encoding` None sends no Accept-Encoding at all."""
    headers = dict(headers)
    if accept_encoding is None:
        client.headers.pop("accept-encoding", None)  # the test client sends one by default
    else:
        headers["Accept-Encoding"] = accept_encoding
    with client.stream("GET", "/query", params=params, headers=headers) as response:
        return response, b"".join(response.iter_raw())


def decoded(response, raw: bytes) -> bytes:  # noqa: ANN001
    return DECODE[response.headers.get("content-encoding")](raw)


@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("encoding", ["gzip", "zstd", "br"])
def test_json_and_csv_are_compressed_and_decode_to_the_identity_body(client, auth, fmt, encoding) -> None:  # noqa: ANN001
    plain, plain_raw = fetch(client, auth, "identity", q=BIG, format=fmt)
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    response, raw = fetch(client, auth, encoding, q=BIG, format=fmt)
    assert response.status_code == 200, raw[:200]
    assert response.headers["content-encoding"] == encoding
    assert int(response.headers["content-length"]) == len(raw) < len(plain_raw) / 3
    assert "accept-encoding" in response.headers["vary"].lower()
    assert response.headers["content-type"] == plain.headers["content-type"]
    assert decoded(response, raw) == plain_raw
    assert response.headers["x-row-count"] == "300"


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip, deflate, br, zstd", "zstd"),     # a browser's: the server's order decides
    ("gzip;q=1.0, zstd;q=0.1", "zstd"),      # any q > 0 makes a coding acceptable; q does not reorder
    ("gzip, zstd;q=0", "gzip"),              # q=0 refuses it
    ("zstd;q=0, br;q=0, gzip", "gzip"),
    ("GZip", "gzip"),                        # codings are case-insensitive
    ("*", "zstd"),
    ("*, zstd;q=0", "br"),
    ("identity", None),
    ("compress, deflate, lz4", None),        # none we offer: identity, never 406
    ("gzip;q=0", None),
    ("gzip;q=abc", None),                    # an unreadable q refuses, it does not accept
    ("", None),
    (None, None),                            # no Accept-Encoding header at all
])
def test_accept_encoding_negotiation(client, auth, header, expected) -> None:  # noqa: ANN001
    response, raw = fetch(client, auth, header, q=BIG)
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == expected
    assert len(decoded(response, raw)) > 10_000


def test_only_the_configured_encodings_are_offered(make_client, auth) -> None:  # noqa: ANN001
    client = make_client(compression_encodings="gzip")
    response, raw = fetch(client, auth, "zstd, br, gzip", q=BIG)
    assert response.headers["content-encoding"] == "gzip" and b'"success":true' in gzip.decompress(raw)
    assert "content-encoding" not in fetch(client, auth, "zstd, br", q=BIG)[0].headers


@pytest.mark.parametrize("setting", ["none", "", " NONE "])
def test_compression_can_be_turned_off(make_client, auth, setting) -> None:  # noqa: ANN001
    response, raw = fetch(make_client(compression_encodings=setting), auth, "gzip, zstd", q=BIG)
    assert "content-encoding" not in response.headers and raw.startswith(b'{"success":true')


def test_small_bodies_and_small_errors_are_sent_as_they_are(client, auth) -> None:  # noqa: ANN001
    response, raw = fetch(client, auth, "gzip, zstd", q=SMALL)
    assert len(raw) < 1024 and raw.startswith(b'{"success":true')
    assert "content-encoding" not in response.headers
    error, raw = fetch(client, auth, "gzip, zstd", q="SELECT * FROM secrets")
    assert error.status_code == 400 and "content-encoding" not in error.headers
    assert raw.startswith(b'{"success":false')


def test_the_minimum_size_is_a_setting(make_client, auth) -> None:  # noqa: ANN001
    response, raw = fetch(make_client(compression_min_bytes=0), auth, "gzip", q=SMALL)
    assert response.headers["content-encoding"] == "gzip" and b'"id":7' in gzip.decompress(raw)
    response, raw = fetch(make_client(compression_min_bytes=10**6), auth, "gzip", q=BIG)
    assert "content-encoding" not in response.headers and len(raw) > 10_000


def test_arrow_and_parquet_bodies_are_not_http_compressed(client, auth) -> None:  # noqa: ANN001
    for fmt in ("arrow", "arrow-zstd", "parquet"):
        response, _ = fetch(client, auth, "gzip, zstd", q=BIG, format=fmt)
        assert response.status_code == 200 and "content-encoding" not in response.headers, fmt


def test_one_weak_etag_for_every_encoding_and_304_whichever_was_kept(client, auth) -> None:  # noqa: ANN001
    """A strong ETag may not be shared by a gzip body and the identity body (RFC 9110 8.8.3):
    the result's ETag is weak, the same for every coding, and revalidates across codings."""
    responses = {enc: fetch(client, auth, enc, q=BIG)[0] for enc in ("identity", "gzip", "zstd")}
    etags = {r.headers["etag"] for r in responses.values()}
    assert len(etags) == 1 and etags.pop().startswith('W/"')
    etag = responses["gzip"].headers["etag"]
    for sent in (etag, etag.removeprefix("W/"), f'"other", {etag}'):
        for encoding in ("identity", "zstd"):
            response, raw = fetch(client, auth | {"If-None-Match": sent}, encoding, q=BIG)
            assert response.status_code == 304 and raw == b"", (sent, encoding)
            assert response.headers["etag"] == etag and "content-encoding" not in response.headers
    stale, raw = fetch(client, auth | {"If-None-Match": 'W/"0123"'}, "gzip", q=BIG)
    assert stale.status_code == 200 and b'"success":true' in gzip.decompress(raw)


def test_a_streamed_body_is_compressed_as_it_goes(make_settings) -> None:  # noqa: ANN001
    """The API's own results are one-shot bodies; a streamed one (more_body) must not be
    buffered up to the threshold nor sent with a stale Content-Length."""
    app = create_app(make_settings())
    parts = [b'{"part": %d, "pad": "%s"}\n' % (i, b"x" * 200) for i in range(50)]

    @app.get("/stream-test")
    async def stream() -> StreamingResponse:
        async def chunks():  # noqa: ANN202
            for part in parts:
                yield part
        return StreamingResponse(chunks(), media_type="application/json")

    from starlette.testclient import TestClient

    with TestClient(app) as client, client.stream("GET", "/stream-test", headers={"Accept-Encoding": "zstd"}) as r:
        raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "zstd" and "content-length" not in r.headers
    assert unzstd(raw) == b"".join(parts)


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"compression_encodings": "zstd,lz4"}, "COMPRESSION_ENCODINGS: unknown encoding 'lz4'"),
    ({"compression_encodings": "deflate"}, "COMPRESSION_ENCODINGS: unknown encoding 'deflate'"),
    ({"compression_min_bytes": -1}, "COMPRESSION_MIN_BYTES: "),
    ({"compression_min_bytes": "1KB"}, "COMPRESSION_MIN_BYTES: "),
])
def test_bad_compression_settings_fail_with_one_line(make_settings, overrides, fragment) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError) as info:
        make_settings(**overrides)
    assert fragment in info.value.message and "\n" not in info.value.message
