"""The prepared check for the first session lent a GPU: run it first, commit what it writes.

    bash scripts/gpu_prepare.sh          # here: the packages and data the device machine lacks
    python -m benchmarks.gpu_check --dataset npz:.gpu_data/cifar_gpu.npz   # there, on CUDA
    python -m benchmarks.gpu_check --device cpu --dry-run                  # anywhere, seconds

(``scripts/gpu_prepare.sh`` gives the device tool's exact command.)

Each step is timed and recorded whether it passes or fails (a failure is a finding, not a stop),
and the whole check is sized to finish within 8 minutes on one H100, so a lent machine's
15-minute budget leaves room to run it twice:

1. the device: name, memory, torch and CUDA versions;
2. training throughput of the engine's trainer: full-width CIFAR ResNet18, samples/s with bf16
   autocast and channels_last (the server's CUDA defaults) and without them;
3. an update through the worker's own path on the device: an API in this process over a fresh
   data folder, two mega-batches posted over HTTP, each job run by the update package's
   ``execute_job`` with ``LURE_DEVICE`` set to the device, versions published and audited;
4. ``/predict`` served on the device (``LURE_SERVE_DEVICE``): latency of 32-image requests and the
   inference engine chosen;
5. a short paper-scale run: full-width ResNet18 on 2 mega-batches of the shared CIFAR-10 subset
   (4,000 images each: 8,000 of its 10,000 travel within the device's 64 MiB; flip + crop, the
   paper's schedule, 30 epochs), accuracy and samples/s;
6. one update on the distributed path (NCCL, one GPU): recorded as not built until issue 46's
   ``distributed`` section exists.

Writes ``docs/benchmarks/gpu_check.md`` and ``.json`` (the dry run writes under ``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


@dataclass
class Size:
    """How big each step is: the real check on a GPU, or seconds on a CPU (``--dry-run``)."""

    width: float = 1.0
    steps: int = 200  # mini-batches timed per throughput measurement
    batch: int = 256
    server_images: int = 1250  # per mega-batch posted to the in-process server
    server_epochs: int = 10
    paper_epochs: int = 30
    paper_images: int = 8_000  # two mega-batches of 4,000

    @classmethod
    def dry(cls) -> Size:
        return cls(0.125, 3, 32, 150, 1, 1, 600)


@dataclass
class Check:
    device: str
    dataset: str
    size: Size
    steps: list[dict] = field(default_factory=list)

    def step(self, name: str, work: Callable[[], dict]) -> None:
        started = time.perf_counter()
        try:
            result, passed = work(), True
        except Exception as error:  # noqa: BLE001 - a failing step is what the check reports
            result, passed = {"error": f"{type(error).__name__}: {error}"}, False
            result["traceback"] = traceback.format_exc()[-2000:]
        seconds = time.perf_counter() - started
        self.steps.append({"step": name, "passed": passed, "seconds": seconds, **result})
        print(f"{name}: {'ok' if passed else 'FAILED'} in {seconds:.1f} s {result}", flush=True)


def environment(device: str) -> dict:
    import torch

    out = {"torch": torch.__version__, "python": platform.python_version()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        out |= {
            "gpu": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda,
        }
    return out


def throughput(device: str, size: Size) -> dict:
    """Samples/s of the trainer's step with the server's CUDA defaults, and without them."""
    import torch

    from lure_engine.configs import TrainConfig
    from lure_engine.models import ModelSpec, build_model
    from lure_engine.trainer import train

    spec = ModelSpec("resnet18", 10, 3, 32, size.width)
    x = torch.randn(size.batch * size.steps, 3, 32, 32)
    y = torch.randint(0, 10, (len(x),))
    out = {}
    for label, amp, channels_last in (("bf16 + channels_last", True, True), ("fp32", False, False)):
        model = build_model(spec, seed=0).to(device)
        config = TrainConfig(
            epochs=1, batch_size=size.batch, amp=amp, channels_last=channels_last,
            recalibrate_norm=False,
        )  # fmt: skip
        train(model, x.to(device), y.to(device), config, seed=0)  # warm-up: kernels, caches
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        train(model, x.to(device), y.to(device), config, seed=1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out[f"samples_per_second ({label})"] = round(len(x) / (time.perf_counter() - started))
    return out


def _digits_or_cifar(dataset: str, images: int):
    from lure_engine.data import balanced_train_subset, load_dataset

    data = load_dataset(dataset)
    return balanced_train_subset(data, images) if images < len(data.train) else data


def server_update(device: str, dataset: str, size: Size) -> dict:
    """Two mega-batches through HTTP and the update package's own job, on ``device``."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from lure_core.api_keys import create_key
    from lure_core.blob_backend import open_blob_store
    from lure_core.database import make_engine, make_session_factory
    from lure_core.records import JobRow
    from lure_update.context import UpdateContext
    from lure_update.job import execute_job
    from service.app import create_app
    from service.settings import ServerSettings
    from tests.helpers import NPZ, npz_body

    data = _digits_or_cifar(dataset, 2 * size.server_images)
    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    settings = ServerSettings(
        data_dir=folder, device=device, serve_device=device, dispatch_interval_seconds=3600
    )
    model = {
        "name": "check", "architecture": "resnet18", "width": size.width, "num_classes": 10,
        "image_size": data.image_size, "channels": data.channels, "strategy": "dash",
        "megabatch_size": size.server_images, "epochs": size.server_epochs, "batch_size": 128,
    }  # fmt: skip
    with TestClient(create_app(settings)) as client:
        with client.app.state.resources.sessions.begin() as session:
            client.headers["Authorization"] = f"Bearer {create_key(session, 'c', ['admin'])[0]}"
        client.post("/v1/models", json=model).raise_for_status()
        test = npz_body(data.test.x, data.test.y)
        client.post("/v1/models/check/chunks?split=test", content=test, headers=NPZ)
        context = UpdateContext(
            settings,
            make_session_factory(make_engine(settings.resolved_database_url)),
            open_blob_store(settings),
        )
        outcomes, started = [], time.perf_counter()
        for start in range(0, 2 * size.server_images, size.server_images):
            rows = slice(start, start + size.server_images)
            body = npz_body(data.train.x[rows], data.train.y[rows])
            client.post("/v1/models/check/chunks?split=train", content=body, headers=NPZ)
            with context.sessions() as session:
                job = session.scalar(select(JobRow.id).where(JobRow.state == "queued"))
            outcomes.append(execute_job(context, job).value)
        seconds = time.perf_counter() - started
        versions = client.get("/v1/models/check/versions").json()
        audit = client.post(f"/v1/models/check/versions/{versions[-1]['number']}/audit").json()
        predict = _predict_on(client, data)
    trained = sum(v["metrics"]["train_samples"] * v["metrics"]["epochs_trained"] for v in versions)
    return {
        "outcomes": outcomes,
        "test_accuracy": versions[-1]["metrics"]["test_accuracy"],
        "samples_per_second": round(trained / seconds),
        "audit": audit["result"],
        **predict,
    }


