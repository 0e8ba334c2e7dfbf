"""Issue 25's budget read: each rule's last-update curve at half of cold's optimiser steps, on the
same seed, against cold's and warm's last epochs."""

from __future__ import annotations

import pytest

from benchmarks.warm_start_budget import at_budget, budget_rows, budget_seeds


def _run(curve: list[float], steps_per_epoch: int = 10) -> list[dict]:
    last = {
        "epoch_test_accuracy": curve,
        "epochs_trained": len(curve),
        "optimizer_steps": steps_per_epoch * len(curve),
    }
    return [{"epoch_test_accuracy": [0.1], "epochs_trained": 1, "optimizer_steps": 5}, last]


def test_the_budget_reads_the_last_epoch_that_fits_and_keeps_an_earlier_finish():
    run = _run([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert at_budget(run, 39) == (3, 0.3)  # 39 steps hold three epochs of ten, not four
    assert at_budget(run, 40) == (4, 0.4)
    assert at_budget(run, 1000) == (6, 0.6)  # it converged before the budget ran out
    assert at_budget(run, 9) is None  # not one epoch fits
    assert at_budget([{"epochs_trained": 3, "optimizer_steps": 30}], 100) is None  # no curve


def test_a_rule_is_measured_at_half_of_cold_steps_against_cold_and_warm_last_epochs():
    runs = {
        "cold": {0: _run([0.30] * 9 + [0.50]), 1: _run([0.30] * 7 + [0.60])},
        "warm": {0: _run([0.40] * 4), 1: _run([0.50] * 3)},
        # slow but fast enough: above half the lead at epoch 5 (seed 0) and epoch 4 (seed 1)
        "dash": {
            0: _run([0.3, 0.3, 0.3, 0.3, 0.46, 0.9, 0.9]),
            1: _run([0.5, 0.5, 0.5, 0.52, 0.9]),
        },
    }
    seeds = budget_seeds(runs, "dash")
    assert [(s["seed"], s["epochs"]) for s in seeds] == [(0, 5), (1, 4)]
    assert [s["accuracy"] for s in seeds] == [0.46, 0.52]
    assert [s["minus_cold"] for s in seeds] == pytest.approx([-0.04, -0.08])
    assert [s["closed"] for s in seeds] == pytest.approx([0.6, 0.2])
    rows, _ = budget_rows(runs, ("cold", "warm", "dash"))
    assert [row[0] for row in rows] == ["warm", "dash"]  # cold owns the budget: no row
    assert rows[1][5:] == ["40 ± 20 %", "1 of 2"]


def test_a_seed_where_warm_leads_has_no_share_and_a_seed_missing_cold_is_left_out():
    runs = {
        "cold": {0: _run([0.40] * 4)},
        "warm": {0: _run([0.45] * 2), 1: _run([0.45] * 2)},
        "lure": {0: _run([0.47] * 2), 1: _run([0.47] * 2)},
    }
    seeds = budget_seeds(runs, "lure")
    assert [s["seed"] for s in seeds] == [0]
    assert seeds[0]["closed"] is None and seeds[0]["minus_cold"] == pytest.approx(0.07)
    rows, _ = budget_rows(runs, ("cold", "warm", "lure"))
    assert rows[1][5:] == ["–", "–"]
