"""Issue 43 §2: ``auto``'s race, replayed on the recorded runs of §1 with the server's own rules.

    python -m benchmarks.rule_race --dataset npz:../shared/data/cifar10_small.npz

With lineages, each rule trains exactly what it would alone (same seeds, same data, its own
parent), so one run per rule (``benchmarks.rule_budgets``, which records every model's predicted
class on every row after each mega-batch) holds everything a race needs: each mega-batch's
candidates on the gate rows (the validation rows of the mega-batches so far) and each lineage's
head on the new mega-batch's rows before training on it. Each race rule is replayed with
``lure_update/selection.py`` (``cut``: which lineages go on training; ``choose_lineage``: which
one is live, at the switch level), exactly as an update calls them; ``auto``'s result is the live
lineage's test accuracy after the last mega-batch, its cost the optimiser steps of every lineage
it trained (the first update once: every rule trains it identically). Writes
``docs/benchmarks/rule_race.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.markdown import mean_std
from benchmarks.quality_tables import RUNS, decode_classes
from lure_engine.alma.stream import MegaBatch, make_stream
from lure_engine.lineage_evidence import DEFAULT_SWITCH_SIGNIFICANCE, Discordance
from lure_engine.seeding import derive_seed
from lure_update.selection import Standing, behind_in_a_row, choose_lineage, cut

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
TABLES = {"t43_short": "6 epochs", "t43_long": "30 epochs", "t43_short_buffer": "6 epochs, buffer"}
RACERS = ("warm", "lure", "dash", "shrink_perturb", "fire")  # auto's warm family


@dataclass
class Run:
    """One rule's recorded run: per mega-batch its test accuracy, its optimiser steps and its
    model's predicted class on every training-pool row."""

    accuracy: list[float]
    steps: list[int]
    predicted: list[np.ndarray]


def load_runs(runs_dir: Path, table: str) -> dict[int, dict[str, Run]]:
    """seed → rule → run, for every finished job of ``table`` that recorded its rows."""
    out: dict[int, dict[str, Run]] = defaultdict(dict)
    for path in sorted((runs_dir / table).glob("*/*.json")):
        doc = json.loads(path.read_text())
        if "row_predictions" not in doc:
            continue
        run = doc["runs"][0]
        rows = doc["row_predictions"]["megabatches"]
        out[run["seed"]][run["strategy"]] = Run(
            [m["test_accuracy"] for m in run["megabatches"]],
            [m["optimizer_steps"] for m in run["megabatches"]],
            [decode_classes(rows[str(m["index"])]["train"]) for m in run["megabatches"]],
        )
    return dict(out)


