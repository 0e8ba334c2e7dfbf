"""/predict from several API processes, the production shape (PostgreSQL + Redis), on one machine.

    source scripts/services.sh   # PostgreSQL on 5433 and Redis, exported as URLs
    python -m benchmarks.replica_serving --postgres-url "$LURE_TEST_POSTGRES_URL" \\
        --redis-url "$LURE_TEST_REDIS_URL" [--seconds 6] [--processes 1 2] [--rounds 2]

Why: one API process answers single-image requests with about 1 ms of Python per request, and
Python runs on one core at a time, so one process cannot use a second core for that part. For
each small model this starts a fresh database, ``lure api --workers N`` (N processes sharing one
port; ``LURE_TORCH_THREADS`` unset, so the cores are shared out; ``LURE_SERVE_ENGINE=auto``) and
one ``lure worker``, publishes a version, and sends 32 clients' JSON requests of one PNG image,
then of eight, with the lean load generator. The reference is the eager batch-32 forward with 2
threads, as in ``benchmarks.inference_engines``, measured in this process just before each load.
Writes docs/benchmarks/replica_serving.{md,json}. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import torch

from benchmarks.inference_engines import (
    MODELS,
    OUT,
    _cpu_seconds,
    _predict_requests,
    _publish,
    eager_forward_images_per_s,
)
from benchmarks.markdown import publish, table
from benchmarks.paired import paired_rounds
from benchmarks.raw_load import run_load

SMALL_MODELS = ("resnet18 width 0.25", "torchvision mobilenet_v3_small")
CLIENTS = 32


def _lure(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli.main", *args]


@contextmanager
def fresh_database(postgres_url: str):
    """A new, empty PostgreSQL database for one deployment, dropped afterwards."""
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"lure_replicas_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _wait_healthy(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API on port {port} exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the API on port {port} did not become healthy")


def _api_pids(parent: int) -> list[int]:
    """``lure api``'s process and the serving processes it spawned."""
    pids = [parent]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return pids


async def _load(port: int, key: str, parent: int, seconds: float, images: int) -> dict:
    requests = _predict_requests(port, key, images)
    await run_load("127.0.0.1", port, requests, CLIENTS, 2.0)  # each process loads the version
    pids = _api_pids(parent)
    api_before, started = sum(_cpu_seconds(pid) for pid in pids), time.monotonic()
    result = await run_load("127.0.0.1", port, requests, CLIENTS, seconds)
    elapsed = time.monotonic() - started
    answered = len(result.latencies)
    if result.errors:
        raise RuntimeError(f"{result.errors} predict requests failed: {result.first_error}")
    latencies = sorted(result.latencies)
    return {
        "requests_per_s": answered / elapsed,
        "images_per_s": answered * images / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "api_cpu_ms_per_request": 1000
        * (sum(_cpu_seconds(pid) for pid in pids) - api_before)
        / max(answered, 1),
    }


def through_processes(
    label: str, processes: int, seconds: float, rounds: int, postgres_url: str, redis_url: str
) -> dict:
    architecture, width = MODELS[label]
    with fresh_database(postgres_url) as database, tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LURE_")} | {
            "LURE_DATA_DIR": str(Path(tmp) / "data"),
            "LURE_DATABASE_URL": database,
            "LURE_BROKER_URL": redis_url,
            "LURE_SERVE_ENGINE": "auto",
        }
        created = subprocess.run(
            _lure("keys", "create", "--name", "bench", "--scope", "admin"),
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = created.stdout.strip().splitlines()[-1]
        port = 8790
        api = ["api", "--port", str(port), "--workers", str(processes)]
        children = [
            subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for command in (_lure(*api), _lure("worker"))
        ]
        try:
            _wait_healthy(port, children[0])

            async def publish() -> None:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=120,
                ) as client:
                    await _publish(client, architecture, width)

            asyncio.run(publish())
            figures = {}
            for images in (1, 8):
                # the reference in rounds alternating with the load, the servers idle during it
                # (benchmarks.paired: this machine's speed drifts by a third within minutes)
                figures[f"images_{images}"] = paired_rounds(
                    lambda: eager_forward_images_per_s(architecture, width, 32, 2.0),
                    lambda images=images: asyncio.run(
                        _load(port, key, children[0].pid, seconds, images)
                    ),
                    rounds,
                    "images_per_s",
                )
            return figures
        finally:
            for child in children:
                os.killpg(child.pid, signal.SIGTERM)
            for child in children:
                child.wait(60)


def render(result: dict) -> str:
    rows = []
    for label, data in result["models"].items():
        for processes, run in data["processes"].items():
            cells = [label, processes]
            for images in (1, 8):
                figures = run[f"images_{images}"]
                cells += [
                    f"{figures['images_per_s']:.0f}",
                    f"{figures['ratio']:.2f} ({', '.join(f'{r:.2f}' for r in figures['ratios'])})",
                    f"{figures['reference']:.0f}",
                    f"{figures['p50_ms']:.1f}",
                    f"{figures['api_cpu_ms_per_request']:.2f}",
                ]
            rows.append(cells)
    headers = ["model", "API processes"]
    for images in (1, 8):
        headers += [
            f"images/s, {images} image{'s' if images > 1 else ''} a request",
            "÷ eager b32, median (per round); goal ≥ 1.0",
            "eager b32 images/s",
            "p50 ms",
            "API CPU ms/request",
        ]
    figures = table(headers, rows)
    return (
        "# /predict from several API processes on PostgreSQL + Redis\n\n"
        f"`python -m benchmarks.replica_serving --seconds {result['seconds']:g} --rounds "
        f"{result['rounds']}` on {result['machine']}: `lure api --workers N` (N processes "
        "sharing one port, `LURE_TORCH_THREADS` unset so each of N takes 2/N threads, "
        "`LURE_SERVE_ENGINE=auto`), one `lure worker`, a fresh PostgreSQL database per row; 32 "
        "clients sending JSON requests of 1, then 8 PNG images from `benchmarks/raw_load.py` on "
        "the same cores. The reference is eager PyTorch's batch-32 forward (2 threads, the "
        "servers idle), measured in rounds alternating with the load (`benchmarks/paired.py`); "
        "figures are medians over the rounds. API CPU: all API processes together.\n\n"
        f"{figures}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of load per round")
    parser.add_argument("--processes", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--models", nargs="*", default=list(SMALL_MODELS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result = {"seconds": args.seconds, "rounds": args.rounds, "models": {}}
    result["machine"] = f"{os.cpu_count()} CPU cores, torch {torch.__version__}"
    for label in args.models:
        runs = result["models"][label] = {"processes": {}}
        for processes in args.processes:
            print(f"{label}: {processes} API process(es)", flush=True)
            runs["processes"][str(processes)] = through_processes(
                label, processes, args.seconds, args.rounds, args.postgres_url, args.redis_url
            )
    publish(OUT, "replica_serving", result, render(result))


if __name__ == "__main__":
    main()
