"""Update speed, measured through the worker's own code path (``execute_job``, real storage).

    python -m benchmarks.update_speed throughput [--dataset npz:PATH] [--width 0.25] [--epochs 3]
    python -m benchmarks.update_speed growth --megabatches 20

throughput: the worker's training samples/s on one mega-batch ÷ a bare PyTorch loop over the same
  tensors, model and batch size (goal ≥ 0.95), and unlearn time (importance + reset) ÷ the whole
  update (goal ≤ 1 %).
growth: per-update time over N mega-batches for full vs buffer replay, and each run's peak memory
  (each replay mode in its own process, so ru_maxrss is that run's peak).
Figures print and are written to docs/benchmarks/ (JSON and Markdown). Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from benchmarks.markdown import table
from lure_core import recipe
from lure_core.blob_backend import open_blob_store
from lure_core.database import make_engine, make_session_factory, upgrade_database
from lure_core.records import JobRow, ModelRow
from lure_engine.data import load_dataset, to_tensor
from lure_engine.models import ModelSpec, build_model
from lure_update.job import UpdateContext, execute_job
from service.ingest.chunks import Ingestor
from service.settings import ServerSettings

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def _data(source: str | None, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """A real dataset (``npz:PATH`` etc.) or, for speed alone, random 32x32 RGB images."""
    if source:
        dataset = load_dataset(source)
        return dataset.train.x[:n], dataset.train.y[:n], dataset.num_classes
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n), 10


def _store(tmp: Path) -> tuple[UpdateContext, Ingestor]:
    settings = ServerSettings(data_dir=tmp / "data")
    settings.ensure_dirs()
    upgrade_database(settings.resolved_database_url)
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    blobs = open_blob_store(settings)
    return UpdateContext(settings, sessions, blobs), Ingestor(sessions, blobs)


def _model(ctx: UpdateContext, **config) -> int:
    base = {
        "architecture": "resnet18",
        "width": 0.25,
        "num_classes": 10,
        "image_size": 32,
        "channels": 3,
        "strategy": "lure",
        "replay": "full",
        "buffer_size": None,
        "megabatch_size": 1000,
        "epochs": 3,
        "keep_fraction": 0.8,
        "importance": "snip",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "batch_size": 64,
        "hflip": True,
        "seed": 0,
    }
    with ctx.sessions.begin() as session:
        row = ModelRow(name="bench", config={**base, **config})
        session.add(row)
        session.flush()
        return row.id


def _update(
    ctx: UpdateContext, ingestor: Ingestor, model_id: int, x: np.ndarray, y: np.ndarray
) -> dict:
    """Post one mega-batch, run its job through the worker function, return the job's timings."""
    result = ingestor.add_chunk(model_id, "train", x, y)
    job_id = result.jobs[0].id
    outcome = execute_job(ctx, job_id)
    with ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        assert outcome.value == "published", job.error
        return dict(job.timings)


