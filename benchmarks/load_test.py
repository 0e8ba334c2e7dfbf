"""Bounded load test on loopback: concurrent predict and ingest clients while updates run.

    python -m benchmarks.load_test --duration 30           # starts `lure up` itself on a free port
    python -m benchmarks.load_test --url URL --api-key KEY  # or targets a running server

Prints the figures and writes them to docs/LOAD_TEST.md (and .json). Requests go only to the given
URL (loopback by default); the run stops by itself after --duration seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.markdown import table
from lure_client.client import encode_image, encode_npz
from lure_engine.data import load_digits_dataset
from service.demo import DEMO_MODEL

MODEL = {**DEMO_MODEL, "name": "load", "epochs": 40}  # the demo's digits model, trained longer
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _summary(latencies: list[float], errors: list[str], seconds: float) -> dict:
    return {
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_examples": errors[:5],
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * _percentile(latencies, 50),
        "p99_ms": 1000 * _percentile(latencies, 99),
        "mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan"),
    }


async def prepare(client: httpx.AsyncClient) -> None:
    data = load_digits_dataset()
    answer = await client.post("/v1/models", json=MODEL)
    if answer.status_code not in (201, 409):
        answer.raise_for_status()
    headers = {"content-type": "application/octet-stream"}
    await client.post(
        "/v1/models/load/chunks?split=test",
        content=encode_npz(data.test.x, data.test.y),
        headers=headers,
    )
    await client.post(
        "/v1/models/load/chunks?split=train",
        content=encode_npz(data.train.x[:300], data.train.y[:300]),
        headers=headers,
    )
    deadline = time.monotonic() + 300
    while not (
        await client.get("/v1/models/load/versions")
    ).json():  # predictions need a first version
        if time.monotonic() > deadline:
            raise RuntimeError("no first version within 300 s")
        await asyncio.sleep(0.5)


async def run_load(
    url: str,
    api_key: str,
    duration: float = 20.0,
    predict_clients: int = 16,
    ingest_clients: int = 4,
    images_per_predict: int = 8,
    samples_per_chunk: int = 50,
) -> dict:
    data = load_digits_dataset()
    images = [encode_image(x) for x in data.test.x[:64]]
    limits = httpx.Limits(max_connections=predict_clients + ingest_clients + 4)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=60, limits=limits
    ) as client:
        await prepare(client)
        predict_latency, predict_errors, ingest_latency, ingest_errors = [], [], [], []
        versions_seen: set[str] = set()
        stop = time.monotonic() + duration
        started = time.monotonic()

        async def predictor(seed: int) -> None:
            rng = np.random.default_rng(seed)
            while time.monotonic() < stop:
                pick = [images[i] for i in rng.integers(0, len(images), images_per_predict)]
                t0 = time.perf_counter()
                try:
                    answer = await client.post("/v1/models/load/predict", json={"images": pick})
                    if answer.status_code == 200:
                        predict_latency.append(time.perf_counter() - t0)
                        versions_seen.add(answer.headers["x-model-version"])
                    else:
                        predict_errors.append(f"{answer.status_code} {answer.text[:120]}")
                except httpx.HTTPError as error:
                    predict_errors.append(repr(error))

        async def ingester(seed: int) -> None:
            rng, sent = np.random.default_rng(1000 + seed), 0
            while time.monotonic() < stop:
                pick = rng.integers(0, len(data.train.x), samples_per_chunk)
                body = encode_npz(data.train.x[pick], data.train.y[pick])
                t0 = time.perf_counter()
                try:
                    answer = await client.post(
                        "/v1/models/load/chunks?split=train",
                        content=body,
                        headers={
                            "content-type": "application/octet-stream",
                            "Idempotency-Key": f"load-{seed}-{sent}-{t0}",
                        },
                    )
                    if answer.status_code == 201:
                        ingest_latency.append(time.perf_counter() - t0)
                    else:
                        ingest_errors.append(f"{answer.status_code} {answer.text[:120]}")
                except httpx.HTTPError as error:
                    ingest_errors.append(repr(error))
                sent += 1

        await asyncio.gather(
            *[predictor(i) for i in range(predict_clients)],
            *[ingester(i) for i in range(ingest_clients)],
        )
        seconds = time.monotonic() - started
        jobs = (await client.get("/v1/models/load/jobs", params={"limit": 1000})).json()
    return {
        "duration_s": seconds,
        "predict_clients": predict_clients,
        "ingest_clients": ingest_clients,
        "images_per_predict": images_per_predict,
        "samples_per_chunk": samples_per_chunk,
        "predict": _summary(predict_latency, predict_errors, seconds),
        "ingest": _summary(ingest_latency, ingest_errors, seconds),
        "versions_served": sorted(versions_seen, key=int),
        "jobs_succeeded": sum(j["state"] == "succeeded" for j in jobs),
        "jobs_running_or_queued_at_end": sum(j["state"] in ("running", "queued") for j in jobs),
    }


def write_report(result: dict, path: Path = DOCS / "LOAD_TEST.md") -> None:
    p, i = result["predict"], result["ingest"]
    path.with_suffix(".json").write_text(json.dumps(result, indent=2))
    command = f"python -m benchmarks.load_test --duration {result['duration_s']:.0f}"
    columns = ["traffic", "requests", "errors", "req/s", "p50 ms", "p99 ms"]
    figures = [
        [
            name,
            t["requests"],
            t["errors"],
            f"{t['rps']:.1f}",
            f"{t['p50_ms']:.1f}",
            f"{t['p99_ms']:.1f}",
        ]
        for name, t in (("predict", p), ("ingest", i))
    ]
    path.write_text(f"""# Load test

`{command}` on {platform.node() or "this machine"} ({os.cpu_count()} CPU cores, no GPU),
embedded server (`lure up`: SQLite, filesystem queue, one worker), loopback HTTP.
{result["predict_clients"]} predict clients ({result["images_per_predict"]} images a request) and
{result["ingest_clients"]} ingest clients ({result["samples_per_chunk"]} samples a chunk)
for {result["duration_s"]:.1f} s while updates ran: {result["jobs_succeeded"]} updates finished
during the run, predictions were answered by versions {", ".join(result["versions_served"])}.

{table(columns, figures)}

Figures, not a pass condition: the CI test (`tests/integration/test_load.py`) runs the same code for
a shorter window and asserts only that no request failed. Raw numbers: `LOAD_TEST.json`.
""")


def start_embedded_server(
    data_dir: Path,
    port: int,
    settings: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, str]:
    """`lure up` on loopback with default settings (the caller's LURE_* ignored), plus
    ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LURE_")} | {
        "LURE_TORCH_THREADS": "1"
    }
    env |= settings or {}
    key = (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "service.cli.main",
                "keys",
                "create",
                "--name",
                "load",
                "--scope",
                "admin",
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli.main",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(120):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server, key
        except httpx.TransportError:
            time.sleep(0.5)
    raise RuntimeError("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--api-key")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        url, key = args.url, args.api_key
        if url is None:
            server, key = start_embedded_server(Path(tmp) / "data", args.port)
            url = f"http://127.0.0.1:{args.port}"
        try:
            result = asyncio.run(run_load(url, key, args.duration))
        finally:
            if server is not None:
                os.killpg(server.pid, 15)
                server.wait(30)
    print(
        json.dumps(
            {k: result[k] for k in ("predict", "ingest", "versions_served", "jobs_succeeded")},
            indent=2,
        )
    )
    write_report(result)
    print(f"wrote {DOCS / 'LOAD_TEST.md'}")


if __name__ == "__main__":
    main()
