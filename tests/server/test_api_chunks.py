import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.helpers import NPZ, npz_body, png_images


def test_json_chunk_is_stored_and_reported(client, model, digits, stored):
    answer = client.post(
        "/v1/models/digits/chunks",
        json={
            "split": "train",
            "images": png_images(digits.train.x[:20]),
            "labels": digits.train.y[:20].tolist(),
        },
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["accepted"] == 20 and body["split"] == "train"
    assert body["megabatch"]["index"] == 1 and body["megabatch"]["n_samples"] == 20
    assert body["megabatch"]["size"] == 300 and body["sealed"] == [] and body["jobs"] == []
    assert stored() == (1, 1)


def test_npz_chunk_and_test_split(client, model, digits):
    answer = client.post(
        "/v1/models/digits/chunks?split=test",
        content=npz_body(digits.test.x, digits.test.y),
        headers=NPZ,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["accepted"] == len(digits.test.x)
    assert answer.json()["megabatch"] is None  # test data never join a mega-batch
    assert client.get("/v1/models/digits/megabatches").json() == []


def test_other_sizes_and_rgb_are_converted_to_the_model_input(client, model):
    rgb = np.zeros((2, 16, 16, 3), np.uint8)
    rgb[:, :, 8:] = 255
    answer = client.post(
        "/v1/models/digits/chunks?split=train", content=npz_body(rgb, np.array([1, 2])), headers=NPZ
    )
    assert answer.status_code == 201, answer.text
    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 12), 200, np.uint8)).save(buffer, format="JPEG")
    answer = client.post(
        "/v1/models/digits/chunks",
        json={"images": [base64.b64encode(buffer.getvalue()).decode()], "labels": [3]},
    )
    assert answer.status_code == 201, answer.text


def test_megabatch_seals_when_full_and_queues_a_job(client, model, digits):
    first = client.post(
        "/v1/models/digits/chunks?split=train",
        content=npz_body(digits.train.x[:250], digits.train.y[:250]),
        headers=NPZ,
    ).json()
    assert first["sealed"] == []
    second = client.post(
        "/v1/models/digits/chunks?split=train",
        content=npz_body(digits.train.x[250:320], digits.train.y[250:320]),
        headers=NPZ,
    ).json()
    assert second["sealed"] == [1] and len(second["jobs"]) == 1
    assert second["megabatch"]["state"] == "sealed" and second["megabatch"]["n_samples"] == 320
    assert second["megabatch"]["n_train"] == 288 and second["megabatch"]["n_val"] == 32
    job = client.get(f"/v1/jobs/{second['jobs'][0]}").json()
    assert job["state"] == "queued" and job["megabatch"] == 1
    third = client.post(
        "/v1/models/digits/chunks?split=train",
        content=npz_body(digits.train.x[320:330], digits.train.y[320:330]),
        headers=NPZ,
    ).json()
    assert third["megabatch"]["index"] == 2 and third["open_megabatch"]["n_samples"] == 10


def test_seal_early_and_seal_nothing(client, model, digits):
    assert client.post("/v1/models/digits/megabatches/seal").status_code == 409
    client.post(
        "/v1/models/digits/chunks?split=train",
        content=npz_body(digits.train.x[:40], digits.train.y[:40]),
        headers=NPZ,
    )
    sealed = client.post("/v1/models/digits/megabatches/seal")
    assert (
        sealed.status_code == 200
        and sealed.json()["state"] == "sealed"
        and sealed.json()["n_samples"] == 40
    )
    assert sealed.json()["job_id"] is not None
    assert client.post("/v1/models/digits/megabatches/seal").status_code == 409


def _bad_png() -> str:
    return base64.b64encode(b"\x89PNG\r\n\x1a\nthis is not really a png").decode()


@pytest.mark.parametrize(
    "payload,status,message",
    [
        ({"images": "abc", "labels": [1]}, 422, "images"),
        ({"images": ["x"], "labels": ["one"]}, 422, "labels"),
        ({"images": [], "labels": []}, 422, "images"),
        ({"images": ["@@notbase64@@"], "labels": [1]}, 422, "images[0] is not valid base64"),
        ({"split": "validation", "images": ["x"], "labels": [1]}, 422, "split"),
    ],
)
def test_bad_json_chunks_are_refused_and_nothing_stored(
    client, model, stored, payload, status, message
):
    answer = client.post("/v1/models/digits/chunks", json=payload)
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert stored() == (0, 0)


def test_undecodable_image_and_out_of_range_label_name_the_item(client, model, digits, stored):
    good = png_images(digits.train.x[:2])
    answer = client.post(
        "/v1/models/digits/chunks", json={"images": [good[0], _bad_png()], "labels": [1, 2]}
    )
    assert answer.status_code == 422 and "images[1] could not be decoded" in answer.json()["detail"]
    answer = client.post("/v1/models/digits/chunks", json={"images": good, "labels": [3, 10]})
    assert answer.status_code == 422 and answer.json()["detail"] == "labels[1] = 10 is outside 0..9"
    answer = client.post("/v1/models/digits/chunks", json={"images": good, "labels": [1]})
    assert answer.status_code == 422 and "2 images but 1 labels" in answer.text
    assert stored() == (0, 0)


