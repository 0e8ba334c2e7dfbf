"""Turn ``results.json`` into the paper-style table (mean ± std over seeds) and a PNG plot."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

COLUMNS = (
    ("test_accuracy", "Test accuracy (%)", 100.0),
    ("cer", "CER", 1.0),
    ("generalization_gap", "Gen. gap (%)", 100.0),
    ("ece", "ECE (%)", 100.0),
)


def final_values(results: dict) -> dict[str, dict[str, list[float]]]:
    """strategy → metric → the final mega-batch's value for each seed."""
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in results["runs"]:
        last = run["megabatches"][-1]
        for key, _, _ in COLUMNS:
            table[run["strategy"]][key].append(float(last[key]))
        table[run["strategy"]]["train_seconds"].append(
            sum(m["train_seconds"] for m in run["megabatches"])
        )
        table[run["strategy"]]["unlearn_seconds"].append(
            sum(m["unlearn_seconds"] for m in run["megabatches"])
        )
        # compute: optimiser steps over the whole stream (records from before it was kept: 0)
        table[run["strategy"]]["optimizer_steps"].append(
            sum(m.get("optimizer_steps") or 0 for m in run["megabatches"])
        )
    return table


def summarise(results: dict) -> dict[str, dict[str, dict[str, float]]]:
    """strategy → metric → {mean, std} (population std over seeds, as the paper's ±)."""
    return {
        strategy: {
            key: {"mean": float(np.mean(v)), "std": float(np.std(v))} for key, v in metrics.items()
        }
        for strategy, metrics in final_values(results).items()
    }


def markdown_table(results: dict) -> str:
    summary = summarise(results)
    header = [
        "Strategy",
        *(title for _, title, _ in COLUMNS),
        "Train s",
        "Unlearn s",
        "Optimiser steps",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for strategy, metrics in summary.items():
        cells = [strategy]
        for key, _, scale in COLUMNS:
            mean, std = metrics[key]["mean"] * scale, metrics[key]["std"] * scale
            cells.append(f"{mean:.0f} ± {std:.0f}" if key == "cer" else f"{mean:.2f} ± {std:.2f}")
        cells += [
            f"{metrics['train_seconds']['mean']:.1f}",
            f"{metrics['unlearn_seconds']['mean']:.2f}",
            f"{metrics['optimizer_steps']['mean']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    config = results["config"]
    lines.append("")
    lines.append(
        f"{results['dataset']['name']}, model {config['model']} (width {config['width']}), "
        f"{config['megabatches']} mega-batches, replay {config['replay']}, "
        f"{_epochs(config['update']['train'])}, seeds {list(config['seeds'])}, "
        f"importance {config['update']['importance']}, keep {config['update']['keep_fraction']}, "
        f"label noise {config['label_noise']}; values after the last mega-batch, "
        "mean ± std over seeds."
    )
    return "\n".join(lines) + "\n"


def _epochs(train: dict) -> str:
    target = train.get("until_train_accuracy")
    if target:
        cap = train["epochs"]
        return f"each update until {target:.1%} training accuracy (at most {cap} epochs)"
    return f"{train['epochs']} epochs"


def plot(results: dict, path: Path) -> None:
    """Test accuracy and cumulative errors per mega-batch, mean with a ±std band per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for run in results["runs"]:
        for key in ("test_accuracy", "cer"):
            series[run["strategy"]][key].append([m[key] for m in run["megabatches"]])
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for strategy, data in series.items():
        for axis, key, scale in ((axes[0], "test_accuracy", 100.0), (axes[1], "cer", 1.0)):
            values = np.asarray(data[key]) * scale
            x = np.arange(1, values.shape[1] + 1)
            mean, std = values.mean(0), values.std(0)
            axis.plot(x, mean, marker="o", label=strategy)
            axis.fill_between(x, mean - std, mean + std, alpha=0.2)
    axes[0].set(xlabel="mega-batch", ylabel="test accuracy (%)", title="Test accuracy")
    axes[1].set(
        xlabel="mega-batch", ylabel="cumulative test errors", title="Cumulative error rate (CER)"
    )
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
