"""Inference engines on the CPU, in process and through HTTP, measured in one run.

    python -m benchmarks.inference_engines [--seconds 6] [--threads 2]

For each model (the paper's ResNet18 at width 1 and 0.25, torchvision's MobileNetV3-small, all at
32x32 RGB):
- in process, ``--threads`` torch/ONNX Runtime threads: images/s of eager PyTorch,
  ``torch.jit.freeze`` (conv-BN folded by ``optimize_for_inference``) and ONNX Runtime at batch
  1, 8 and 32, rounds interleaved so the machine's noise hits all alike; and each engine's largest
  probability difference from eager;
- through HTTP (``lure up`` on loopback, ``LURE_TORCH_THREADS=--threads``), PNG images in JSON
  requests, with ``LURE_SERVE_ENGINE=eager`` and ``auto``: p50 at one client and requests/s at
  32 clients (one image a request), each as a ratio to the eager forward measured above (the
  issue's goals: p50 at one client at most the eager batch-1 forward; at 32 clients at least
  1.0x the eager batch-32 forward for the small models and 0.8x for width 1), the CPU each
  request costs the API and the load generator, and images/s at 32 clients sending 8 images a
  request. The load comes from ``benchmarks.raw_load`` (pre-built requests on keep-alive
  sockets), not httpx, whose own CPU per request exceeded the API's on these shared cores.
Writes docs/benchmarks/inference_engines.{md,json}. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import torch

from benchmarks.load_test import start_embedded_server
from benchmarks.markdown import publish, table
from benchmarks.paired import paired_rounds
from benchmarks.raw_load import json_post, run_load
from benchmarks.serving_speed import IMAGES, LABELS
from lure_client.client import encode_image, encode_npz
from lure_engine.data import to_tensor
from lure_engine.models import ModelSpec, build_model
from lure_engine.preprocess import CIFAR_DEFAULT
from service.serving.engines import OnnxRuntimeEngine, packaged

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
MODELS = {
    "resnet18 width 1": ("resnet18", 1.0),
    "resnet18 width 0.25": ("resnet18", 0.25),
    "torchvision mobilenet_v3_small": ("torchvision:mobilenet_v3_small", 1.0),
}
BATCHES = (1, 8, 32)


class EagerForward:
    """The goals' reference: eager PyTorch's forward alone, on an already normalised batch."""

    name = "eager"

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        self._normalised: tuple[np.ndarray, torch.Tensor] | None = None

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        # normalised once per batch, outside the timed forward; the batch itself is held, so
        # a later batch can never be mistaken for it
        if self._normalised is None or self._normalised[0] is not images:
            self._normalised = (images, to_tensor(images))
        return self.model(self._normalised[1]).float().softmax(1).numpy()


class FrozenEngine:
    """TorchScript of the served graph (uint8 images in), frozen, with
    ``optimize_for_inference`` (conv-BN folding)."""

    name = "jit.freeze"

    def __init__(self, model: torch.nn.Module, pre) -> None:
        example = torch.zeros(1, pre.size, pre.size, pre.channels, dtype=torch.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(packaged(model, pre), example)
            self.module = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return self.module(torch.from_numpy(images)).float().softmax(1).numpy()


def _model(architecture: str, width: float) -> torch.nn.Module:
    return build_model(ModelSpec(architecture, 10, 3, 32, width), seed=0).eval()


def in_process(architecture: str, width: float, seconds: float) -> dict:
    """images/s per engine and batch size. ``eager`` is the forward alone on a normalised batch
    (the goals' reference); the others take uint8 images as /predict has them, preprocessing
    included, as they serve."""
    model = _model(architecture, width)
    pre = CIFAR_DEFAULT
    engines = [
        EagerForward(model),
        FrozenEngine(model, pre),
        OnnxRuntimeEngine(model, pre),
    ]
    probe = np.ascontiguousarray(IMAGES[:32])
    reference = engines[0].probabilities(probe)
    result = {
        e.name: {"max_difference": float(np.abs(e.probabilities(probe) - reference).max())}
        for e in engines
    }
    rounds = 5
    for batch in BATCHES:
        x = np.ascontiguousarray(IMAGES[:batch])
        rates: dict[str, list[float]] = {e.name: [] for e in engines}
        for _ in range(rounds):  # interleaved: each round times every engine once
            for engine in engines:
                engine.probabilities(x)
                count, stop = 0, time.perf_counter() + seconds / rounds / len(engines)
                started = time.perf_counter()
                while time.perf_counter() < stop:
                    engine.probabilities(x)
                    count += batch
                rates[engine.name].append(count / (time.perf_counter() - started))
        for name, values in rates.items():
            result[name][f"batch_{batch}_images_per_s"] = statistics.median(values)
    return result


async def _publish(client: httpx.AsyncClient, architecture: str, width: float) -> None:
    config = {
        "name": "serve",
        "architecture": architecture,
        "width": width,
        "num_classes": 10,
        "image_size": 32,
        "channels": 3,
        "megabatch_size": 200,
        "epochs": 1,
        "promotion": {"min_accuracy_delta": None},
    }
    (await client.post("/v1/models", json=config)).raise_for_status()
    (
        await client.post(
            "/v1/models/serve/chunks?split=train",
            content=encode_npz(IMAGES[:200], LABELS[:200]),
            headers={"content-type": "application/octet-stream"},
        )
    ).raise_for_status()
    while not (await client.get("/v1/models/serve/versions")).json():
        await asyncio.sleep(0.5)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (the API; not its worker child), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _predict_requests(port: int, key: str, images_per_request: int) -> list[bytes]:
    """64 distinct JSON predict requests of ``images_per_request`` PNG images each."""
    return [
        json_post(
            "127.0.0.1",
            port,
            "/v1/models/serve/predict",
            {
                "images": [
                    encode_image(IMAGES[(i * images_per_request + j) % len(IMAGES)])
                    for j in range(images_per_request)
                ]
            },
            {"Authorization": f"Bearer {key}"},
        )
        for i in range(64)
    ]


async def _measured_load(
    port: int, requests: list[bytes], clients: int, seconds: float, pid: int, images: int
) -> dict:
    """The load's figures, images/s, and the CPU milliseconds per answered request of the API
    and of the load generator (this process)."""
    api_before, own_before = _cpu_seconds(pid), time.process_time()
    load = (await run_load("127.0.0.1", port, requests, clients, seconds)).summary()
    answered = max(load["requests_per_s"] * seconds, 1)
    load["images_per_s"] = load["requests_per_s"] * images
    load["api_cpu_ms_per_request"] = 1000 * (_cpu_seconds(pid) - api_before) / answered
    load["client_cpu_ms_per_request"] = 1000 * (time.process_time() - own_before) / answered
    if load["errors"]:
        raise RuntimeError(f"{load['errors']} predict requests failed: {load['first_error']}")
    return load


def eager_forward_images_per_s(
    architecture: str, width: float, batch: int, seconds: float, threads: int = 2
) -> float:
    """The goals' reference: eager PyTorch's forward alone at ``batch``, in this process."""
    torch.set_num_threads(threads)
    engine = EagerForward(_model(architecture, width))
    images = np.ascontiguousarray(IMAGES[:batch])
    engine.probabilities(images)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        engine.probabilities(images)
        count += batch
    return count / (time.perf_counter() - started)


async def _publish_and_probe(url: str, key: str, architecture: str, width: float) -> str:
    """Publish a version and load it (its engine is chosen then); the engine's name."""
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as client:
        await _publish(client, architecture, width)
        probe = await client.post(
            "/v1/models/serve/predict", json={"images": [encode_image(IMAGES[0])]}
        )
        probe.raise_for_status()
    return probe.headers.get("X-Inference-Engine", "")


def _http(
    url: str, key: str, architecture: str, width: float, seconds: float, pid: int, rounds: int
) -> dict:
    """The one-client and 32-client figures, each in rounds alternating with its reference
    (``benchmarks.paired``): the eager batch-1 forward (ms) for the one client, the eager
    batch-32 forward (images/s) at 32 clients."""
    port = int(url.rsplit(":", 1)[1])
    engine = asyncio.run(_publish_and_probe(url, key, architecture, width))
    single, eight = _predict_requests(port, key, 1), _predict_requests(port, key, 8)
    asyncio.run(run_load("127.0.0.1", port, single, 4, 1.0))  # warm-up

    def load(requests: list[bytes], clients: int, images: int):
        return lambda: asyncio.run(_measured_load(port, requests, clients, seconds, pid, images))

    def batch_1_ms() -> float:
        return 1000 / eager_forward_images_per_s(architecture, width, 1, 2.0)

    def batch_32() -> float:
        return eager_forward_images_per_s(architecture, width, 32, 2.0)

    return {
        "engine": engine,
        "one": paired_rounds(batch_1_ms, load(single, 1, 1), rounds, "p50_ms"),
        "thirty_two": paired_rounds(batch_32, load(single, 32, 1), rounds, "images_per_s"),
        "thirty_two_by_8": paired_rounds(batch_32, load(eight, 32, 8), rounds, "images_per_s"),
    }


def through_http(
    architecture: str, width: float, engine: str, threads: int, seconds: float, rounds: int = 3
):
    with tempfile.TemporaryDirectory() as tmp:
        port = 8770
        server, key = start_embedded_server(
            Path(tmp) / "data",
            port,
            {"LURE_SERVE_ENGINE": engine, "LURE_TORCH_THREADS": str(threads)},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            return _http(url, key, architecture, width, seconds, server.pid, rounds)
        finally:
            os.killpg(server.pid, 15)
            server.wait(30)


def render(result: dict) -> str:
    sections = []
    for label, data in result["models"].items():
        engines = data["in_process"]
        eager = engines["eager"]
        forward = table(
            [
                "engine",
                *[f"batch {b} images/s" for b in BATCHES],
                "× eager at 1 / 8 / 32",
                "max |Δp| vs eager",
            ],
            [
                [
                    name,
                    *[f"{v[f'batch_{b}_images_per_s']:.0f}" for b in BATCHES],
                    " / ".join(
                        f"{v[f'batch_{b}_images_per_s'] / eager[f'batch_{b}_images_per_s']:.2f}"
                        for b in BATCHES
                    ),
                    f"{v['max_difference']:.1e}",
                ]
                for name, v in engines.items()
            ],
        )
        eager_1_ms = 1000 / eager["batch_1_images_per_s"]

        def ratio(figures: dict) -> str:
            rounds = ", ".join(f"{r:.2f}" for r in figures["ratios"])
            return f"{figures['ratio']:.2f} ({rounds})"

        http = table(
            [
                "LURE_SERVE_ENGINE",
                "serving engine",
                "p50 ms, 1 client",
                "p50 − eager batch-1 forward (ms; goal ≤ 0)",
                "requests/s, 32 clients",
                "÷ eager batch-32 forward, median (per round)",
                "CPU ms/request at 32 clients: API / load generator",
                "images/s, 32 clients × 8 images",
                "÷ eager batch-32 forward, median (per round)",
            ],
            [
                [
                    setting,
                    h["engine"],
                    f"{h['one']['p50_ms']:.2f}",
                    f"{h['one']['p50_ms'] - h['one']['reference']:+.2f}",
                    f"{h['thirty_two']['requests_per_s']:.0f}",
                    ratio(h["thirty_two"]),
                    f"{h['thirty_two']['api_cpu_ms_per_request']:.2f} / "
                    f"{h['thirty_two']['client_cpu_ms_per_request']:.2f}",
                    f"{h['thirty_two_by_8']['images_per_s']:.0f}",
                    ratio(h["thirty_two_by_8"]),
                ]
                for setting, h in data["http"].items()
            ],
        )
        sections.append(
            f"## {label}\n\nEager batch-1 forward: {eager_1_ms:.2f} ms.\n\n{forward}\n\n{http}\n"
        )
    return (
        "# Inference engines: eager PyTorch, jit.freeze, ONNX Runtime, and /predict over HTTP\n\n"
        f"`python -m benchmarks.inference_engines --seconds {result['seconds']:g} "
        f"--threads {result['threads']}`, on {result['machine']}. In process: "
        f"{result['threads']} threads, medians of 5 interleaved rounds; `eager` is the forward "
        "alone on a normalised batch (the goals' reference), the others take uint8 images as "
        "`/predict` has them. HTTP: `lure up` on loopback (API, its worker and the load "
        "generator on the same cores), PNG images in JSON requests, one per request unless said; "
        "the load generator writes pre-built requests on keep-alive sockets "
        "(`benchmarks/raw_load.py`), so nearly all CPU is left to the server. Each HTTP figure is "
        f"the median of {result['rounds']} rounds, each round right after its own reference "
        "(the eager forward at batch 1 or 32, in this process: `benchmarks/paired.py`), so the "
        "machine's drift hits both alike.\n\n" + "\n".join(sections)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per HTTP figure")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"seconds": args.seconds, "threads": args.threads, "rounds": args.rounds}
    result["models"] = {}
    result["machine"] = f"{os.cpu_count()} CPU cores, torch {torch.__version__}"
    for label in args.models:
        architecture, width = MODELS[label]
        print(f"{label}: in process", flush=True)
        data = {"in_process": in_process(architecture, width, args.seconds)}
        data["http"] = {}
        for engine in ("eager", "auto"):
            print(f"{label}: HTTP with LURE_SERVE_ENGINE={engine}", flush=True)
            data["http"][engine] = through_http(
                architecture, width, engine, args.threads, args.seconds, args.rounds
            )
        result["models"][label] = data
    publish(OUT, "inference_engines", result, render(result))


if __name__ == "__main__":
    main()
