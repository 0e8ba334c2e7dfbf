"""The benchmarks' lean load generator counts what a real HTTP server answered, and refuses
framing it cannot read (a figure from misparsed answers would be worthless)."""

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from benchmarks.raw_load import json_post, run_load


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def server():
    app, seen = FastAPI(), []

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        body = await request.json()
        seen.append((request.headers.get("authorization"), body["n"]))
        status = 200 if body["n"] % 2 == 0 else 429
        return Response(json.dumps({"n": body["n"]}), status, media_type="application/json")

    @app.post("/chunked")
    async def chunked() -> StreamingResponse:
        return StreamingResponse(iter([b"a", b"b"]))

    port = _free_port()
    instance = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.05)
    yield port, seen
    instance.should_exit = True
    thread.join(10)


def test_answers_are_counted_by_status_over_keep_alive_connections(server):
    port, seen = server
    requests = [
        json_post("127.0.0.1", port, "/echo", {"n": n}, {"Authorization": "k"}) for n in (0, 1)
    ]
    result = asyncio.run(run_load("127.0.0.1", port, requests, clients=2, seconds=0.5))
    summary = result.summary()
    assert len(seen) == len(result.latencies) + result.errors > 10
    assert all(auth == "k" for auth, _ in seen)
    # client 0 sends only even bodies (answered 200), client 1 only odd ones (429)
    assert result.latencies and result.errors > 0 and result.first_error.startswith("429")
    assert summary["requests_per_s"] == pytest.approx(len(result.latencies) / result.seconds)
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]


def test_an_answer_without_content_length_is_refused(server):
    port, _ = server
    request = json_post("127.0.0.1", port, "/chunked", {}, {})
    with pytest.raises(ValueError, match="Content-Length"):
        asyncio.run(run_load("127.0.0.1", port, [request], clients=1, seconds=0.2))
