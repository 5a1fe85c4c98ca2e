"""Choosing the format, and Arrow IPC with zstd-compressed buffers read back by pyarrow."""

from __future__ import annotations

import pyarrow.ipc as ipc
import pytest

from analytics_api.errors import BadRequest
from analytics_api.query.serialize import choose_format

ARROW = "application/vnd.apache.arrow.stream"
SQL = "SELECT * FROM transactions ORDER BY id LIMIT 2000"


@pytest.mark.parametrize(("explicit", "accept", "expected"), [
    (None, None, "json"),
    (None, "*/*", "json"),
    (None, "text/csv", "csv"),
    (None, ARROW, "arrow"),
    (None, f'{ARROW}; codecs="zstd, lz4"', "arrow-zstd"),   # the quoted comma does not split the range
    (None, f'{ARROW};codecs="lz4, zstd";q=0.9', "arrow-zstd"),
    (None, f"{ARROW}; CODECS=ZSTD", "arrow-zstd"),
    (None, f"{ARROW}; codecs=lz4", "arrow"),                 # a codec we do not write: plain buffers
    (None, f'{ARROW}; codecs="lz4", application/json; codecs=zstd', "arrow"),
    (None, f"application/json, {ARROW}; codecs=zstd", "json"),  # the first type we serve wins
    ("arrow", f"{ARROW}; codecs=zstd", "arrow-zstd"),       # format= picks Arrow, Accept its codec
    ("arrow", "application/json", "arrow"),
    ("arrow-zstd", None, "arrow-zstd"),
    ("csv", f"{ARROW}; codecs=zstd", "csv"),
])
def test_choose_format(explicit, accept, expected) -> None:  # noqa: ANN001
    assert choose_format(explicit, accept) == expected


def test_an_unknown_format_names_the_choices() -> None:
    with pytest.raises(BadRequest) as info:
        choose_format("arrow-lz4", None)
    assert "json, csv, arrow, arrow-zstd, parquet" in info.value.message


@pytest.mark.parametrize("how", [
    {"headers": {"Accept": f'{ARROW}; codecs="zstd, lz4"'}},
    {"headers": {"Accept": f"{ARROW}; codecs=zstd"}, "params": {"format": "arrow"}},
    {"params": {"format": "arrow-zstd"}},
])
def test_arrow_with_zstd_buffers_reads_back_as_the_same_table(client, auth, how) -> None:  # noqa: ANN001
    plain = client.get("/query", params={"q": SQL, "format": "arrow"}, headers=auth)
    response = client.get("/query", params={"q": SQL, **how.get("params", {})},
                          headers={**auth, **how.get("headers", {})})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"{ARROW}; codecs=zstd"
    assert plain.headers["content-type"] == ARROW
    compressed = ipc.open_stream(response.content).read_all()
    assert compressed.num_rows == 2000 and compressed.equals(ipc.open_stream(plain.content).read_all())
    # The buffers really are compressed: the stream is much smaller than the plain one.
    assert len(response.content) < len(plain.content) / 2
    # Two representations, two ETags: revalidating one never answers 304 for the other.
    assert response.headers["etag"] != plain.headers["etag"]
    again = client.get("/query", params={"q": SQL, "format": "arrow-zstd"},
                       headers={**auth, "If-None-Match": plain.headers["etag"]})
    assert again.status_code == 200 and again.headers["content-type"] == f"{ARROW}; codecs=zstd"
