"""Issue 25: is there a warm-start penalty at CPU scale, and which update rule removes it?

    python -m benchmarks.warm_start_penalty run --dataset npz:../shared/data/cifar10_small.npz \
        --tables t25_penalty
    python -m benchmarks.warm_start_penalty report

Every update trains to convergence: until an epoch's running training accuracy reaches 99 %
(Ash & Adams 2020; DASH, Shin et al. 2024), with the epoch cap as a safety net. What was scaled
down to fit two CPU cores (about 3 hours a table): a class-balanced 5,000 of the subset's 10,000
training images (2,500 for the stream and the label-noise tables), ResNet-18 at width 0.25, SGD at
a constant learning rate of 0.01 with batch 128 and no weight decay (the papers' choices: constant
rate, no decay). Jobs run through
``benchmarks.quality_tables`` (one single-threaded process per job, results written atomically and
committed under ``docs/benchmarks/quality_runs``, a rerun resumes).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from benchmarks.quality_tables import RUNS, Job, Scale, Variant, _single_threaded, run_job

# the regime of Ash & Adams at CPU scale (module docstring says what was scaled)
CONVERGE = {
    "train_samples": 5000,
    "width": 0.25,
    "batch_size": 128,
    "lr": 0.01,
    "lr_decay": 1.0,
    "weight_decay": 0.0,
    "until_train_accuracy": 0.99,
    "epochs": 100,  # the cap; no run reached it in table 1
}
# tables 3 and 4 on half the images: a noisy update takes several times the epochs of a clean one,
# and a stream trains each rule five times, so at 5,000 images either table alone would need
# 8 to 25 core-hours
SMALLER = {"train_samples": 2500}
RULES = ("warm", "cold", "lure", "shrink_perturb", "dash", "l2_init", "llf")
STREAM_RULES = ("warm", "cold", "lure", "shrink_perturb", "dash", "l2_init")


def variants() -> list[Variant]:
    """Issue 25 §3's tables, in the order they run."""
    two_chunks = {**CONVERGE, "megabatches": 2, "epoch_curve": True}
    return [
        # 1: 50 % then 100 % of the training set, no augmentation (Ash & Adams)
        Variant("t25_penalty", "no augmentation", RULES, {**two_chunks, "augment": "none"}),
        # 3: a stream of 5 mega-batches with full replay, each update to convergence
        Variant(
            "t25_stream",
            "5 mega-batches",
            STREAM_RULES,
            {**CONVERGE, **SMALLER, "megabatches": 5, "augment": "none"},
        ),
        # 4: 40 % symmetric label noise in the regime of 1 (where resets helped before)
        Variant(
            "t25_label_noise",
            "40% noise",
            ("warm", "cold", "lure", "dash", "l2_init"),
            {**two_chunks, **SMALLER, "augment": "none", "label_noise": 0.4, "epochs": 100},
        ),
        # 2: the same with flip + crop: does augmentation shrink the penalty (Zaidi et al.)?
        Variant(
            "t25_penalty",
            "flip + crop",
            ("warm", "cold", "dash", "l2_init"),
            {**two_chunks, "augment": "flip+crop", "epochs": 60},
        ),
    ]


def jobs(
    tables: set[str] | None,
    seeds: tuple[int, ...],
    strategies: set[str] | None = None,
    labels: set[str] | None = None,
) -> list[Job]:
    """Every (variant, seed, strategy) asked for; `strategies` and `labels` narrow a table."""
    return [
        Job(variant, strategy, seed)
        for variant in variants()
        if (tables is None or variant.table in tables)
        and (labels is None or variant.label in labels)
        for seed in seeds
        for strategy in variant.strategies
        if strategies is None or strategy in strategies
    ]


def run(dataset: str, runs_dir: Path, workers: int, pending: list[Job]) -> None:
    """The jobs not yet finished, in a pool of single-threaded processes."""
    todo = [job for job in pending if not job.path(runs_dir).exists()]
    print(f"{len(todo)} jobs to run with {workers} single-threaded workers", flush=True)
    started, scale = time.perf_counter(), Scale()
    with ProcessPoolExecutor(max_workers=workers, initializer=_single_threaded) as pool:
        futures = [pool.submit(run_job, job, dataset, scale, runs_dir) for job in todo]
        for done, future in enumerate(as_completed(futures), start=1):
            job, seconds, accuracy = future.result()
            print(
                f"[{done}/{len(todo)}] {job.variant.table} {job.variant.label} {job.strategy} "
                f"seed {job.seed}: test acc {accuracy:.4f} in {seconds:.0f} s "
                f"(elapsed {(time.perf_counter() - started) / 60:.1f} min)",
                flush=True,
            )


def add_run_parser(sub) -> argparse.ArgumentParser:
    """The ``run`` command's arguments every job-table benchmark shares."""
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--dataset", required=True, help="npz:PATH of the CIFAR-10 subset")
    run_parser.add_argument("--workers", type=int, default=2)
    run_parser.add_argument("--tables", default=None, help="comma-separated (default: all)")
    run_parser.add_argument("--seeds", default="0,1,2")
    run_parser.add_argument(
        "--strategies", default=None, help="comma-separated rules (default: each table's own)"
    )
    run_parser.add_argument("--runs-dir", type=Path, default=RUNS)
    return run_parser


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = add_run_parser(sub)
    run_parser.add_argument(
        "--labels", default=None, help="comma-separated variant labels, e.g. 'no augmentation'"
    )
    args = parser.parse_args()
    if args.command == "run":
        tables = set(args.tables.split(",")) if args.tables else None
        seeds = tuple(int(s) for s in args.seeds.split(","))
        strategies = set(args.strategies.split(",")) if args.strategies else None
        labels = set(args.labels.split(",")) if args.labels else None
        run(args.dataset, args.runs_dir, args.workers, jobs(tables, seeds, strategies, labels))


if __name__ == "__main__":
    main()
