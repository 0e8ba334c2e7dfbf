"""Blobs in S3-compatible object storage against the data folder (issue 27), paired rounds.

    source scripts/services.sh   # starts the tests' SeaweedFS on 127.0.0.1:8333
    python -m benchmarks.object_store --rounds 5

Per round and backend (the order alternates, so the machine's noise hits both alike), through the
API in-process on SQLite: a fresh model (ResNet18 width 0.25, 32×32 RGB); ingest of 10 chunks
of 100 images (samples/s); one update of the sealed 1,000-sample mega-batch by the worker's
update function (wall s); then the API is closed and a new one started — on S3 with an empty
data folder, as a new host would — and its first ``/predict`` timed: the checkpoint's load from
the store (cold) plus one forward pass. Writes ``docs/benchmarks/object_store.{md,json}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.markdown import publish, table

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
MODEL = {
    "name": "m",
    "architecture": "resnet18",
    "width": 0.25,
    "num_classes": 10,
    "megabatch_size": 1000,
    "epochs": 1,
}
CHUNKS, CHUNK = 10, 100


def _settings(folder: Path, backend: str, prefix: str, **extra):
    from service.settings import ServerSettings

    blobs = {}
    if backend == "s3":
        blobs = {
            "blob_url": f"s3://{os.environ['BENCH_BUCKET']}/{prefix}",
            "s3_endpoint_url": os.environ["BENCH_ENDPOINT"],
        }
    return ServerSettings(
        data_dir=folder, dispatch_interval_seconds=3600, warm_live_seconds=0, **blobs, **extra
    )


def _client(settings):
    from fastapi.testclient import TestClient

    from lure_core.api_keys import create_key
    from service.app import create_app

    client = TestClient(create_app(settings)).__enter__()
    with client.app.state.resources.sessions.begin() as session:
        key, _ = create_key(session, "bench", ["admin"])
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def _ingest(client, x: np.ndarray, y: np.ndarray) -> float:
    from lure_client.client import encode_npz

    headers = {"content-type": "application/octet-stream"}
    bodies = [encode_npz(x[i : i + CHUNK], y[i : i + CHUNK]) for i in range(0, len(x), CHUNK)]
    started = time.perf_counter()
    for body in bodies:
        client.post("/v1/models/m/chunks?split=train", content=body, headers=headers)
    return len(x) / (time.perf_counter() - started)


def _update(settings) -> float:
    from sqlalchemy import select

    from lure_core.blob_backend import open_blob_store
    from lure_core.database import make_engine, make_session_factory
    from lure_core.records import JobRow
    from lure_update.job import UpdateContext, execute_job

    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    ctx = UpdateContext(settings, sessions, open_blob_store(settings))
    with sessions() as session:
        job = session.scalar(select(JobRow.id))
    started = time.perf_counter()
    assert execute_job(ctx, job).value == "published"
    return time.perf_counter() - started


def one_round(backend: str) -> dict[str, float]:
    from lure_client.client import encode_image

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (CHUNKS * CHUNK, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, len(x))
    with tempfile.TemporaryDirectory() as folder:
        prefix = f"bench-{time.time_ns()}"
        settings = _settings(Path(folder) / "host-a", backend, prefix)
        client = _client(settings)
        client.post("/v1/models", json=MODEL).raise_for_status()
        ingest = _ingest(client, x, y)
        update = _update(settings)
        client.__exit__(None, None, None)
        # a new API: on S3 a new host (empty folder, shared database); else the same folder
        host = "host-b" if backend == "s3" else "host-a"
        database = {"database_url": settings.resolved_database_url}
        fresh = _settings(Path(folder) / host, backend, prefix, **database)
        read = _checkpoint_read(fresh)
        cold = _client(fresh)
        images = {"images": [encode_image(image) for image in x[:8]]}
        started = time.perf_counter()
        cold.post("/v1/models/m/predict", json=images).raise_for_status()
        first_predict = time.perf_counter() - started
        cold.__exit__(None, None, None)
    return {"ingest": ingest, "update": update, "read": read, "first_predict": first_predict}


def _checkpoint_read(settings) -> float:
    """The live checkpoint's bytes read by a process that has never read it (empty cache)."""
    from lure_core.blob_backend import open_blob_store
    from lure_core.database import make_engine, make_session_factory
    from lure_core.records import VersionRow

    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions() as session:
        version = session.query(VersionRow).one()
        key, sha = version.checkpoint_key, version.checkpoint_sha256
    blobs = open_blob_store(settings)
    started = time.perf_counter()
    blobs.read(key, sha)
    seconds = time.perf_counter() - started
    cache = getattr(blobs, "cache", None)
    if cache is not None:  # the API started next must fetch it again: a cold load
        (cache.folder / sha).unlink(missing_ok=True)
    return seconds


def _report(results: dict[str, list[dict]]) -> str:
    def stats(backend: str, name: str, scale: float = 1.0) -> str:
        values = [r[name] * scale for r in results[backend]]
        return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"

    def ratio(name: str) -> str:
        s3 = statistics.median(r[name] for r in results["s3"])
        folder = statistics.median(r[name] for r in results["folder"])
        return f"{s3 / folder:.2f}"

    rows = [
        ["ingest, samples/s (higher is better)", stats("folder", "ingest"), stats("s3", "ingest"),
         ratio("ingest")],
        ["one update, wall s", stats("folder", "update"), stats("s3", "update"), ratio("update")],
        ["checkpoint read by a new process, ms", stats("folder", "read", 1000),
         stats("s3", "read", 1000), ratio("read")],
        ["first /predict of a new API, ms (checkpoint load + forward)",
         stats("folder", "first_predict", 1000), stats("s3", "first_predict", 1000),
         ratio("first_predict")],
    ]  # fmt: skip
    header = ["measure (min / median / max)", "data folder", "S3 (SeaweedFS)", "S3 / folder"]
    return (
        f"# Object storage against the data folder\n\n{len(results['s3'])} paired rounds, "
        "`python -m benchmarks.object_store`; SeaweedFS `weed mini` on the same machine.\n\n"
        + table(header, rows)
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--endpoint", default=os.environ.get("LURE_TEST_S3_ENDPOINT"))
    parser.add_argument("--bucket", default="lure-test")
    args = parser.parse_args()
    os.environ["BENCH_ENDPOINT"], os.environ["BENCH_BUCKET"] = args.endpoint, args.bucket
    os.environ.setdefault("AWS_ACCESS_KEY_ID", os.environ.get("LURE_TEST_S3_ACCESS_KEY", ""))
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", os.environ.get("LURE_TEST_S3_SECRET_KEY", ""))
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    results: dict[str, list[dict]] = {"folder": [], "s3": []}
    for number in range(args.rounds):
        order = ["folder", "s3"] if number % 2 == 0 else ["s3", "folder"]
        for backend in order:
            results[backend].append(one_round(backend))
            print(backend, results[backend][-1], flush=True)
    publish(DOCS, "object_store", results, _report(results))


if __name__ == "__main__":
    main()
