"""Imports that broke the server (issue 23 E): malformed safetensors headers answered 500, wrong
dtypes and non-finite weights went live, concurrent imports into one model answered 500.
Each is now a 4xx naming the problem, and nothing is stored."""

from __future__ import annotations

import json
import struct
import threading

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from sqlalchemy import func, select

from lure_core.records import VersionRow
from tests.helpers import NPZ
from tests.server.test_import_export import MODEL, offline  # noqa: F401 - the fixture


def _split(body: bytes) -> tuple[dict, bytes]:
    length = struct.unpack("<Q", body[:8])[0]
    return json.loads(body[8 : 8 + length]), body[8 + length :]


def _join(header: object, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _with_first_entry(body: bytes, change) -> bytes:
    header, data = _split(body)
    name = next(k for k in header if k != "__metadata__")
    header[name] = change(dict(header[name]))
    return _join(header, data)


def _overlapping(body: bytes) -> bytes:
    header, data = _split(body)
    names = sorted(
        (k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"]
    )
    first, second = header[names[0]], header[names[1]]
    size = first["data_offsets"][1] - first["data_offsets"][0]
    second_size = second["data_offsets"][1] - second["data_offsets"][0]
    second["data_offsets"] = [
        first["data_offsets"][1] - 4,
        first["data_offsets"][1] - 4 + second_size,
    ]
    assert size > 4
    return _join(header, data)


HEADERS = {
    "a JSON list": (lambda b: _join([1, 2], _split(b)[1]), "is a JSON list"),
    "a JSON string": (lambda b: _join("weights", _split(b)[1]), "is a JSON str"),
    "string offsets": (
        lambda b: _with_first_entry(b, lambda e: {**e, "data_offsets": ["0", "4"]}),
        "data_offsets",
    ),
    "one offset": (
        lambda b: _with_first_entry(b, lambda e: {**e, "data_offsets": [0]}),
        "data_offsets",
    ),
    "dtype BOGUS": (lambda b: _with_first_entry(b, lambda e: {**e, "dtype": "BOGUS"}), "BOGUS"),
    "overlapping offsets": (_overlapping, "overlaps"),
}


def _refused(client, body: bytes, status: int = 422) -> str:
    answer = client.post("/v1/models/mnv3/versions/import", content=body, headers=NPZ)
    assert answer.status_code == status, answer.text
    assert client.get("/v1/models/mnv3").json()["live_version"] is None
    return answer.json()["detail"]


@pytest.mark.parametrize("case", list(HEADERS))
def test_a_malformed_header_is_a_422_naming_it(client, offline, case):  # noqa: F811
    client.post("/v1/models", json=MODEL).raise_for_status()
    mangle, message = HEADERS[case]
    assert message in _refused(client, mangle(offline[1]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int8, torch.bool])
def test_weights_of_another_dtype_are_refused_as_documented(client, offline, dtype):  # noqa: F811
    client.post("/v1/models", json=MODEL).raise_for_status()
    state = load_safetensors(offline[1])
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].to(dtype)
    detail = _refused(client, save_safetensors(state))
    assert f"tensor {name} is" in detail and "the model's is F32" in detail


@pytest.mark.parametrize(
    "value,message", [(float("nan"), "NaN or infinite values"), (3e38, "NaN or infinite outputs")]
)
def test_non_finite_or_overflowing_weights_are_refused(client, offline, value, message):  # noqa: F811
    client.post("/v1/models", json=MODEL).raise_for_status()
    state = {
        k: torch.full_like(v, value) if v.is_floating_point() else v
        for k, v in load_safetensors(offline[1]).items()
    }
    assert message in _refused(client, save_safetensors(state))


def test_concurrent_imports_into_one_model_give_one_version_and_409s(client, offline):  # noqa: F811
    client.post("/v1/models", json=MODEL).raise_for_status()
    answers: list[int] = []

    def send() -> None:
        answer = client.post("/v1/models/mnv3/versions/import", content=offline[1], headers=NPZ)
        answers.append(answer.status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 409, 409, 409]
    with client.app.state.resources.sessions() as session:
        assert session.scalar(select(func.count()).select_from(VersionRow)) == 1
