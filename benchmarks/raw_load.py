"""A lean HTTP/1.1 load generator: pre-built request bytes on keep-alive sockets.

Why not httpx: on this 2-core machine the load generator shares the cores with the server, and
httpx spends about 5 ms of CPU per request, more than the API itself (about 3 ms), so a
throughput figure measured with it says as much about the client as about the server. This
client writes bytes it built once and reads the answer by its Content-Length: well under a
tenth of a millisecond per request, so nearly all the CPU is left to the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LoadResult:
    """What one run of the load answered, and how fast."""

    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def summary(self) -> dict:
        return {
            "clients": self.clients,
            "requests_per_s": len(self.latencies) / self.seconds,
            "errors": self.errors,
            "first_error": self.first_error,
            "p50_ms": 1000 * float(np.percentile(self.latencies or [0.0], 50)),
            "p99_ms": 1000 * float(np.percentile(self.latencies or [0.0], 99)),
        }


def json_post(host: str, port: int, path: str, body: dict, headers: dict[str, str]) -> bytes:
    """One complete keep-alive ``POST`` with a JSON body, as bytes ready to write."""
    payload = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one answer; only Content-Length framing (what the API sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, await reader.readexactly(int(value))
    raise ValueError(f"answer without Content-Length (chunked?): {head[:200]!r}")


async def run_load(
    host: str, port: int, requests: list[bytes], clients: int, seconds: float
) -> LoadResult:
    """``clients`` connections, each sending the next request as soon as its answer came back,
    for ``seconds``; only 200 answers count as answered."""
    stop = time.monotonic() + seconds
    result = LoadResult(clients=clients, seconds=seconds)

    async def one_client(seed: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = seed
        try:
            while time.monotonic() < stop:
                started = time.perf_counter()
                writer.write(requests[i % len(requests)])
                status, body = await _read_answer(reader)
                if status == 200:
                    result.latencies.append(time.perf_counter() - started)
                else:
                    result.errors += 1
                    result.first_error = result.first_error or f"{status}: {body[:200]!r}"
                i += clients
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*[one_client(seed) for seed in range(clients)])
    result.seconds = time.monotonic() - started
    return result