def test_bad_npz_bodies_are_refused_and_nothing_stored(client, model, stored):
    cases = [
        ("?split=train", b"not an npz at all", 422, "not a readable .npz"),
        ("", npz_body(np.zeros((2, 8, 8, 1), np.uint8), np.array([1, 2])), 422, "split=train"),
        (
            "?split=train",
            npz_body(np.zeros((0, 8, 8, 1), np.uint8), np.zeros(0, np.int64)),
            422,
            "chunk is empty",
        ),
        (
            "?split=train",
            npz_body(np.zeros((2, 8, 8, 4), np.uint8), np.array([1, 2])),
            422,
            "4 channels",
        ),
        (
            "?split=train",
            npz_body(np.zeros((2, 8, 8, 1), np.float32), np.array([1, 2])),
            422,
            "uint8",
        ),
        (
            "?split=train",
            npz_body(np.zeros((2, 8, 8, 1), np.uint8), np.array([1, 2, 3])),
            422,
            "2 images but y has 3",
        ),
        (
            "?split=train",
            npz_body(np.zeros((2, 8, 8, 1), np.uint8), np.array([1, -1])),
            422,
            "labels[1] = -1",
        ),
        (
            "?split=train",
            npz_body(np.array([{"a": 1}, None], dtype=object), np.array([1, 2])),
            422,
            "pickled",
        ),
        (
            "?split=train",
            npz_body(np.zeros((2, 8, 8, 1), np.uint8), np.array([1, 2]), extra=np.zeros(1)),
            422,
            "exactly the arrays 'x' and 'y'",
        ),
    ]
    for query, body, status, message in cases:
        answer = client.post(f"/v1/models/digits/chunks{query}", content=body, headers=NPZ)
        assert answer.status_code == status and message in answer.text, (message, answer.text)
    assert stored() == (0, 0)


def test_wrong_content_type_too_large_and_unknown_model(client, model, stored):
    answer = client.post(
        "/v1/models/digits/chunks", content=b"x", headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 415 and "text/plain" in answer.json()["detail"]
    answer = client.post(
        "/v1/models/digits/chunks?split=train", content=b"0" * 2_000_001, headers=NPZ
    )
    assert answer.status_code == 413 and "limit of 2000000 bytes" in answer.json()["detail"]
    big = npz_body(np.zeros((2001, 8, 8, 1), np.uint8), np.zeros(2001, np.int64))
    answer = client.post("/v1/models/digits/chunks?split=train", content=big, headers=NPZ)
    assert answer.status_code == 413 and "limit is 2000" in answer.json()["detail"]
    answer = client.post("/v1/models/ghost/chunks", json={"images": ["x"], "labels": [1]})
    assert answer.status_code == 404 and "ghost" in answer.json()["detail"]
    assert stored() == (0, 0)


def test_idempotency_key_answers_a_retry_with_the_first_chunk_and_stores_nothing_twice(
    client, model, digits, stored
):
    body = npz_body(digits.train.x[:30], digits.train.y[:30])
    headers = {**NPZ, "Idempotency-Key": "push-abc-0"}
    first = client.post("/v1/models/digits/chunks?split=train", content=body, headers=headers)
    again = client.post("/v1/models/digits/chunks?split=train", content=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.json()["accepted"] == 30
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert stored() == (1, 1)
    assert client.get("/v1/models/digits").json()["open_megabatch"]["n_samples"] == 30
    other = client.post(
        "/v1/models/digits/chunks?split=train",
        content=body,
        headers={**NPZ, "Idempotency-Key": "push-abc-1"},
    )
    assert other.json()["id"] != first.json()["id"] and stored() == (2, 2)
    bad = client.post(
        "/v1/models/digits/chunks?split=train",
        content=body,
        headers={**NPZ, "Idempotency-Key": "x" * 129},
    )
    assert bad.status_code == 422 and "idempotency-key" in bad.text.lower()


def test_a_json_body_that_is_not_utf8_is_a_422_not_a_crash(client, model, stored):
    answer = client.post(
        "/v1/models/digits/chunks",
        content=b"\xa7\xda\nC",
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422 and "Invalid JSON" in answer.text
    assert stored() == (0, 0)


def test_images_larger_than_the_side_limit_are_refused_naming_it(client, model, stored):
    wide = png_images(np.zeros((1, 8, 1100, 1), np.uint8))
    answer = client.post("/v1/models/digits/chunks", json={"images": wide, "labels": [1]})
    assert answer.status_code == 422 and "limit of 1024 pixels a side" in answer.json()["detail"]
    answer = client.post(
        "/v1/models/digits/chunks?split=train",
        headers=NPZ,
        content=npz_body(np.zeros((1, 8, 1100, 1), np.uint8), np.array([1])),
    )
    assert answer.status_code == 422 and "limit of 1024 pixels a side" in answer.json()["detail"]
    assert stored() == (0, 0)
