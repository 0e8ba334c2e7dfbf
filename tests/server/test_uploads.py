"""Binary images as people send them: multipart file uploads and raw image/* bodies, on chunk
ingest and on /predict, beside JSON; every malformed upload is a 4xx naming the problem and stores
nothing."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from tests.helpers import png_images

TEXT_ONLY_MULTIPART = b'--b\r\nContent-Disposition: form-data; name="label"\r\n\r\n1\r\n--b--\r\n'


def _png(image: np.ndarray) -> bytes:
    return base64.b64decode(png_images(image[None])[0])


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0]).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_multipart_files_with_labels_are_a_chunk(client, model, digits, stored):
    x, y = digits.train.x[:3], digits.train.y[:3]
    files = [("image", (f"{i}.png", _png(x[i]), "image/png")) for i in range(2)]
    files.append(("image", ("2.jpg", _jpeg(x[2]), "image/jpeg")))
    answer = client.post(
        "/v1/models/digits/chunks",
        files=files,
        data={"label": [str(v) for v in y]},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["accepted"] == 3 and body["split"] == "train"
    assert stored() == (1, 1)


def test_a_raw_image_body_with_its_label_in_the_query_is_a_chunk(client, model, digits):
    answer = client.post(
        "/v1/models/digits/chunks?split=test&label=7",
        content=_png(digits.test.x[0]),
        headers={"content-type": "image/png"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["accepted"] == 1 and answer.json()["split"] == "test"


def test_malformed_uploads_are_refused_by_name_and_store_nothing(client, model, digits, stored):
    png = _png(digits.train.x[0])
    cases = [
        ({"files": [("image", ("a.png", png, "image/png"))]}, 422, "1 images but 0 labels"),
        (
            {"files": [("image", ("a.png", png, "image/png"))], "data": {"label": "seven"}},
            422,
            "label[0] = 'seven' is not an integer",
        ),
        (
            {"files": [("image", ("a.png", png, "image/png"))], "data": {"label": "12"}},
            422,
            "labels[0] = 12 is outside 0..9",
        ),
        (
            {"files": [("photo", ("a.png", png, "image/png"))], "data": {"label": "1"}},
            422,
            "file field 'photo'",
        ),
        ({"data": {"label": "1"}, "files": {}}, 422, "has no 'image' file"),
        (
            {"files": [("image", ("a.png", png[:40], "image/png"))], "data": {"label": "1"}},
            422,
            "images[0] could not be decoded",
        ),
        (
            {"content": png, "headers": {"content-type": "image/png"}},
            422,
            "0 labels",
        ),
        (
            {"content": b"GIF89a", "headers": {"content-type": "image/gif"}},
            415,
            "image/gif bodies are not read",
        ),
    ]
    for kwargs, status, message in cases:
        if kwargs.get("files") == {}:  # a multipart body with only a text field
            kwargs = {
                "content": TEXT_ONLY_MULTIPART,
                "headers": {"content-type": "multipart/form-data; boundary=b"},
            }
        answer = client.post("/v1/models/digits/chunks", **kwargs)
        assert answer.status_code == status, (message, answer.text)
        assert message in answer.json()["detail"], (message, answer.text)
    assert stored() == (0, 0)


def test_predict_answers_uploads_and_raw_bodies_as_it_answers_json(client, two_versions, digits):
    images = digits.test.x[:3]
    as_json = client.post("/v1/models/digits/predict", json={"images": png_images(images)})
    assert as_json.status_code == 200, as_json.text
    expected = [p["probabilities"] for p in as_json.json()["predictions"]]
    uploaded = client.post(
        "/v1/models/digits/predict",
        files=[("image", (f"{i}.png", _png(image), "image/png")) for i, image in enumerate(images)],
    )
    assert uploaded.status_code == 200, uploaded.text
    assert [p["probabilities"] for p in uploaded.json()["predictions"]] == expected
    raw = client.post(
        "/v1/models/digits/predict",
        content=_png(images[0]),
        headers={"content-type": "image/png"},
    )
    assert raw.status_code == 200, raw.text
    assert raw.json()["predictions"][0]["probabilities"] == expected[0]
    assert raw.headers["X-Model-Version"] == as_json.headers["X-Model-Version"]


def test_predict_counts_uploaded_files_before_reading_them(client, two_versions, digits):
    png = _png(digits.test.x[0])
    too_many = [("image", (f"{i}.png", png, "image/png")) for i in range(65)]  # the limit is 64
    answer = client.post("/v1/models/digits/predict", files=too_many)
    assert answer.status_code == 413 and "Too many files" in answer.json()["detail"]
    wrong = client.post(
        "/v1/models/digits/predict", content=b"x", headers={"content-type": "text/plain"}
    )
    assert wrong.status_code == 415 and "multipart/form-data" in wrong.json()["detail"]