def _correct(run: Run, index: int, ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which rows of ``ids`` the model after mega-batch ``index`` (1-based) got right."""
    return run.predicted[index - 1][ids] == labels[ids]


def standings(
    runs: dict[str, Run], alive: list[str], stream: list[MegaBatch], index: int, labels
) -> dict[str, Standing]:
    """Mega-batch ``index``'s evidence: candidates on the gate rows, heads on the new rows."""
    gate = np.concatenate([m.val_ids for m in stream[:index]])
    new = stream[index - 1].ids
    right = {
        s: np.concatenate(
            [_correct(runs[s], index, gate, labels), _correct(runs[s], index - 1, new, labels)]
        )
        for s in alive
    }
    return {
        s: Standing(
            int(right[s].sum()),
            len(right[s]),
            {
                o: Discordance(int((right[s] & ~right[o]).sum()), int((right[o] & ~right[s]).sum()))
                for o in alive
                if o != s
            },
        )
        for s in alive
    }


@dataclass
class Race:
    """How one race went: who trained on each mega-batch, who was live, what it cost."""

    trained: list[list[str]] = field(default_factory=list)
    live: list[str] = field(default_factory=list)
    steps: int = 0


def replay(runs, stream, labels, rule: str, significance: float, first_cut: int) -> Race:
    """``rule``: ``halving`` (``lure_update.selection.cut``) or ``retire_after_3`` (the rule before
    this issue: train every lineage, retire one significantly behind 3 times in a row)."""
    alive = [s for s in RACERS if s in runs]
    race, live = Race(), alive[0]
    race.steps = runs[alive[0]].steps[0]  # the first update: one training for every rule
    race.trained.append([alive[0]])
    race.live.append(live)
    behind: dict[str, list[Discordance]] = defaultdict(list)
    for index in range(2, len(stream) + 1):
        race.trained.append(list(alive))
        race.steps += sum(runs[s].steps[index - 1] for s in alive)
        scores = standings(runs, alive, stream, index, labels)
        evidence = {s: scores[s].against[live] for s in alive if s != live}
        live = choose_lineage(live, evidence, DEFAULT_SWITCH_SIGNIFICANCE, live).leader
        if rule == "halving" and index >= first_cut:
            alive = cut(alive, scores, live, significance)
        elif rule == "retire_after_3":
            for s in alive:
                if s != live:
                    behind[s].append(scores[s].against[live])
            alive = [s for s in alive if s == live or behind_in_a_row(behind[s], 0.05) < 3]
        if live not in alive:  # the live lineage was cut: the best survivor goes live
            live = max(alive, key=lambda s: scores[s].right)
        race.live.append(live)
    return race


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--runs-dir", type=Path, default=RUNS)
    parser.add_argument("--significance", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=DOCS / "rule_race")
    args = parser.parse_args()
    from lure_engine.data import load_dataset

    labels = load_dataset(args.dataset).train.y
    results = []
    for table, label in TABLES.items():
        for seed, runs in sorted(load_runs(args.runs_dir, table).items()):
            if not all(s in runs for s in RACERS):
                continue
            stream = make_stream(len(labels), 8, derive_seed(seed, "stream"), split_seed=seed)
            results += evaluate_races(table, label, seed, runs, stream, labels, args.significance)
    write_report(results, args.out)


def evaluate_races(table, label, seed, runs, stream, labels, significance) -> list[dict]:
    best = max(runs, key=lambda s: runs[s].accuracy[-1])
    single = sum(runs["warm"].steps)
    rows = []
    for rule, first_cut in (("halving", 2), ("halving", 3), ("retire_after_3", 0)):
        race = replay(runs, stream, labels, rule, significance, first_cut)
        final = runs[race.live[-1]].accuracy[-1]
        rows.append(
            {
                "table": table,
                "budget": label,
                "seed": seed,
                "rule": rule if rule != "halving" else f"halving from mega-batch {first_cut}",
                "best_rule": best,
                "best_accuracy": runs[best].accuracy[-1],
                "warm_accuracy": runs["warm"].accuracy[-1],
                "auto_lineage": race.live[-1],
                "auto_accuracy": final,
                "gap": final - runs[best].accuracy[-1],
                "cost": race.steps / single,
                "trained": race.trained,
                "live": race.live,
                "every_rule": {s: r.accuracy[-1] for s, r in runs.items()},
            }
        )
    return rows


def write_report(results: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    lines = [
        "| budget | race rule | seeds | best single rule (per seed) | auto − best (points) | "
        "worst seed | auto's lineage (per seed) | steps ÷ one rule's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in results:
        groups[row["budget"], row["rule"]].append(row)
    for (budget, rule), rows in groups.items():
        gaps = [100 * r["gap"] for r in rows]
        lines.append(
            f"| {budget} | {rule} | {len(rows)} | "
            + ", ".join(f"{r['best_rule']} {100 * r['best_accuracy']:.2f}" for r in rows)
            + f" | {mean_std(gaps)} | {min(gaps):+.2f} | "
            + ", ".join(r["auto_lineage"] for r in rows)
            + f" | {mean_std([r['cost'] for r in rows])} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
