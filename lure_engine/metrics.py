"""Anytime-learning metrics: accuracy, errors, CER, generalisation gap, ECE, NLL, reliability bins.

ECE comes from torchmetrics so our number is the one other tools report; the reliability bins are
computed here because torchmetrics does not expose them for plotting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from lure_engine.metrics_record import UpdateMetrics

if TYPE_CHECKING:
    from lure_engine.update import UpdateResult

ECE_BINS = 15


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])


@dataclass
class Evaluation:
    accuracy: float
    errors: int
    count: int
    ece: float
    nll: float


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = ECE_BINS) -> float:
    """L1 ECE with equal-width confidence bins (torchmetrics, imported here: it costs 0.7 s of
    every process's start, and an API that only serves never computes one)."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    return float(
        multiclass_calibration_error(probs, y, num_classes=probs.shape[1], n_bins=bins, norm="l1")
    )


def evaluate_logits(logits: torch.Tensor, y: torch.Tensor, bins: int = ECE_BINS) -> Evaluation:
    y = y.to(logits.device)
    errors = int((logits.argmax(1) != y).sum())
    count = len(y)
    if count == 0:
        return Evaluation(float("nan"), 0, 0, float("nan"), float("nan"))
    probs = logits.softmax(1)
    return Evaluation(
        accuracy=1.0 - errors / count,
        errors=errors,
        count=count,
        ece=expected_calibration_error(probs, y, bins),
        nll=float(F.cross_entropy(logits, y)),
    )


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, bins: int = ECE_BINS
) -> Evaluation:
    return evaluate_logits(predict_logits(model, x), y, bins)


def generalization_gap(train_accuracy: float, val_accuracy: float) -> float:
    return train_accuracy - val_accuracy


def reliability_bins(probs: torch.Tensor, y: torch.Tensor, bins: int = 10) -> list[dict]:
    """Per confidence bin: its range, sample count, mean confidence and accuracy (for plotting)."""
    confidence, predicted = probs.max(1)
    correct = predicted.eq(y.to(probs.device)).float()
    edges = torch.linspace(0, 1, bins + 1)
    out = []
    for b in range(bins):
        low, high = float(edges[b]), float(edges[b + 1])
        inside = (confidence > low) & (confidence <= high) if b else (confidence <= high)
        n = int(inside.sum())
        out.append(
            {
                "low": low,
                "high": high,
                "count": n,
                "confidence": float(confidence[inside].mean()) if n else None,
                "accuracy": float(correct[inside].mean()) if n else None,
            }
        )
    return out


def _test_metrics(
    model: nn.Module, test: tuple[torch.Tensor, torch.Tensor] | None, parent_cer: int
):
    """Test accuracy, errors, CER, ECE, NLL and reliability bins (None/empty without a test set)."""
    if test is None:
        return {
            "test_accuracy": None,
            "test_errors": None,
            "test_samples": 0,
            "cer": None,
            "ece": None,
            "nll": None,
            "reliability": [],
        }
    logits = predict_logits(model, test[0])
    result = evaluate_logits(logits, test[1])
    return {
        "test_accuracy": result.accuracy,
        "test_errors": result.errors,
        "test_samples": result.count,
        "cer": parent_cer + result.errors,
        "ece": result.ece,
        "nll": result.nll,
        "reliability": reliability_bins(logits.softmax(1), test[1]),
    }


def measure_update(
    result: UpdateResult,
    *,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor] | None,
    prequential_accuracy: float,
    parent_cer: int,
) -> UpdateMetrics:
    """Evaluate an updated model on its training set, the validation splits and the test set."""
    started = time.perf_counter()
    model = result.model
    train_accuracy = evaluate(model, *train).accuracy
    val_accuracy = evaluate(model, *val).accuracy if len(val[1]) else None
    gap = generalization_gap(train_accuracy, val_accuracy) if val_accuracy is not None else None
    return UpdateMetrics(
        **_test_metrics(model, test, parent_cer),
        train_accuracy=train_accuracy,
        val_accuracy=val_accuracy,
        generalization_gap=gap,
        prequential_accuracy=prequential_accuracy,
        train_samples=len(train[1]),
        train_seconds=result.train.seconds,
        epochs_trained=result.train.epochs,
        optimizer_steps=result.train.steps,
        unlearn_seconds=result.unlearn_seconds,
        reset_seconds=result.reset_seconds,
        importance_seconds=result.importance_seconds,
        evaluate_seconds=time.perf_counter() - started,
    )


def measure_model(
    model: nn.Module, test: tuple[torch.Tensor, torch.Tensor] | None
) -> UpdateMetrics:
    """The metrics of weights no update trained (an imported version 0): the test set only."""
    started = time.perf_counter()
    return UpdateMetrics(
        **_test_metrics(model, test, parent_cer=0),
        train_accuracy=None,
        val_accuracy=None,
        generalization_gap=None,
        prequential_accuracy=None,
        train_samples=0,
        train_seconds=0.0,
        epochs_trained=None,
        optimizer_steps=None,
        unlearn_seconds=0.0,
        reset_seconds=0.0,
        importance_seconds=0.0,
        evaluate_seconds=time.perf_counter() - started,
    )