def bare_loop_samples_per_second(
    spec: ModelSpec, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, seed: int
) -> float:
    """The reference: SGD over the same tensors, model and batch size; no augmentation, no hooks.

    It uses the memory layout the trainer uses on this device (channels_last on CUDA, contiguous
    NCHW on the CPU), so the ratio measures our overhead, not a layout choice.
    """
    model = build_model(spec, seed=seed)
    if torch.cuda.is_available():
        model, x = (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    else:
        x = x.contiguous()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return len(x) * epochs / (time.perf_counter() - started)


def throughput(args) -> dict:
    x, y, classes = _data(args.dataset, 2 * args.megabatch_size)
    with tempfile.TemporaryDirectory() as tmp:
        ctx, ingestor = _store(Path(tmp))
        model_id = _model(
            ctx,
            width=args.width,
            epochs=args.epochs,
            megabatch_size=args.megabatch_size,
            num_classes=classes,
            hflip=args.hflip,
        )
        _update(
            ctx, ingestor, model_id, x[: args.megabatch_size], y[: args.megabatch_size]
        )  # version 1 (warm-up)
        timings = _update(
            ctx, ingestor, model_id, x[args.megabatch_size :], y[args.megabatch_size :]
        )
        with ctx.sessions() as session:
            config = session.get(ModelRow, model_id).config
    train_samples = 2 * int(
        round(0.9 * args.megabatch_size)
    )  # mega-batch 2's train split + full replay
    worker_rate = train_samples * args.epochs / timings["train_seconds"]
    tensors_x = to_tensor(x[:train_samples])
    tensors_y = torch.from_numpy(y[:train_samples].astype(np.int64))
    bare_rate = bare_loop_samples_per_second(
        recipe.model_spec(config), tensors_x, tensors_y, args.epochs, config["batch_size"], seed=0
    )
    return {
        "dataset": args.dataset or "random 32x32 RGB",
        "model": f"resnet18 width {args.width}",
        "megabatch_size": args.megabatch_size,
        "train_samples": train_samples,
        "epochs": args.epochs,
        "batch_size": config["batch_size"],
        "augmentation": "flip+crop" if args.hflip else "crop",
        "worker_samples_per_s": worker_rate,
        "bare_loop_samples_per_s": bare_rate,
        "throughput_ratio": worker_rate / bare_rate,
        "unlearn_seconds": timings["unlearn_seconds"],
        "reset_seconds": timings["reset_seconds"],
        "importance_seconds": timings["importance_seconds"],
        "update_total_seconds": timings["total_seconds"],
        "unlearn_fraction": timings["unlearn_seconds"] / timings["total_seconds"],
        "timings": timings,
    }


def growth_run(args) -> dict:
    """One replay mode, in this process: per-update times and this process's peak memory."""
    x, y, classes = _data(args.dataset, args.megabatches * args.megabatch_size, seed=1)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx, ingestor = _store(Path(tmp))
        replay = (
            {"replay": "buffer", "buffer_size": args.buffer_size}
            if args.replay == "buffer"
            else {"replay": "full"}
        )
        model_id = _model(
            ctx,
            width=args.width,
            epochs=args.epochs,
            megabatch_size=args.megabatch_size,
            num_classes=classes,
            **replay,
        )
        for i in range(args.megabatches):
            part = slice(i * args.megabatch_size, (i + 1) * args.megabatch_size)
            timings = _update(ctx, ingestor, model_id, x[part], y[part])
            times.append(timings["total_seconds"])
            print(
                f"{args.replay} mega-batch {i + 1}: {timings['total_seconds']:.1f} s",
                file=sys.stderr,
            )
    return {
        "replay": args.replay,
        "update_seconds": times,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def growth(args) -> dict:
    runs = {}
    for mode in ("full", "buffer"):
        command = [
            sys.executable,
            "-m",
            "benchmarks.update_speed",
            "growth-run",
            "--replay",
            mode,
            "--megabatches",
            str(args.megabatches),
            "--megabatch-size",
            str(args.megabatch_size),
            "--epochs",
            str(args.epochs),
            "--width",
            str(args.width),
            "--buffer-size",
            str(args.buffer_size),
        ]
        if args.dataset:
            command += ["--dataset", args.dataset]
        runs[mode] = json.loads(
            subprocess.run(command, check=True, capture_output=True, text=True).stdout
        )
    return {
        "megabatches": args.megabatches,
        "megabatch_size": args.megabatch_size,
        "epochs": args.epochs,
        "buffer_size": args.buffer_size,
        "model": f"resnet18 width {args.width}",
        "dataset": args.dataset or "random 32x32 RGB",
        "runs": runs,
    }


def _machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU only"
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{device}, torch {torch.__version__}"
    )


def write(name: str, result: dict, markdown: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    result["machine"] = _machine()
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2))
    (OUT / f"{name}.md").write_text(markdown + f"\nMachine: {result['machine']}.\n")
    print(markdown)


