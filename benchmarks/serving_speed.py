"""Predict and ingest speed through HTTP, against the raw model and the raw payload.

    python -m benchmarks.serving_speed [--seconds 10] [--width 0.25] [--max-wait-ms 0] \
        [--name serving_speed]

Starts `lure up` on loopback, publishes a ResNet18 (32x32 RGB) version, then measures
- predict: requests/s and p50/p99 at 1, 8 and 32 concurrent clients (one image a request), and
  the raw forward at batch 1, 8 and 32 in this process: HTTP images/s ÷ raw images/s;
- ingest: samples/s and MB/s for the JSON (base64 PNG) and the ``.npz`` forms.
Writes docs/benchmarks/NAME.{md,json}. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from benchmarks.load_test import start_embedded_server
from benchmarks.markdown import table
from lure_client.client import encode_image, encode_npz
from lure_engine.data import to_tensor
from lure_engine.models import ModelSpec, build_model

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (2048, 32, 32, 3), dtype=np.uint8)
LABELS = RNG.integers(0, 10, 2048)


async def _publish(client: httpx.AsyncClient, width: float) -> None:
    config = {
        "name": "serve",
        "architecture": "resnet18",
        "width": width,
        "num_classes": 10,
        "image_size": 32,
        "channels": 3,
        "megabatch_size": 500,
        "epochs": 1,
    }
    (await client.post("/v1/models", json=config)).raise_for_status()
    (
        await client.post(
            "/v1/models/serve/chunks?split=train",
            content=encode_npz(IMAGES[:500], LABELS[:500]),
            headers={"content-type": "application/octet-stream"},
        )
    ).raise_for_status()
    while not (await client.get("/v1/models/serve/versions")).json():
        await asyncio.sleep(0.5)


async def _predict_load(client: httpx.AsyncClient, clients: int, seconds: float) -> dict:
    bodies = [{"images": [encode_image(IMAGES[i])]} for i in range(256)]
    latencies, errors, stop = [], 0, time.monotonic() + seconds

    async def one(seed: int) -> None:
        nonlocal errors
        i = seed
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            answer = await client.post("/v1/models/serve/predict", json=bodies[i % len(bodies)])
            if answer.status_code == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1
            i += clients

    started = time.monotonic()
    await asyncio.gather(*[one(s) for s in range(clients)])
    elapsed = time.monotonic() - started
    return {
        "clients": clients,
        "requests_per_s": len(latencies) / elapsed,
        "errors": errors,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
    }


async def _ingest(
    client: httpx.AsyncClient, form: str, seconds: float, clients: int = 4, chunk: int = 128
) -> dict:
    npz_bodies = [
        encode_npz(IMAGES[i : i + chunk], LABELS[i : i + chunk]) for i in range(0, 1024, chunk)
    ]
    json_bodies = [
        json.dumps(
            {
                "split": "test",
                "images": [encode_image(x) for x in IMAGES[i : i + chunk]],
                "labels": LABELS[i : i + chunk].tolist(),
            }
        ).encode()
        for i in range(0, 1024, chunk)
    ]
    samples, sent_bytes, stop = 0, 0, time.monotonic() + seconds

    async def one(seed: int) -> None:
        nonlocal samples, sent_bytes
        i = seed
        while time.monotonic() < stop:
            if form == "npz":
                body, url, kind = (
                    npz_bodies[i % len(npz_bodies)],
                    "/v1/models/serve/chunks?split=test",
                    "application/octet-stream",
                )
            else:
                body, url, kind = (
                    json_bodies[i % len(json_bodies)],
                    "/v1/models/serve/chunks",
                    "application/json",
                )
            answer = await client.post(url, content=body, headers={"content-type": kind})
            answer.raise_for_status()
            samples += chunk
            sent_bytes += len(body)
            i += clients

    started = time.monotonic()
    await asyncio.gather(*[one(s) for s in range(clients)])
    elapsed = time.monotonic() - started
    return {
        "form": form,
        "samples_per_s": samples / elapsed,
        "MB_per_s": sent_bytes / elapsed / 1e6,
        "bytes_per_sample": sent_bytes / max(samples, 1),
        "chunk_samples": chunk,
        "clients": clients,
    }


def raw_forward(width: float, batch: int, seconds: float) -> float:
    """Images/s of the bare model forward (eval, inference mode) on pre-normalised tensors."""
    model = build_model(ModelSpec("resnet18", 10, 3, 32, width), seed=0).eval()
    x = to_tensor(IMAGES[:batch])
    count, stop = 0, time.monotonic() + seconds
    started = time.monotonic()
    with torch.inference_mode():
        while time.monotonic() < stop:
            model(x)
            count += batch
    return count / (time.monotonic() - started)


async def measure(url: str, key: str, width: float, seconds: float) -> dict:
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        limits=httpx.Limits(max_connections=64),
    ) as client:
        await _publish(client, width)
        await _predict_load(client, 1, 2)  # warm the model cache
        predict = [await _predict_load(client, c, seconds) for c in (1, 8, 32)]
        ingest = [await _ingest(client, form, seconds) for form in ("npz", "json")]
    return {"predict": predict, "ingest": ingest}


def render_markdown(result: dict) -> str:
    """The report page; works on a fresh result or one read back from JSON (string batch keys)."""
    raw_by_batch = {int(b): v for b, v in result["raw_forward_images_per_s"].items()}
    predict = table(
        [
            "concurrent clients",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "÷ raw forward at batch 1",
            "÷ raw forward at batch = clients",
        ],
        [
            [
                p["clients"],
                f"{p['requests_per_s']:.1f}",
                f"{p['p50_ms']:.1f}",
                f"{p['p99_ms']:.1f}",
                p["errors"],
                f"{p['requests_per_s'] / raw_by_batch[1]:.2f}",
                f"{p['requests_per_s'] / raw_by_batch[p['clients']]:.2f}",
            ]
            for p in result["predict"]
        ],
    )
    raw = ", ".join(f"batch {b}: {v:.0f} images/s" for b, v in raw_by_batch.items())
    chunk = result["ingest"][0]["chunk_samples"]
    ingest = table(
        [f"ingest form (4 clients, {chunk} samples a chunk)", "samples/s", "MB/s", "bytes/sample"],
        [
            [
                i["form"],
                f"{i['samples_per_s']:.0f}",
                f"{i['MB_per_s']:.2f}",
                f"{i['bytes_per_sample']:.0f}",
            ]
            for i in result["ingest"]
        ],
    )
    command = (
        f"python -m benchmarks.serving_speed --seconds {result['seconds']:g} "
        f"--width {result['width']} --max-wait-ms {result.get('max_wait_ms', 0.0):g}"
    )
    return f"""# Serving speed: predict and ingest through HTTP

`{command}`: `lure up` on loopback (API and worker on the same 2 cores), ResNet18 width
{result["width"]}, 32×32 RGB, one image per predict request.

Raw model forward in one process (eval, inference mode): {raw}.

{predict}

{ingest}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=0.0,
        help="the server's LURE_PREDICT_MAX_WAIT_MS (bounded wait to gather a predict batch)",
    )
    parser.add_argument(
        "--name", default="serving_speed", help="output file stem under docs/benchmarks/"
    )
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        server, key = start_embedded_server(
            Path(tmp) / "data", args.port, {"LURE_PREDICT_MAX_WAIT_MS": str(args.max_wait_ms)}
        )
        try:
            result = asyncio.run(
                measure(f"http://127.0.0.1:{args.port}", key, args.width, args.seconds)
            )
        finally:
            os.killpg(server.pid, 15)
            server.wait(30)
    result["raw_forward_images_per_s"] = {
        b: raw_forward(args.width, b, args.seconds / 2) for b in (1, 8, 32)
    }
    result.update(
        width=args.width,
        seconds=args.seconds,
        torch_threads=torch.get_num_threads(),
        max_wait_ms=args.max_wait_ms,
    )
    markdown = render_markdown(result)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    (OUT / f"{args.name}.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
