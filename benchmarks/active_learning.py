"""Issue 28: does labelling what the label queue ranks most uncertain beat labelling at random?

    python -m benchmarks.active_learning --dataset npz:../shared/data/cifar10_small.npz

The whole loop through the server's HTTP API (the app in-process, SQLite, the real update function
called in-process instead of through Celery): a ResNet-18 (width 0.125, LURE, full replay, 10
epochs an update, batch 32, lr 0.05) starts from K = 250 labelled images; each round serves the
unlabelled pool (4,000 other training images) through ``/predict`` with the prediction log on,
labels K of those answers through ``/feedback`` (which seals a mega-batch of K and queues its
update), and runs the update. Two arms on the same pool and start: ``queue`` labels the first K of
``/label-queue?by=margin&version=<live>``; ``random`` labels K answers of the same round drawn at
random. Reported: the live version's accuracy on 1,000 test images after each round, 3 seeds.
Writes ``docs/benchmarks/active_learning.md`` (and ``.json``). Single-threaded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.markdown import row

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
K, POOL, ROUNDS, TEST = 250, 4000, 6, 1000
ARMS = ("queue", "random")


def _model(seed: int) -> dict:
    return {
        "name": "cifar",
        "architecture": "resnet18",
        "width": 0.125,
        "num_classes": 10,
        "image_size": 32,
        "channels": 3,
        "megabatch_size": K,
        "epochs": 10,
        "batch_size": 32,
        "lr": 0.05,
        "seed": seed,
        "log_predictions": {"sample_rate": 1.0, "max_rows": 1_000_000, "drift": None},
    }


class Loop:
    """One arm of one seed: a fresh server in its own folder."""

    def __init__(self, folder: Path) -> None:
        from fastapi.testclient import TestClient

        from lure_core.api_keys import create_key
        from lure_core.blob_backend import open_blob_store
        from lure_core.database import make_engine, make_session_factory
        from lure_update.job import UpdateContext
        from service.app import create_app
        from service.settings import ServerSettings

        settings = ServerSettings(
            data_dir=folder, dispatch_interval_seconds=3600, max_samples_per_chunk=5000
        )
        self.client = TestClient(create_app(settings)).__enter__()
        with self.client.app.state.resources.sessions.begin() as session:
            key, _ = create_key(session, "bench", ["admin"])
        self.client.headers["Authorization"] = f"Bearer {key}"
        sessions = make_session_factory(make_engine(settings.resolved_database_url))
        self.worker = UpdateContext(settings, sessions, open_blob_store(settings))

    def post(self, path: str, **kwargs) -> dict:
        answer = self.client.post(path, **kwargs)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def run_jobs(self) -> None:
        from sqlalchemy import select

        from lure_core.records import JobRow
        from lure_update.job import execute_job

        with self.worker.sessions() as session:
            ids = session.scalars(select(JobRow.id).where(JobRow.state == "queued")).all()
        for job_id in ids:
            execute_job(self.worker, job_id)

    def live_accuracy(self) -> float:
        model = self.client.get("/v1/models/cifar").json()
        version = self.client.get(f"/v1/models/cifar/versions/{model['live_version']}").json()
        return version["metrics"]["test_accuracy"]

    def serve(self, images: np.ndarray) -> list[str]:
        """Every image through /predict; its prediction ids, in order."""
        from lure_client.client import encode_image

        ids: list[str] = []
        for start in range(0, len(images), 64):
            batch = [encode_image(i) for i in images[start : start + 64]]
            answer = self.post("/v1/models/cifar/predict", json={"images": batch})
            ids += [p["prediction_id"] for p in answer["predictions"]]
        assert self.client.app.state.resources.prediction_log.flush(120)
        return ids


def run_arm(data, arm: str, seed: int, rounds: int) -> dict:
    """Live test accuracy after the start and after each round, and how many of the labelled
    mega-batches the data gate stopped (``not_trained``)."""
    from lure_client.client import encode_npz

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.train.y))
    start, pool = order[:K], order[K : K + POOL]
    npz = {"content": None, "headers": {"content-type": "application/octet-stream"}}
    with tempfile.TemporaryDirectory() as folder:
        loop = Loop(Path(folder))
        loop.post("/v1/models", json=_model(seed))
        test = encode_npz(data.test.x[:TEST], data.test.y[:TEST], compressed=False)
        loop.post("/v1/models/cifar/chunks?split=test", **{**npz, "content": test})
        first = encode_npz(data.train.x[start], data.train.y[start], compressed=False)
        loop.post("/v1/models/cifar/chunks?split=train", **{**npz, "content": first})
        loop.run_jobs()
        curve, unlabelled, gated = [loop.live_accuracy()], list(pool), 0
        for _ in range(rounds):
            ids = loop.serve(data.train.x[unlabelled])
            index_of = dict(zip(ids, unlabelled, strict=True))
            chosen = _choose(loop, arm, ids, rng)
            items = [{"prediction_id": i, "label": int(data.train.y[index_of[i]])} for i in chosen]
            assert loop.post("/v1/models/cifar/feedback", json=items)["accepted"] == K
            loop.run_jobs()
            curve.append(loop.live_accuracy())
            last = loop.client.get("/v1/models/cifar/megabatches").json()[-1]
            gated += last["state"] == "quarantined"
            taken = {index_of[i] for i in chosen}
            unlabelled = [i for i in unlabelled if i not in taken]
        loop.client.__exit__(None, None, None)
    return {"curve": curve, "not_trained": gated}


def _choose(loop: Loop, arm: str, ids: list[str], rng: np.random.Generator) -> list[str]:
    if arm == "random":
        return [ids[i] for i in rng.choice(len(ids), K, replace=False)]
    live = loop.client.get("/v1/models/cifar").json()["live_version"]
    queue = loop.client.get(
        f"/v1/models/cifar/label-queue?by=margin&limit={K}&version={live}"
    ).json()
    return [item["prediction_id"] for item in queue]


def report(results: dict, rounds: int) -> str:
    seeds = sorted({int(k.split("-")[1]) for k in results})
    lines = [
        "# Active learning through the label queue (issue 28)",
        "",
        "`python -m benchmarks.active_learning --dataset npz:../shared/data/cifar10_small.npz`: "
        f"ResNet-18 width 0.125, LURE, full replay, 10 epochs an update (batch 32, lr 0.05); {K} "
        "labelled images to "
        f"start, then {rounds} rounds of {K} labels from a pool of {POOL} served images; test "
        f"accuracy (%) of the live version on {TEST} test images, mean ± std over seeds "
        f"{', '.join(map(str, seeds))}.",
        "",
        "| labelled | queue (margin) | random | queue − random (points) |",
        "|---|---|---|---|",
    ]
    for step in range(rounds + 1):
        q = [100 * results[f"queue-{s}"]["curve"][step] for s in seeds]
        r = [100 * results[f"random-{s}"]["curve"][step] for s in seeds]
        diffs = [a - b for a, b in zip(q, r, strict=True)]
        lines.append(row(K * (step + 1), _ms(q), _ms(r), _ms(diffs, signed=True)))
    stopped = {arm: sum(results[f"{arm}-{s}"]["not_trained"] for s in seeds) for arm in ARMS}
    lines += ["", f"Labelled mega-batches the data gate did not let train: {stopped}."]
    return "\n".join(lines) + "\n"


def _ms(values: list[float], signed: bool = False) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    mean = statistics.mean(values)
    return f"{mean:+.2f} ± {spread:.2f}" if signed else f"{mean:.2f} ± {spread:.2f}"


def main() -> None:
    import torch

    from lure_engine.data import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="fewer for a smoke run")
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(args.dataset)
    saved = args.out / "active_learning.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}  # resumable
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm in ARMS:
            if f"{arm}-{seed}" not in results:
                results[f"{arm}-{seed}"] = run_arm(data, arm, seed, args.rounds)
                saved.write_text(json.dumps(results, indent=1))
                print(arm, seed, results[f"{arm}-{seed}"], flush=True)
    text = report(results, args.rounds)
    (args.out / "active_learning.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
