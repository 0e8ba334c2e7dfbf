"""Hostile bodies against a real API process: bounded memory and a responsive event loop (issue 11).

Memory is the process's peak resident size (``VmHWM``), read before and after each request.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers import DIGITS_MODEL, NPZ
from tests.hostile import npz_zip_bomb
from tests.integration.deployments import make_deployment

pytestmark = pytest.mark.slow
MB = 1024 * 1024


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _raw_post(
    port: int, path: str, headers: dict[str, str], body_chunks, timeout: float = 120
) -> int:
    """Send a request over a plain socket while reading the answer; returns its status code."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    sock.sendall(head.encode() + b"\r\n")

    def send_body() -> None:
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:  # the server answered and closed: exactly what should happen
            pass

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    answer = b""
    try:
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    finally:
        sock.close()
        sender.join(timeout=30)
    return int(answer.split(b" ", 2)[1])


def _api(request, tmp_path, **settings):
    deployment = make_deployment(
        "sqlite", request, tmp_path, LURE_MAX_BODY_BYTES=str(16 * MB), **settings
    )
    with deployment.client() as client:
        client.post("/v1/models", json=DIGITS_MODEL).raise_for_status()
    return deployment


@pytest.fixture(scope="module")
def api(request, tmp_path_factory):
    deployment = _api(request, tmp_path_factory.mktemp("hostile"))
    yield deployment
    deployment.stop()


def test_a_zip_bomb_is_refused_from_its_headers_without_inflating_it(api):
    bomb = npz_zip_bomb(400, 1024)  # 1.2 MB that inflates to 1.26 GB
    assert len(bomb) < 2 * MB
    with api.client() as client:
        before = _peak_rss(api.api.popen.pid)
        started = time.monotonic()
        answer = client.post("/v1/models/digits/chunks?split=train", content=bomb, headers=NPZ)
        seconds = time.monotonic() - started
        grown = _peak_rss(api.api.popen.pid) - before
    assert answer.status_code == 413 and "bytes of pixels; the limit is" in answer.json()["detail"]
    assert grown < 64 * MB, f"peak memory grew by {grown / MB:.0f} MB"
    assert seconds < 5, f"took {seconds:.1f} s: the archive was inflated"


def test_a_huge_body_without_a_key_is_refused_before_it_is_read(api):
    before = _peak_rss(api.api.popen.pid)
    chunks = (bytes(MB) for _ in range(400))  # 400 MB
    status = _raw_post(
        api.port,
        "/v1/models/digits/predict",
        {"Content-Type": "application/json", "Content-Length": str(400 * MB)},
        chunks,
    )
    grown = _peak_rss(api.api.popen.pid) - before
    assert status == 401
    assert grown < 32 * MB, f"peak memory grew by {grown / MB:.0f} MB"


def test_a_streamed_body_with_a_key_stops_at_the_size_limit(api):
    before = _peak_rss(api.api.popen.pid)
    chunk = bytes(MB)
    framed = (
        f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(400)
    )  # chunked, no length
    status = _raw_post(
        api.port,
        "/v1/models/digits/chunks",  # a route that reads its body (predict 409s before reading)
        {
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            "Authorization": f"Bearer {api.key}",
        },
        framed,
    )
    grown = _peak_rss(api.api.popen.pid) - before
    assert status == 413
    assert grown < 64 * MB, (
        f"peak memory grew by {grown / MB:.0f} MB"
    )  # the 16 MB limit, not 400 MB


def _png_items(count: int, side: int) -> list[str]:
    distinct = []
    for value in range(50):
        buffer = io.BytesIO()
        Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(buffer, format="PNG")
        distinct.append(base64.b64encode(buffer.getvalue()).decode())
    return [distinct[i % 50] for i in range(count)]


def test_health_checks_answer_while_a_large_chunk_decodes(request, tmp_path):
    api = _api(
        request, tmp_path, LURE_MAX_DECODED_CHUNK_BYTES=str(2048 * MB)
    )  # room for 4,000 images
    try:
        _decode_while_probing(api)
    finally:
        api.stop()