def _predict_on(client, data) -> dict:
    """``/predict`` on the serving device: the engine chosen and the latency of 32 images."""
    from tests.helpers import png_images

    images = {"images": png_images(data.test.x[:32])}
    first = client.post("/v1/models/check/predict", json=images)
    first.raise_for_status()
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        client.post("/v1/models/check/predict", json=images).raise_for_status()
        timings.append(time.perf_counter() - started)
    timings.sort()
    return {
        "predict_engine": first.headers.get("X-Inference-Engine", "unnamed"),
        "predict_p50_ms_32_images": round(1000 * timings[len(timings) // 2], 1),
    }


def paper_scale(device: str, dataset: str, size: Size) -> dict:
    """Full-width ResNet18 on two mega-batches, the paper's schedule, flip + crop."""
    from lure_engine.alma import AlmaConfig, run_alma
    from lure_engine.configs import TrainConfig, UpdateConfig

    data = _digits_or_cifar(dataset, size.paper_images)
    train = TrainConfig(epochs=size.paper_epochs, batch_size=128)
    config = AlmaConfig(
        model="resnet18", width=size.width, strategies=("warm", "dash"), megabatches=2,
        seeds=(0,), update=replace(UpdateConfig(), train=train),
    )  # fmt: skip
    results = run_alma(data, config, device=device)
    out = {"seconds": round(results["wall_seconds"], 1)}
    for run in results["runs"]:
        last = run["megabatches"][-1]
        samples = sum(m["train_samples"] * m["epochs_trained"] for m in run["megabatches"])
        seconds = sum(m["train_seconds"] for m in run["megabatches"])
        out[f"{run['strategy']} test accuracy"] = round(last["test_accuracy"], 4)
        out[f"{run['strategy']} samples/s"] = round(samples / max(seconds, 1e-9))
    return out


def distributed(device: str) -> dict:
    raise NotImplementedError(
        "the distributed update (issue 46: a recipe's distributed section, torch.distributed "
        "launched by the task) is not built yet; this step runs it once it is"
    )


def write(check: Check, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(check.__dict__, default=str, indent=1))
    lines = [
        f"# GPU check on {check.device}",
        "",
        "| step | result | seconds | figures |",
        "|---|---|---|---|",
    ]
    for step in check.steps:
        figures = {k: v for k, v in step.items() if k not in ("step", "passed", "seconds")}
        figures.pop("traceback", None)
        lines.append(
            f"| {step['step']} | {'ok' if step['passed'] else '**failed**'} | "
            f"{step['seconds']:.1f} | {json.dumps(figures)} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dataset", default="digits", help="digits | npz:PATH (the real check)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes: seconds on a CPU")
    parser.add_argument("--out", type=Path, default=DOCS / "gpu_check")
    args = parser.parse_args()
    size = Size.dry() if args.dry_run else Size()
    check = Check(args.device, args.dataset, size)
    check.step("device", lambda: environment(args.device))
    check.step("trainer throughput", lambda: throughput(args.device, size))
    check.step(
        "update through the worker's path", lambda: server_update(args.device, args.dataset, size)
    )
    check.step("paper-scale run", lambda: paper_scale(args.device, args.dataset, size))
    check.step("distributed update (NCCL, 1 GPU)", lambda: distributed(args.device))
    write(check, args.out)


if __name__ == "__main__":
    main()
