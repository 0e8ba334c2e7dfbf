"""The first /predict after a publish, with and without the live warmer
(service/serving/live_warmer.py).

    python -m benchmarks.first_predict --repeats 5

Per repeat and setting: a fresh API (in-process, SQLite) and model (ResNet18 width 0.125 on
32×32 RGB), one mega-batch published by the worker's update function, 3 s of idle time (what a
client's next request usually leaves), then one timed /predict of 8 images. Prints and writes
``docs/benchmarks/first_predict.md``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
MODEL = {
    "name": "m",
    "architecture": "resnet18",
    "width": 0.125,
    "num_classes": 10,
    "megabatch_size": 200,
    "epochs": 1,
}


def first_predict_seconds(warm_live_seconds: float) -> float:
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from lure_client.client import encode_image, encode_npz
    from lure_core.api_keys import create_key
    from lure_core.blob_backend import open_blob_store
    from lure_core.database import make_engine, make_session_factory
    from lure_core.records import JobRow
    from lure_update.job import UpdateContext, execute_job
    from service.app import create_app
    from service.settings import ServerSettings

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 200)
    with tempfile.TemporaryDirectory() as folder:
        settings = ServerSettings(
            data_dir=Path(folder),
            dispatch_interval_seconds=3600,
            warm_live_seconds=warm_live_seconds,
        )
        with TestClient(create_app(settings)) as client:
            with client.app.state.resources.sessions.begin() as session:
                key, _ = create_key(session, "bench", ["admin"])
            client.headers["Authorization"] = f"Bearer {key}"
            client.post("/v1/models", json=MODEL).raise_for_status()
            headers = {"content-type": "application/octet-stream"}
            client.post(
                "/v1/models/m/chunks?split=train", content=encode_npz(x, y), headers=headers
            ).raise_for_status()
            sessions = make_session_factory(make_engine(settings.resolved_database_url))
            ctx = UpdateContext(settings, sessions, open_blob_store(settings))
            with sessions() as session:
                job = session.scalar(select(JobRow.id))
            outcome = execute_job(ctx, job).value
            assert outcome == "published", (outcome, client.get("/v1/models/m/jobs").json())
            time.sleep(3)
            images = {"images": [encode_image(image) for image in x[:8]]}
            started = time.perf_counter()
            client.post("/v1/models/m/predict", json=images).raise_for_status()
            return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"warmer on (1 s)": [], "warmer off": []}
    for _ in range(args.repeats):  # interleaved: the machine's noise hits both alike
        results["warmer on (1 s)"].append(first_predict_seconds(1.0))
        results["warmer off"].append(first_predict_seconds(0.0))
    lines = ["| setting | first /predict after a publish, ms (min / median / max) |", "|---|---|"]
    for name, values in results.items():
        ms = [1000 * v for v in values]
        lines.append(f"| {name} | {min(ms):.0f} / {statistics.median(ms):.0f} / {max(ms):.0f} |")
    body = "\n".join(lines)
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "first_predict.md").write_text(body + "\n")
    print(body)


if __name__ == "__main__":
    main()
