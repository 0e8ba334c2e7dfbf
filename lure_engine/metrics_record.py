"""The record of one update's metrics, apart from the code that computes them (``metrics.py``):
it imports nothing heavy, so the server's database layer can derive its columns from it without
loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UpdateMetrics:
    """The anytime metrics of one update: the one definition the simulator's records, the server's
    ``metrics`` table and the API's metric fields are all derived from.

    ``cer`` is the cumulative error rate along the lineage (the parent's CER plus this version's
    test errors); test metrics are None without a held-out test set; training metrics are None
    for imported weights (version 0), which no update trained.
    """

    test_accuracy: float | None
    test_errors: int | None
    test_samples: int
    cer: int | None
    train_accuracy: float | None
    val_accuracy: float | None
    generalization_gap: float | None
    ece: float | None
    nll: float | None
    prequential_accuracy: float | None
    train_samples: int
    train_seconds: float
    # compute: epochs trained (fewer than asked when a training-accuracy target was reached) and
    # optimiser steps; None for imported weights and for versions recorded before they were
    epochs_trained: int | None
    optimizer_steps: int | None
    unlearn_seconds: float
    reset_seconds: float
    importance_seconds: float
    evaluate_seconds: float
    reliability: list  # reliability bins of the test set, for plotting (empty without one)