def _decode_while_probing(api) -> None:
    body = {"images": _png_items(4000, 256), "labels": [i % 10 for i in range(4000)]}
    latencies: list[float] = []
    done = threading.Event()
    result: dict = {}

    def post() -> None:
        with api.client() as client:
            started = time.monotonic()
            result["status"] = client.post("/v1/models/digits/chunks", json=body).status_code
            result["seconds"] = time.monotonic() - started
        done.set()

    sender = threading.Thread(target=post)
    sender.start()
    time.sleep(0.5)  # the body is uploaded; decoding has begun
    with httpx.Client(base_url=api.url, timeout=60) as probe:
        while not done.is_set():
            started = time.monotonic()
            assert probe.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
    sender.join()
    assert result["status"] == 201 and result["seconds"] > 2, result  # decoding took a while...
    assert max(latencies) < 1.0, (
        f"/healthz took up to {max(latencies):.1f} s"
    )  # ...and health kept answering


def _resident(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_a_refused_large_import_leaves_no_memory_behind(api):
    """Before, a refused 300 MB import left the API 290-575 MB larger: the refusal crossed the
    thread pool as an exception whose frames held the body."""
    import json
    import struct

    size = 120 * MB
    header = json.dumps({"x": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}).encode()
    body = struct.pack("<Q", len(header)) + header + bytes(size)
    pid = api.api.popen.pid
    with api.client() as client:
        client.get("/v1/models").raise_for_status()
        before = _resident(pid)
        for _ in range(2):
            answer = client.post(
                "/v1/models/digits/versions/import", content=body, headers=NPZ, timeout=120
            )
            assert answer.status_code == 422 and "do not fit" in answer.json()["detail"]
        time.sleep(0.5)
        assert _resident(pid) - before < 40 * MB


def test_a_large_import_is_judged_by_its_header_before_its_tensors_are_read(api):
    """A 300 MB import whose header does not fit the model raised the API's peak memory by
    ~570 MB while it was read (issue 42 §6): it is now refused from its header, and the peak
    hardly moves."""
    import json
    import struct

    size = 300 * MB
    header = json.dumps({"x": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}).encode()
    head = struct.pack("<Q", len(header)) + header

    def chunks():
        yield head
        for _ in range(size // MB):
            yield bytes(MB)

    pid = api.api.popen.pid
    before = _peak_rss(pid)
    status = _raw_post(
        api.port,
        "/v1/models/digits/versions/import",
        {
            "Authorization": f"Bearer {api.key}",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(head) + size),
        },
        chunks(),
    )
    grown = _peak_rss(pid) - before
    assert status == 422
    assert grown < 48 * MB, f"peak memory grew by {grown / MB:.0f} MB"


def test_sizing_a_registry_model_costs_the_api_no_memory_and_no_pause(api):
    """The first ``torchvision:`` model created in an API process blocked ``/healthz`` for 5.6 s
    and kept +165 MB (a ResNet-50 at 224 px: 7.5 s, +291 MB) (issue 42 §5): it is now probed in
    a child process."""
    pid, pauses, done = api.api.popen.pid, [], threading.Event()

    def poll_health() -> None:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            while not done.is_set():
                began = time.monotonic()
                client.get("/healthz").raise_for_status()
                pauses.append(time.monotonic() - began)
                time.sleep(0.05)

    before = _peak_rss(pid)
    poller = threading.Thread(target=poll_health, daemon=True)
    poller.start()
    try:
        with api.client() as client:
            created = client.post(
                "/v1/models",
                json={
                    **DIGITS_MODEL,
                    "name": "big",
                    "architecture": "torchvision:resnet50",
                    "channels": 3,
                    "image_size": 224,
                    "width": 1.0,
                },
            )
    finally:
        done.set()
        poller.join(30)
    assert created.status_code == 201, created.text
    grown = _peak_rss(pid) - before
    assert grown < 24 * MB, f"peak memory grew by {grown / MB:.0f} MB"
    assert max(pauses) < 1.0, f"/healthz waited {max(pauses):.1f} s"


def test_a_client_that_hangs_up_mid_body_is_an_info_line_not_a_traceback(api):
    """A load generator ending its run left 24 "Exception in ASGI application" tracebacks in
    8 s (``ClientDisconnect``) (issue 42 §5)."""
    log = api.api.log
    start = len(log.read_bytes())
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", api.port))
        sock.sendall(
            b"POST /v1/models/digits/chunks?split=train HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {api.key}\r\n".encode()
            + b"Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
            + bytes(1000)
        )
        time.sleep(0.2)
        sock.close()
    with api.client() as client:  # the server goes on answering
        assert client.get("/v1/models/digits").status_code == 200
    time.sleep(0.5)
    added = log.read_bytes()[start:].decode(errors="replace")
    assert "Traceback" not in added and "Exception in ASGI" not in added, added
    assert added.count("client disconnected during POST /v1/models/digits/chunks") == 5, added