def _dataset_flag(args: argparse.Namespace) -> str:
    return f" --dataset {args.dataset}" if args.dataset else ""


def throughput_markdown(args: argparse.Namespace, r: dict) -> str:
    command = (
        f"python -m benchmarks.update_speed throughput --width {args.width} "
        f"--epochs {args.epochs} --megabatch-size {args.megabatch_size}{_dataset_flag(args)}"
    )
    unlearn = (
        f"unlearn time: reset {r['reset_seconds']:.3f} s + SNIP importance "
        f"{r['importance_seconds']:.3f} s"
    )
    rows = [
        [
            "worker training samples/s (`execute_job`, train phase)",
            f"{r['worker_samples_per_s']:.0f}",
            "",
        ],
        [
            "bare PyTorch loop samples/s (same tensors, model, batch; no augmentation)",
            f"{r['bare_loop_samples_per_s']:.0f}",
            "",
        ],
        ["**throughput ratio**", f"**{r['throughput_ratio']:.3f}**", "≥ 0.95"],
        [unlearn, f"{r['unlearn_seconds']:.3f} s", ""],
        [
            "whole update (load, unlearn, train, evaluate, save, publish)",
            f"{r['update_total_seconds']:.2f} s",
            "",
        ],
        ["**unlearn overhead**", f"**{100 * r['unlearn_fraction']:.2f} %**", "≤ 1 %"],
    ]
    return f"""# Update throughput and unlearn overhead

`{command}`

{r["model"]}, {r["dataset"]}, mega-batch 2 of a LURE model with full replay:
{r["train_samples"]} training samples × {r["epochs"]} epochs, batch {r["batch_size"]},
{r["augmentation"]} augmentation in the worker.

{table(["measure", "value", "goal"], rows)}
"""


def growth_markdown(args: argparse.Namespace, r: dict) -> str:
    full, buffer = r["runs"]["full"], r["runs"]["buffer"]
    command = (
        f"python -m benchmarks.update_speed growth --megabatches {args.megabatches} "
        f"--megabatch-size {args.megabatch_size} --epochs {args.epochs} --width {args.width} "
        f"--buffer-size {args.buffer_size}{_dataset_flag(args)}"
    )
    seconds = zip(full["update_seconds"], buffer["update_seconds"], strict=True)
    rows = [[i + 1, f"{f:.1f}", f"{b:.1f}"] for i, (f, b) in enumerate(seconds)]
    return f"""# Update time growth: full vs buffer replay

`{command}`

{r["model"]}, {r["dataset"]}, mega-batches of {r["megabatch_size"]}, {r["epochs"]} epochs each;
buffer replay keeps {r["buffer_size"]} samples (class-balanced). Whole-update seconds per
mega-batch:

{table(["mega-batch", "full replay s", "buffer replay s"], rows)}

Peak memory of the worker process (ru_maxrss): full {full["peak_rss_mib"]:.0f} MiB,
buffer {buffer["peak_rss_mib"]:.0f} MiB.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="Update speed through the worker's code path.")
    parser.add_argument("what", choices=["throughput", "growth", "growth-run"])
    parser.add_argument(
        "--dataset", default=None, help="npz:PATH | cifar10:DIR | digits; default random data"
    )
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--megabatch-size", type=int, default=1000)
    parser.add_argument("--megabatches", type=int, default=20)
    parser.add_argument("--buffer-size", type=int, default=500)
    parser.add_argument("--replay", choices=["full", "buffer"], default="full")
    parser.add_argument("--no-hflip", dest="hflip", action="store_false")
    args = parser.parse_args()
    if args.what == "growth-run":
        print(json.dumps(growth_run(args)))
    elif args.what == "throughput":
        r = throughput(args)
        write("update_throughput", r, throughput_markdown(args, r))
    else:
        r = growth(args)
        write("update_growth", r, growth_markdown(args, r))


if __name__ == "__main__":
    main()
