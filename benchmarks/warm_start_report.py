"""The report of issue 25's study (``benchmarks/warm_start_penalty.py``): tables with cold as the
reference row, the optimiser steps each rule took, how much of cold's lead over warm each rule
closes, and the per-epoch test-accuracy curves of the last update.

    python -m benchmarks.warm_start_report [--runs-dir DIR] [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.markdown import mean_std, publish, table
from benchmarks.plotting import pyplot, save
from benchmarks.quality_tables import DOCS, RUNS
from benchmarks.warm_start_budget import BUDGET_HEADER, budget_rows

ORDER = ("cold", "warm", "lure", "shrink_perturb", "dash", "l2_init", "llf")
SECTIONS = (
    (
        "t25_penalty",
        "no augmentation",
        "1. Ash & Adams at CPU scale: 50 % then 100 %, no augmentation",
    ),
    ("t25_penalty", "flip + crop", "2. The same with flip + crop augmentation"),
    ("t25_stream", "5 mega-batches", "3. A stream of 5 mega-batches, full replay"),
    ("t25_label_noise", "40% noise", "4. 40 % symmetric label noise, 50 % then 100 %"),
)


def load_runs(runs_dir: Path, table_id: str, label: str) -> dict[str, dict[int, list[dict]]]:
    """strategy → seed → its mega-batch records, from the committed job files."""
    folder = runs_dir / table_id / label.replace(":", "-").replace("%", "pct")
    runs: dict[str, dict[int, list[dict]]] = defaultdict(dict)
    recalibrated: set[bool] = set()
    for path in sorted(folder.glob("*.json")):
        document = json.loads(path.read_text())
        recalibrated.add(_recalibrates(document))
        for run in document["runs"]:
            runs[run["strategy"]][run["seed"]] = run["megabatches"]
    if len(recalibrated) > 1:
        _compare_before_recalibration(runs)
    return runs


def _recalibrates(document: dict) -> bool:
    """Whether the job's updates recomputed BatchNorm statistics after training (a record made
    before that step existed has no such key and did not)."""
    train = document.get("config", {}).get("update", {}).get("train", {})
    return bool(train.get("recalibrate_norm", False))


def _compare_before_recalibration(runs: dict) -> None:
    """A table whose jobs ran on both sides of the recalibration step (issue 26) compares every
    run's last update at its last epoch, before the step: the one protocol all of them share.
    The final value stays as ``recalibrated_test_accuracy``."""
    for seeds in runs.values():
        for megabatches in seeds.values():
            last = megabatches[-1]
            if last.get("epoch_test_accuracy"):
                last["recalibrated_test_accuracy"] = last["test_accuracy"]
                last["test_accuracy"] = last["epoch_test_accuracy"][-1]
                last["compared_before_recalibration"] = True


def _paired(runs: dict, strategy: str, reference: str, key: str = "test_accuracy") -> list[float]:
    """Per seed both ran: strategy − reference on the last mega-batch."""
    mine, theirs = runs.get(strategy, {}), runs.get(reference, {})
    return [mine[s][-1][key] - theirs[s][-1][key] for s in sorted(set(mine) & set(theirs))]


def _closed(runs: dict, strategy: str) -> list[float]:
    """Per seed: the share of cold's lead over warm this rule closes ((rule − warm) ÷
    (cold − warm)); meaningful only where cold leads."""
    seeds = sorted(
        set(runs.get(strategy, {})) & set(runs.get("cold", {})) & set(runs.get("warm", {}))
    )
    out = []
    for s in seeds:
        last = {n: runs[n][s][-1]["test_accuracy"] for n in (strategy, "cold", "warm")}
        lead = last["cold"] - last["warm"]
        if lead > 0:
            out.append((last[strategy] - last["warm"]) / lead)
    return out


def summary_rows(runs: dict) -> tuple[list[list[str]], dict]:
    """One row per strategy, cold first; and the same numbers as data."""
    rows, data = [], {}
    cold_steps = [m[-1]["optimizer_steps"] for m in runs.get("cold", {}).values()]
    for strategy in [s for s in ORDER if s in runs] + sorted(set(runs) - set(ORDER)):
        seeds = runs[strategy]
        last = [m[-1] for m in seeds.values()]
        steps_last = [r["optimizer_steps"] for r in last]
        steps_all = [sum(r["optimizer_steps"] for r in m) for m in seeds.values()]
        item = {
            "seeds": len(seeds),
            "test_accuracy": [r["test_accuracy"] for r in last],
            "minus_cold": _paired(runs, strategy, "cold"),
            "minus_warm": _paired(runs, strategy, "warm"),
            "closed": _closed(runs, strategy),
            "epochs_last": [r["epochs_trained"] for r in last],
            "steps_last": steps_last,
            "steps_all": steps_all,
            "train_accuracy": [r["train_accuracy"] for r in last],
            "cer": [r["cer"] for r in last],
            "gap": [r["generalization_gap"] for r in last],
            "ece": [r["ece"] for r in last],
        }
        data[strategy] = item
        share = (
            f"{np.mean(steps_last) / np.mean(cold_steps):.2f}" if cold_steps and steps_last else "–"
        )
        rows.append(
            [
                strategy,
                str(len(seeds)),
                mean_std(item["test_accuracy"], 100),
                mean_std(item["minus_cold"], 100) if strategy != "cold" else "(reference)",
                mean_std(item["minus_warm"], 100) if strategy != "warm" else "–",
                mean_std(item["closed"], 100, 0) + " %" if item["closed"] else "–",
                mean_std(item["epochs_last"], 1, 1),
                mean_std(steps_last, 1, 0),
                share,
                mean_std(steps_all, 1, 0),
                mean_std(item["train_accuracy"], 100, 1),
                mean_std(item["cer"], 1, 0),
                mean_std(item["gap"], 100),
                mean_std(item["ece"], 100),
            ]
        )
    return rows, data


HEADER = [
    "rule",
    "seeds",
    "test acc. (%)",
    "− cold (points)",
    "− warm (points)",
    "share of cold's lead closed",
    "epochs, last update",
    "steps, last update",
    "steps ÷ cold's",
    "steps, whole stream",
    "train acc. reached (%)",
    "CER",
    "gen. gap (%)",
    "ECE (%)",
]


MIXED_PROTOCOL = (
    "This table's jobs ran with and without the BatchNorm recalibration that ends an update "
    "(issue 26): its test accuracies are each run's last epoch before that step, the protocol "
    "all of them share; ECE, gap and CER are each run's own."
)


BUDGET_TEXT = (
    "At half of cold's optimiser steps (issue 25's budget): each rule's test curve of the last "
    "update read at the last epoch that fits in half of cold's steps on the same seed (the "
    "learning rate is constant, so this is the run that epoch budget gives), against cold's and "
    "warm's last epochs; all values before BatchNorm recalibration."
)


def _budget_section(runs: dict, document: dict, key: str) -> str:
    """The budget-matched table under a section's main one, where the runs recorded curves."""
    rows, data = budget_rows(runs, ORDER)
    if not rows:
        return ""
    document[f"{key}/at half of cold's steps"] = data
    return f"\n\n{BUDGET_TEXT}\n\n{table(BUDGET_HEADER, rows)}"


