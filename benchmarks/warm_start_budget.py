"""Issue 25's goal asks for accuracy at a compute budget: does a warm-start-family rule close half
of cold's lead over warm *with at most half of cold's optimiser steps*? A rule that trains until
99 % training accuracy may take more than that, so this reads each rule's per-epoch test curve of
the last update at the last epoch that fits in half of cold's steps (same seed).

The study's learning rate is constant, so a run stopped there is exactly the run an epoch budget
(``max_epochs``) would have produced: no schedule depends on the total. Every value here comes
from the curves, before the BatchNorm recalibration that ends an update (issue 26), so rules and
references share one protocol whatever their job files recorded.
"""

from __future__ import annotations

from benchmarks.markdown import mean_std

BUDGET_HEADER = [
    "rule",
    "seeds",
    "epochs within the budget",
    "test acc. at the budget (%)",
    "− cold (points)",
    "share of cold's lead closed",
    "seeds closing half of it",
]


def _curve(run: list[dict]) -> list[float]:
    return list(run[-1].get("epoch_test_accuracy") or [])


def _steps_per_epoch(run: list[dict]) -> float:
    last = run[-1]
    return last["optimizer_steps"] / max(last["epochs_trained"], 1)


def at_budget(run: list[dict], budget_steps: float) -> tuple[int, float] | None:
    """(epochs, test accuracy) of this run's last update stopped at the last epoch whose steps fit
    in ``budget_steps``; a run that converged earlier keeps its last epoch; None without a curve or
    when not one epoch fits."""
    curve = _curve(run)
    epochs = min(int(budget_steps // _steps_per_epoch(run)), len(curve)) if curve else 0
    return (epochs, curve[epochs - 1]) if epochs > 0 else None


def budget_seeds(runs: dict, strategy: str, fraction: float = 0.5) -> list[dict]:
    """Per seed that ran the rule, cold and warm with curves: the rule at ``fraction`` of cold's
    last-update steps against cold's and warm's own last epochs (both trained to their target)."""
    out = []
    for seed in sorted(
        set(runs.get(strategy, {})) & set(runs.get("cold", {})) & set(runs.get("warm", {}))
    ):
        cold, warm = _curve(runs["cold"][seed]), _curve(runs["warm"][seed])
        budget = fraction * runs["cold"][seed][-1]["optimizer_steps"]
        reached = at_budget(runs[strategy][seed], budget)
        if not (cold and warm and reached):
            continue
        lead = cold[-1] - warm[-1]
        closed = (reached[1] - warm[-1]) / lead if lead > 0 else None
        out.append(
            {
                "seed": seed,
                "epochs": reached[0],
                "accuracy": reached[1],
                "minus_cold": reached[1] - cold[-1],
                "closed": closed,
            }
        )
    return out


def budget_rows(runs: dict, order: tuple[str, ...]) -> tuple[list[list[str]], dict]:
    """One row per rule except cold (the budget's owner): its values at half of cold's steps."""
    rows, data = [], {}
    for strategy in [s for s in order if s in runs and s != "cold"]:
        seeds = budget_seeds(runs, strategy)
        if not seeds:
            continue
        closed = [s["closed"] for s in seeds if s["closed"] is not None]
        data[strategy] = seeds
        rows.append(
            [
                strategy,
                str(len(seeds)),
                mean_std([s["epochs"] for s in seeds], 1, 1),
                mean_std([s["accuracy"] for s in seeds], 100, 2),
                mean_std([s["minus_cold"] for s in seeds], 100, 2),
                mean_std(closed, 100, 0) + " %" if closed else "–",
                f"{sum(c >= 0.5 for c in closed)} of {len(closed)}" if closed else "–",
            ]
        )
    return rows, data
