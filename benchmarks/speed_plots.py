"""Plots of the speed benchmarks, drawn from the JSON they wrote (no re-measuring).

    python -m benchmarks.speed_plots

Reads ``docs/benchmarks/update_growth.json`` and ``serving_speed*.json``; writes
``docs/benchmarks/update_growth.png`` and ``docs/benchmarks/serving_speed.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.plotting import pyplot, save

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def plot_growth(source: Path, target: Path) -> None:
    """Per-update seconds over the stream, full vs buffer replay, peak memory in the legend."""
    plt = pyplot()

    growth = json.loads(source.read_text())
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, run in growth["runs"].items():
        seconds = run["update_seconds"]
        axis.plot(
            range(1, len(seconds) + 1),
            seconds,
            marker="o",
            label=f"{name} replay (peak RSS {run['peak_rss_mib']:.0f} MiB)",
        )
    axis.set(
        xlabel="mega-batch",
        ylabel="whole update (s)",
        title=f"Update time over {growth['megabatches']} mega-batches ({growth['model']})",
    )
    axis.grid(alpha=0.3)
    axis.legend()
    save(figure, target)


def plot_serving(after: Path, before: Path | None, target: Path) -> None:
    """Predict requests/s and p99 latency against concurrent clients, with and without batching."""
    plt = pyplot()

    series = {"with micro-batching": json.loads(after.read_text())["predict"]}
    if before is not None and before.exists():
        series["one forward per request"] = json.loads(before.read_text())["predict"]
    figure, (rate, latency) = plt.subplots(1, 2, figsize=(10, 4))
    for label, rows in series.items():
        clients = [row["clients"] for row in rows]
        rate.plot(clients, [row["requests_per_s"] for row in rows], marker="o", label=label)
        latency.plot(clients, [row["p99_ms"] for row in rows], marker="o", label=label)
    rate.set(
        xlabel="concurrent clients",
        ylabel="requests/s",
        title="/predict throughput (HTTP)",
        xscale="log",
    )
    latency.set(
        xlabel="concurrent clients",
        ylabel="p99 latency (ms)",
        title="/predict p99 latency",
        xscale="log",
    )
    for axis in (rate, latency):
        axis.grid(alpha=0.3)
        axis.legend()
    save(figure, target)


def main() -> None:
    plot_growth(DOCS / "update_growth.json", DOCS / "update_growth.png")
    plot_serving(
        DOCS / "serving_speed.json",
        DOCS / "serving_speed_before_batching.json",
        DOCS / "serving_speed.png",
    )
    print(f"wrote {DOCS / 'update_growth.png'} and {DOCS / 'serving_speed.png'}")


if __name__ == "__main__":
    main()