def plot_curves(runs: dict, title: str, path: Path) -> bool:
    """Test accuracy after each epoch of the last update against its optimiser steps (mean of
    the seeds); False, and no figure, where the table recorded no per-epoch curve."""
    if not any(m[-1].get("epoch_test_accuracy") for seeds in runs.values() for m in seeds.values()):
        return False
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for strategy in [s for s in ORDER if s in runs]:
        curves = [m[-1]["epoch_test_accuracy"] for m in runs[strategy].values()]
        curves = [c for c in curves if c]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        steps_per_epoch = np.mean(
            [m[-1]["optimizer_steps"] / m[-1]["epochs_trained"] for m in runs[strategy].values()]
        )
        mean = np.mean([c[:length] for c in curves], axis=0) * 100
        axis.plot(np.arange(1, length + 1) * steps_per_epoch, mean, label=strategy, marker=".")
    axis.set_xlabel("optimiser steps in the last update")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    save(figure, path)
    return True


def report(runs_dir: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sections, document = [], {}
    for table_id, label, title in SECTIONS:
        runs = load_runs(runs_dir, table_id, label)
        if not runs:
            sections.append(f"## {title}\n\nNot run yet (no job files under {table_id}/{label}).\n")
            continue
        rows, data = summary_rows(runs)
        mixed = any(
            m[-1].get("compared_before_recalibration") for r in runs.values() for m in r.values()
        )
        document[f"{table_id}/{label}"] = data
        safe = label.replace(" ", "_").replace("%", "pct").replace("+", "and")
        image = f"warm_start_penalty_{table_id}_{safe}.png"
        figure = f"\n\n![curves]({image})" if plot_curves(runs, title, out / image) else ""
        protocol = f"{MIXED_PROTOCOL}\n\n" if mixed else ""
        budget = _budget_section(runs, document, f"{table_id}/{label}")
        sections.append(f"## {title}\n\n{protocol}{table(HEADER, rows)}{budget}{figure}\n")
    markdown = (
        "# Issue 25: the warm-start penalty at CPU scale\n\n"
        "Generated by `python -m benchmarks.warm_start_report` from the job files of "
        "`python -m benchmarks.warm_start_penalty run` (docs/BENCHMARKS.md says what was scaled). "
        "Values after the last update, mean ± std over seeds; differences are paired by seed; "
        "'share of cold's lead closed' is (rule − warm) ÷ (cold − warm) over the seeds where cold "
        "leads; steps count optimiser steps.\n\n" + "\n".join(sections)
    )
    publish(out, "warm_start_penalty", document, markdown)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs-dir", type=Path, default=RUNS)
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    report(args.runs_dir, args.out)


if __name__ == "__main__":
    main()
