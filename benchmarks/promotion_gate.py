"""Promotion gate and challengers on real CIFAR-10, through the server's own update path.

    python -m benchmarks.promotion_gate run --dataset npz:../shared/data/cifar10_small.npz \
        --workers 1
    python -m benchmarks.promotion_gate report

Each job is one (scenario, seed): an API (FastAPI in-process, a fresh SQLite folder) gets the
test set and Table 1's stream (8 mega-batches of 1,250, ResNet18 width 0.125, 4 epochs, full
replay) as ``.npz`` chunks, and every sealed mega-batch is updated by ``lure_update.job`` (the
function a Celery worker runs), single-threaded. Scenarios:

- ``lure``, ``warm``: one strategy each, default gate;
- ``auto``: lure and warm as candidates, each its own lineage (the default), the live pointer
  moving when the other lineage is significantly ahead on the newest evidence; a lineage
  significantly behind on the stream's evidence retired;
- ``poison-gate`` / ``poison-nogate``: LURE, mega-batch 5's labels shuffled, with the default gate
  and with the gate off (``min_accuracy_delta: null``);
- ``poison-noreplay-gate`` / ``-nogate``: the same without replay, where the poisoned mega-batch
  is all its update trains on;
- ``flip30-gate``: mega-batch 5 with 30 % of its labels flipped to another class;
- ``skew3-gate``: mega-batch 5 clean but of three classes only (0-2, from later in the stream).

Reported per scenario (mean ± std over seeds): the live version's final test accuracy, the CER of
the live lineage, versions held, and compute (seconds of every candidate trained). Results go to
``--runs-dir`` atomically (an interrupted run resumes) and the report to
``docs/benchmarks/promotion_gate.md`` and ``docs/BENCHMARKS.md``. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from benchmarks.markdown import mean_std, row

DOCS = Path(__file__).resolve().parents[1] / "docs"
MEGABATCHES, MEGABATCH_SIZE, POISONED = 8, 1250, 5
MODEL = {
    "architecture": "resnet18",
    "width": 0.125,
    "num_classes": 10,
    "image_size": 32,
    "channels": 3,
    "replay": "full",
    "megabatch_size": MEGABATCH_SIZE,
    "epochs": 4,
}
SCENARIOS = {
    "lure": {"strategy": "lure"},
    "warm": {"strategy": "warm"},
    "auto": {"strategy": "auto"},
    "poison-gate": {"strategy": "lure"},
    "poison-nogate": {"strategy": "lure", "promotion": {"min_accuracy_delta": None}},
    # mega-batch 5 with 30 % of its labels flipped to another class; then clean but with three
    # classes only (what a skewed collection round sends)
    "flip30-gate": {"strategy": "lure"},
    "skew3-gate": {"strategy": "lure"},
    # without replay the poisoned mega-batch is all its update trains on
    "poison-noreplay-gate": {"strategy": "lure", "replay": "none"},
    "poison-noreplay-nogate": {
        "strategy": "lure",
        "replay": "none",
        "promotion": {"min_accuracy_delta": None},
    },
}
SEEDS = (0, 1, 2)


def _run(dataset: str, scenario: str, seed: int, scale: dict) -> dict:
    """One scenario and seed through the API and the worker's update function."""
    import torch
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from lure_client.client import encode_npz
    from lure_core.api_keys import create_key
    from lure_core.blob_backend import open_blob_store
    from lure_core.database import make_engine, make_session_factory
    from lure_core.records import JobRow
    from lure_engine.data import load_dataset
    from lure_update.job import UpdateContext, execute_job
    from service.app import create_app
    from service.settings import ServerSettings

    torch.set_num_threads(1)
    data = load_dataset(dataset)
    with tempfile.TemporaryDirectory() as folder:
        settings = ServerSettings(
            data_dir=Path(folder), dispatch_interval_seconds=3600, max_body_bytes=1 << 30
        )
        with TestClient(create_app(settings)) as client:
            with client.app.state.resources.sessions.begin() as session:
                key, _ = create_key(session, "bench", ["admin"])
            client.headers["Authorization"] = f"Bearer {key}"
            recipe = {k: v for k, v in scale.items() if k != "megabatches"}
            config = {**MODEL, **recipe, **SCENARIOS[scenario], "name": "cifar", "seed": seed}
            size = config["megabatch_size"]
            client.post("/v1/models", json=config).raise_for_status()
            npz = {"content-type": "application/octet-stream"}
            client.post(
                "/v1/models/cifar/chunks?split=test",
                content=encode_npz(data.test.x, data.test.y),
                headers=npz,
            ).raise_for_status()
            sessions = make_session_factory(make_engine(settings.resolved_database_url))
            ctx = UpdateContext(settings, sessions, open_blob_store(settings))
            live_curve = []
            stream = min(scale.get("megabatches", MEGABATCHES), len(data.train.y) // size)
            for index in range(stream):
                images, labels = _megabatch(data.train, scenario, seed, index, size)
                client.post(
                    "/v1/models/cifar/chunks?split=train",
                    content=encode_npz(images, labels),
                    headers=npz,
                ).raise_for_status()
                with sessions() as session:
                    queued = session.scalars(
                        select(JobRow.id).where(JobRow.state == "queued").order_by(JobRow.id)
                    ).all()
                for job_id in queued:
                    outcome = execute_job(ctx, job_id)
                    assert outcome.value in ("published", "quarantined"), outcome
                model = client.get("/v1/models/cifar").json()
                live = client.get(f"/v1/models/cifar/versions/{model['live_version']}").json()
                live_curve.append(
                    {"megabatch": index + 1, "live": live["number"], **_summary(live)}
                )
            versions = client.get("/v1/models/cifar/versions").json()
            strategies = client.get("/v1/models/cifar/strategies").json()
            megabatches = client.get("/v1/models/cifar/megabatches").json()
    return {
        "scenario": scenario,
        "seed": seed,
        "live_curve": live_curve,
        "final": live_curve[-1],
        "held": sum(v["release"] == "held" for v in versions),
        "quarantined": [m["index"] for m in megabatches if m["state"] == "quarantined"],
        "data_gate": [
            {"megabatch": m["index"], **(m["data_gate"] or {"verdict": "not judged"})}
            for m in megabatches
        ],
        "compute_seconds": sum(v["candidate_seconds"] or 0 for v in versions),
        "candidates_trained": len(versions),
        "wins": strategies["wins"],
        "retired": strategies["retired"],
        "lineages": strategies.get("lineages"),
        "versions": [
            {
                "number": v["number"],
                "megabatch": v["megabatch"],
                "strategy": v["strategy"],
                "parent": v["parent"],
                "release": v["release"],
                "verdict": v["gate"]["verdict"],
                "reasons": v["gate"]["reasons"],
                "gate_accuracy": v["gate"]["numbers"]["candidate"]["accuracy"],
                "gate_numbers": v["gate"]["numbers"],
                "lineage": v["gate"].get("lineage"),
                **_summary(v),
            }
            for v in versions
        ],
    }


def _megabatch(train, scenario: str, seed: int, index: int, size: int):
    """Mega-batch ``index``'s images and labels, altered at mega-batch 5 as the scenario says."""
    rows = slice(index * size, (index + 1) * size)
    images, labels = train.x[rows], train.y[rows].copy()
    if index + 1 != POISONED:
        return images, labels
    rng = np.random.default_rng(seed)
    if scenario.startswith("poison"):
        return images, rng.permutation(labels)
    if scenario.startswith("flip30"):
        flipped = rng.choice(len(labels), size=int(0.3 * len(labels)), replace=False)
        labels[flipped] = (labels[flipped] + rng.integers(1, 10, len(flipped))) % 10
        return images, labels
    if scenario.startswith("skew3"):  # clean rows of classes 0-2 from the rest of the stream
        later = np.arange(index * size, len(train.y))
        chosen = later[np.isin(train.y[later], (0, 1, 2))][:size]
        return train.x[chosen], train.y[chosen]
    return images, labels


def _summary(version: dict) -> dict:
    m = version["metrics"]
    return {"test_accuracy": m["test_accuracy"], "cer": m["cer"]}


def _path(runs_dir: Path, scenario: str, seed: int) -> Path:
    return runs_dir / f"{scenario}-seed{seed}.json"


def _job(
    dataset: str, scenario: str, seed: int, runs_dir: Path, scale: dict
) -> tuple[str, int, float]:
    started = time.perf_counter()
    result = _run(dataset, scenario, seed, scale)
    result["wall_seconds"] = time.perf_counter() - started
    path = _path(runs_dir, scenario, seed)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, indent=1))
    os.replace(temporary, path)
    return scenario, seed, result["final"]["test_accuracy"]


