"""Anytime-learning metrics: accuracy, errors, CER, generalisation gap, ECE, NLL, reliability bins.

ECE comes from torchmetrics so our number is the one other tools report; the reliability bins are
computed here because torchmetrics does not expose them for plotting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

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

    def to_dict(self) -> dict:
        return asdict(self)


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = ECE_BINS) -> float:
    """L1 ECE with equal-width confidence bins (torchmetrics)."""
    return float(multiclass_calibration_error(probs, y, num_classes=probs.shape[1], n_bins=bins, norm="l1"))


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


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bins: int = ECE_BINS) -> Evaluation:
    return evaluate_logits(predict_logits(model, x), y, bins)


def cumulative_error_rate(errors_per_megabatch: Sequence[int]) -> list[int]:
    """CER after each mega-batch: the running sum of test errors (paper Eq. 4)."""
    total, out = 0, []
    for errors in errors_per_megabatch:
        total += int(errors)
        out.append(total)
    return out


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
        out.append({
            "low": low, "high": high, "count": n,
            "confidence": float(confidence[inside].mean()) if n else None,
            "accuracy": float(correct[inside].mean()) if n else None,
        })
    return out
