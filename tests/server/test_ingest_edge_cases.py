"""Bodies that answered 500, stalled the server or were silently accepted (issue 23 E, F): each
is now a clear 4xx (or read correctly), with nothing stored."""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest

from lure_client.client import encode_image
from tests.helpers import NPZ, npz_body


def _png_bytes(digits) -> bytes:
    import base64

    return base64.b64decode(encode_image(digits.train.x[0]))


def _upload(client, files: list[bytes], labels: list[str]):
    return client.post(
        "/v1/models/digits/chunks?split=train",
        files=[("image", (f"{i}.png", body, "image/png")) for i, body in enumerate(files)],
        data={"label": labels},
    )


@pytest.mark.parametrize("label", ["--1", "²", "٣", "1" * 30, "9" * 5000, "3.0", ""])
def test_a_label_that_is_not_plain_ascii_digits_is_a_422(client, model, digits, stored, label):
    before = stored()
    answer = _upload(client, [_png_bytes(digits)], [label])
    assert answer.status_code == 422, answer.text
    assert (
        "label[0]" in answer.json()["detail"] and "not an integer label" in answer.json()["detail"]
    )
    assert stored() == before


def test_a_raw_image_with_a_huge_label_is_a_422(client, model, digits, stored):
    before = stored()
    answer = client.post(
        "/v1/models/digits/chunks?split=train&label=99999999999999999999",
        content=_png_bytes(digits),
        headers={"content-type": "image/png"},
    )
    assert answer.status_code == 422 and "label" in answer.json()["detail"], answer.text
    assert stored() == before


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_png_whose_pixel_data_stops_short_is_a_422_not_a_black_sample(client, model, stored):
    header = struct.pack(">IIBBBBB", 1024, 1024, 8, 0, 0, 0, 0)
    short = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(1025)))
        + _chunk(b"IEND", b"")
    )
    assert len(short) == 74
    before = stored()
    answer = _upload(client, [short], ["3"])
    assert answer.status_code == 422
    assert "is not a whole PNG: it is truncated" in answer.json()["detail"]
    assert stored() == before


def test_a_channels_first_array_is_named_as_such(client, model, digits):
    x = np.zeros((4, 3, 32, 32), np.uint8)
    answer = client.post(
        "/v1/models/digits/chunks?split=train", content=npz_body(x, digits.train.y[:4]), headers=NPZ
    )
    assert answer.status_code == 422 and "looks channels-first" in answer.json()["detail"]


def test_an_npz_body_without_a_content_type_is_read_as_one(client, model, digits):
    body = npz_body(digits.train.x[:20], digits.train.y[:20])
    answer = client.post(
        "/v1/models/digits/chunks?split=train", content=body, headers={"content-type": ""}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["accepted"] == 20


def test_a_multipart_body_of_many_empty_parts_is_refused_before_parsing(client, model):
    boundary = "b"
    body = (f"--{boundary}\r\n\r\n\r\n" * 50_001).encode()  # 50,001 empty parts, 450 kB
    body += f"--{boundary}--\r\n".encode()
    started = time.perf_counter()
    answer = client.post(
        "/v1/models/digits/chunks?split=train",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 413 and "50001 parts" in answer.json()["detail"]
    assert time.perf_counter() - started < 60  # no parse of 50,001 parts (a generous bound)


def test_every_error_has_a_sentence_as_its_detail(client, model):
    answer = client.post("/v1/models", json={"name": "x", "num_classes": "many"})
    assert answer.status_code == 422
    body = answer.json()
    assert isinstance(body["detail"], str) and "num_classes" in body["detail"]
    assert isinstance(body["errors"], list) and body["errors"][0]["loc"]
    assert client.get("/v1/models/nope").json()["detail"] == "model 'nope' not found"


def test_a_path_with_a_nul_character_is_a_404(client):
    assert client.get("/v1/models/a%00b").status_code == 404


def test_the_openapi_document_describes_the_one_error_shape(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]["HTTPValidationError"]
    assert schema["properties"]["detail"]["type"] == "string"