def run(
    dataset: str,
    runs_dir: Path,
    workers: int,
    scenarios: list[str],
    scale: dict,
    seeds: tuple[int, ...] = SEEDS,
) -> None:
    runs_dir.mkdir(parents=True, exist_ok=True)
    pending = [
        (s, seed) for seed in seeds for s in scenarios if not _path(runs_dir, s, seed).exists()
    ]
    print(f"{len(pending)} jobs to run with {workers} single-threaded workers", flush=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_job, dataset, s, seed, runs_dir, scale) for s, seed in pending]
        for done, future in enumerate(as_completed(futures), start=1):
            scenario, seed, accuracy = future.result()
            print(
                f"[{done}/{len(pending)}] {scenario} seed {seed}: live test acc {accuracy:.4f} "
                f"(elapsed {(time.perf_counter() - started) / 60:.1f} min)",
                flush=True,
            )


def report(runs_dir: Path) -> str:
    results: dict[str, list[dict]] = {}
    for path in sorted(runs_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        results.setdefault(doc["scenario"], []).append(doc)
    lines = [
        "| scenario | seeds | live test acc (%) | CER (live lineage) | held | candidates "
        "trained | compute (s) | wins |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        docs = results.get(scenario, [])
        if not docs:
            continue
        wins: dict[str, int] = {}
        for doc in docs:
            for strategy, count in doc["wins"].items():
                wins[strategy] = wins.get(strategy, 0) + count
        lines.append(
            row(
                scenario,
                len(docs),
                mean_std([d["final"]["test_accuracy"] for d in docs], 100),
                mean_std([d["final"]["cer"] for d in docs], digits=0),
                mean_std([d["held"] for d in docs], digits=1),
                mean_std([d["candidates_trained"] for d in docs], digits=1),
                mean_std([d["compute_seconds"] for d in docs], digits=0),
                ", ".join(f"{s} {n}" for s, n in wins.items()),
            )
        )
    curves = []
    altered = ("poison", "flip30", "skew3")
    for scenario in [s for s in SCENARIOS if s.startswith(altered)]:
        for doc in results.get(scenario, []):
            points = " ".join(
                f"{p['test_accuracy'] * 100:.1f}" + ("*" if p["megabatch"] >= POISONED else "")
                for p in doc["live_curve"]
            )
            curves.append(f"| {scenario} | {doc['seed']} | {points} |")
    body = "\n".join(lines)
    if curves:
        body += (
            "\n\nLive model's test accuracy (%) after each mega-batch, altered scenarios "
            f"(mega-batch {POISONED}'s labels shuffled, 30 % flipped, or three classes only; "
            "* from it on):\n\n"
            "| scenario | seed | after mega-batch 1 … 8 |\n|---|---|---|\n" + "\n".join(curves)
        )
    return body


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--dataset", required=True, help="npz:PATH | cifar10:DIR | digits")
    run_parser.add_argument("--workers", type=int, default=1)
    run_parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    run_parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    run_parser.add_argument("--runs-dir", type=Path, default=Path("runs/promotion_gate"))
    run_parser.add_argument("--megabatch-size", type=int, default=MEGABATCH_SIZE)
    run_parser.add_argument("--epochs", type=int, default=MODEL["epochs"])
    run_parser.add_argument("--width", type=float, default=MODEL["width"])
    run_parser.add_argument(
        "--megabatches",
        type=int,
        default=MEGABATCHES,
        help="stop after this many (5: just past the altered one, for the data gate's verdict)",
    )
    report_parser = sub.add_parser("report")
    report_parser.add_argument("--runs-dir", type=Path, default=Path("runs/promotion_gate"))
    args = parser.parse_args()
    if args.command == "run":
        scale = {"megabatch_size": args.megabatch_size, "epochs": args.epochs, "width": args.width}
        if args.megabatches != MEGABATCHES:
            scale["megabatches"] = args.megabatches
        seeds = tuple(int(seed) for seed in args.seeds.split(","))
        run(args.dataset, args.runs_dir, args.workers, args.scenarios.split(","), scale, seeds)
    else:
        body = report(args.runs_dir)
        (DOCS / "benchmarks").mkdir(exist_ok=True)
        (DOCS / "benchmarks" / "promotion_gate.md").write_text(body + "\n")
        print(body)


if __name__ == "__main__":
    main()
