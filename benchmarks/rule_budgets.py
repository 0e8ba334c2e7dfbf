"""Issue 43 §1: every update rule where users start, at the server's training defaults.

    python -m benchmarks.rule_budgets run --dataset npz:../shared/data/cifar10_small.npz
    python -m benchmarks.rule_budgets run ... --tables t43_short --strategies fire --seeds 0
    python -m benchmarks.rule_budgets report

The stream: the shared CIFAR-10 subset in 8 mega-batches of 1,250, ResNet-18 at width 0.125, the
server's update exactly (``lure bench alma``'s engine: flip + crop, SGD 0.1 with momentum 0.9 and
weight decay 1e-4, ×0.1 at 40 % and 80 % of the epochs, batch 64, BatchNorm recalibrated after
training). Budgets: short (6 epochs an update) and long (30; the server's default of 50 would
need 14 core-hours per rule and seed... see BENCHMARKS), full replay, and the short budget with a
bounded, class-balanced buffer of one mega-batch (1,250 images).

Every job also records each model's predicted class on every training-pool and test row after
each mega-batch (``row_predictions``), so ``auto``'s race and the data gate can be replayed on
these runs with the server's own decision code (``benchmarks.rule_race``). Jobs run through
``benchmarks.quality_tables`` (one single-threaded process per job, results written atomically
and committed under ``docs/benchmarks/quality_runs``, a rerun resumes).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.markdown import mean_std
from benchmarks.plotting import pyplot, save
from benchmarks.quality_tables import RUNS, Job, Variant
from benchmarks.warm_start_penalty import add_run_parser, run

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"

RULES = ("warm", "lure", "dash", "shrink_perturb", "cold", "fire")
SHORT_EPOCHS, LONG_EPOCHS = 6, 30
BUFFER = "buffer:1250:class_balanced"
WEAK = {"epochs": 1, "lr": 0.01}  # a live model a few points above chance (issue 43 §3)
# the server's defaults are the engine's (lure_engine/configs.py); only the budget and the
# augmentation (flip + crop, as the server trains CIFAR-sized colour images) are named here
SERVER = {"augment": "flip+crop", "epoch_curve": True, "row_predictions": True}


def variants() -> list[Variant]:
    """The cells of §1's table, in the order they run: the cheap weak-model runs for §3, every
    rule at the short budget, then at the long one (the two budgets ``auto`` is judged at), then
    the short budget with a buffer."""
    return [
        # §3: a weak live model (about 20 % on the test set) for the data gate's replay
        Variant("t43_gate_weak", "1 epoch, lr 0.01", ("warm",), {**SERVER, **WEAK}),
        Variant("t43_short", f"{SHORT_EPOCHS} epochs", RULES, {**SERVER, "epochs": SHORT_EPOCHS}),
        Variant("t43_long", f"{LONG_EPOCHS} epochs", RULES, {**SERVER, "epochs": LONG_EPOCHS}),
        Variant(
            "t43_short_buffer",
            f"{SHORT_EPOCHS} epochs, buffer 1250",
            RULES,
            {**SERVER, "epochs": SHORT_EPOCHS, "replay": BUFFER},
        ),
    ]


def jobs(tables: set[str] | None, seeds: tuple[int, ...], strategies: set[str] | None) -> list[Job]:
    """Every (variant, seed, rule) asked for, variant-major then seed-major."""
    return [
        Job(variant, strategy, seed)
        for variant in variants()
        if tables is None or variant.table in tables
        for seed in seeds
        for strategy in variant.strategies
        if strategies is None or strategy in strategies
    ]


def load_cell(runs_dir: Path, table: str) -> dict[str, dict[int, dict]]:
    """rule → seed → its run (the job's single run), for every finished job of ``table``."""
    cell: dict[str, dict[int, dict]] = defaultdict(dict)
    for path in sorted((runs_dir / table).glob("*/*.json")):
        doc = json.loads(path.read_text())
        for one in doc["runs"]:
            cell[one["strategy"]][one["seed"]] = one
    return dict(cell)


def _stream_totals(megabatches: list[dict]) -> dict[str, float]:
    last = megabatches[-1]
    return {
        "accuracy": 100 * last["test_accuracy"],
        "cer": last["cer"],
        "ece": 100 * last["ece"],
        "steps": sum(m["optimizer_steps"] or 0 for m in megabatches),
        "seconds": sum(m["train_seconds"] for m in megabatches),
    }


def cell_rows(cell: dict[str, dict[int, dict]]) -> list[dict]:
    """One row per rule: per-seed and mean final values, paired against warm on shared seeds."""
    warm = {s: _stream_totals(r["megabatches"]) for s, r in cell.get("warm", {}).items()}
    rows = []
    for rule in RULES:
        runs = cell.get(rule, {})
        if not runs:
            continue
        totals = {s: _stream_totals(r["megabatches"]) for s, r in sorted(runs.items())}
        versus = [t["accuracy"] - warm[s]["accuracy"] for s, t in totals.items() if s in warm]
        rows.append(
            {
                "rule": rule,
                "seeds": sorted(totals),
                "per_seed": {s: t["accuracy"] for s, t in totals.items()},
                **{k: [t[k] for t in totals.values()] for k in next(iter(totals.values()))},
                "minus_warm": versus,
                "curve": np.mean(
                    [[100 * m["test_accuracy"] for m in r["megabatches"]] for r in runs.values()],
                    axis=0,
                ).tolist(),
            }
        )
    return rows


def markdown(rows: list[dict]) -> list[str]:
    lines = [
        "| rule | seeds | test acc. (%) | per seed | − warm (points, per seed) | CER | ECE (%) "
        "| optimiser steps | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    best = max(rows, key=lambda r: np.mean(r["accuracy"]))["rule"] if rows else None
    for r in rows:
        name = f"**{r['rule']}**" if r["rule"] == best else r["rule"]
        per_seed = " / ".join(f"{v:.2f}" for v in r["per_seed"].values())
        versus = " / ".join(f"{v:+.2f}" for v in r["minus_warm"]) if r["rule"] != "warm" else "ref."
        lines.append(
            f"| {name} | {len(r['seeds'])} | {mean_std(r['accuracy'])} | {per_seed} | {versus} | "
            f"{mean_std(r['cer'], digits=0)} | {mean_std(r['ece'])} | "
            f"{np.mean(r['steps']):,.0f} | {np.mean(r['seconds']):,.0f} |"
        )
    return lines


def report(runs_dir: Path, out: Path) -> None:
    """``docs/benchmarks/rule_budgets.md`` (+ ``.json`` and one curve plot per cell)."""
    lines, data = ["# Every rule where users start (issue 43 §1)", ""], {}
    plt = pyplot()
    for variant in variants():
        cell = load_cell(runs_dir, variant.table)
        if not cell or variant.table == "t43_gate_weak":
            continue
        rows = cell_rows(cell)
        data[variant.table] = rows
        lines += [f"## {variant.label}", "", *markdown(rows), ""]
        figure, axis = plt.subplots(figsize=(6, 4))
        for r in rows:
            axis.plot(range(1, len(r["curve"]) + 1), r["curve"], marker="o", label=r["rule"])
        axis.set(xlabel="mega-batch", ylabel="test accuracy (%)", title=variant.label)
        axis.legend()
        save(figure, out.parent / f"{out.name}_{variant.table}.png")
        lines += [f"![{variant.label}]({out.name}_{variant.table}.png)", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_parser(sub)
    report_parser = sub.add_parser("report")
    report_parser.add_argument("--runs-dir", type=Path, default=RUNS)
    report_parser.add_argument("--out", type=Path, default=DOCS / "rule_budgets")
    args = parser.parse_args()
    if args.command == "report":
        report(args.runs_dir, args.out)
        return
    tables = set(args.tables.split(",")) if args.tables else None
    seeds = tuple(int(s) for s in args.seeds.split(","))
    strategies = set(args.strategies.split(",")) if args.strategies else None
    run(args.dataset, args.runs_dir, args.workers, jobs(tables, seeds, strategies))


if __name__ == "__main__":
    main()
