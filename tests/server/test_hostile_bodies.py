"""Hostile bodies get a 4xx naming the problem and store nothing (issue 11, §6). Each of these
answered 500 (or was stored with a 201) before; memory and responsiveness are measured on a real
process in ``tests/integration/test_hostile_bodies_process.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import NPZ, npz_body, png_images
from tests.hostile import (
    b64,
    npy_bytes,
    npz_declaring,
    png_garbage_second_idat,
    png_icc_bomb,
    png_text_bomb,
)

TRAIN = "/v1/models/digits/chunks?split=train"


@pytest.mark.parametrize(
    "png,reason",
    [
        (png_text_bomb, "Decompressed data too large"),
        (png_icc_bomb, "Decompressed data too large"),
        (png_garbage_second_idat, "broken PNG file"),
    ],
)
def test_hostile_pngs_are_a_422_naming_the_image(client, model, digits, stored, png, reason):
    images = png_images(digits.train.x[:1]) + [b64(png())]
    for path, body in [
        ("/v1/models/digits/chunks", {"images": images, "labels": [1, 2]}),
        ("/v1/models/digits/predict", {"images": images}),
    ]:
        answer = client.post(path, json=body)
        assert answer.status_code in (422, 409), answer.text  # 409: predict before any version
        if path.endswith("chunks"):
            assert (
                answer.status_code == 422
                and "images[1] could not be decoded" in answer.json()["detail"]
            )
            assert reason in answer.json()["detail"]
    assert stored() == (0, 0)


@pytest.mark.parametrize(
    "body,status,message",
    [
        (npz_body(np.uint8(5), np.array([1])), 422, "x must have shape (N, H, W, C)"),
        (npy_bytes(np.zeros((2, 8, 8, 1), np.uint8)), 422, "bare .npy"),
        (
            npz_declaring((10**12, 100, 100, 3)),
            413,
            "chunk has 1000000000000 samples; the limit is 2000",
        ),
        (npz_declaring((2000, 1024, 1024, 3)), 413, "bytes of pixels; the limit is"),
        (npz_declaring((2, 0, 8, 1)), 422, "at least 1x1 pixels"),
        (npz_declaring((2, 8, 8, 1), n_labels=3), 422, "x has 2 images but y has 3 labels"),
        (
            npz_declaring((2, 8, 8, 1)),
            422,
            "x could not be read",
        ),  # the header promises data that is not there
    ],
    ids=[
        "0-d x",
        "bare npy",
        "10 TB shape",
        "6 GB of pixels",
        "zero height",
        "label count",
        "no data",
    ],
)
def test_hostile_npz_bodies_are_refused_from_their_headers(
    client, model, stored, body, status, message
):
    answer = client.post(TRAIN, content=body, headers=NPZ)
    assert answer.status_code == status and message in answer.json()["detail"], answer.text
    assert stored() == (0, 0)


def test_an_image_array_with_no_rows_is_refused(client, model, stored):
    answer = client.post(
        TRAIN, content=npz_body(np.zeros((2, 0, 8, 1), np.uint8), np.array([1, 2])), headers=NPZ
    )
    assert answer.status_code == 422 and "at least 1x1 pixels" in answer.json()["detail"]
    assert stored() == (0, 0)


@pytest.mark.parametrize("label", [1.0, "1", True])
def test_labels_must_be_integers_not_floats_strings_or_booleans(
    client, model, digits, stored, label
):
    answer = client.post(
        "/v1/models/digits/chunks",
        json={"images": png_images(digits.train.x[:1]), "labels": [label]},
    )
    assert answer.status_code == 422 and "labels" in answer.text
    assert stored() == (0, 0)


def test_every_json_route_refuses_a_body_over_the_limit(client, model, settings):
    big = b'{"images": ["' + b"A" * settings.max_body_bytes + b'"]}'
    for path in ("/v1/models/digits/predict", "/v1/models", "/v1/models/digits/chunks"):
        answer = client.post(path, content=big, headers={"content-type": "application/json"})
        assert answer.status_code == 413, (path, answer.text)
        assert f"limit of {settings.max_body_bytes} bytes" in answer.json()["detail"]


def test_a_body_without_a_key_is_refused_before_it_is_parsed(client, model):
    answer = client.post(
        "/v1/models/digits/predict",
        content=b"{not json at all",
        headers={"Authorization": "", "content-type": "application/json"},
    )
    assert (
        answer.status_code == 401 and "missing API key" in answer.json()["detail"]
    )  # not a 422 from parsing
