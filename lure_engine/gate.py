"""The promotion gate: is a candidate version fit to replace the live one?

Candidate and live are compared on the gate split (the accumulated validation rows: data neither
trained on, and not the reported test set, so published test metrics are never selected on).
Each rule of a :class:`PromotionPolicy` that is set can hold the candidate back; the verdict
keeps every reason and the numbers behind it, so a held version can be explained and audited.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from lure_engine.metrics import expected_calibration_error, predict_logits

RANK_METRICS = ("accuracy", "ece", "worst_class_recall")


@dataclass(frozen=True)
class PromotionPolicy:
    """When a candidate may go live. ``None`` turns a rule off.

    ``min_accuracy_delta``: candidate accuracy − live accuracy must be at least this (−0.01 lets a
    candidate one point worse through, absorbing the noise of a small validation split).
    ``max_ece_increase``: candidate ECE − live ECE at most this. ``min_class_recall``: every class
    present in the gate split reaches at least this recall. ``max_class_recall_drop``: no class
    loses more recall than this against live. ``max_flip_rate``: at most this share of gate samples
    change their predicted label. ``rank_by``: how sibling candidates are ranked.
    """

    min_accuracy_delta: float | None = -0.01
    max_ece_increase: float | None = None
    min_class_recall: float | None = None
    max_class_recall_drop: float | None = None
    max_flip_rate: float | None = None
    rank_by: str = "accuracy"

    def __post_init__(self) -> None:
        if self.rank_by not in RANK_METRICS:
            raise ValueError(f"rank_by must be one of {RANK_METRICS}, got {self.rank_by!r}")

    @classmethod
    def from_dict(cls, values: dict | None) -> PromotionPolicy:
        return cls(**(values or {}))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateEvaluation:
    """One model on the gate split: what every rule needs."""

    accuracy: float
    ece: float
    class_recall: dict[int, float]  # only the classes present in the gate split
    predictions: torch.Tensor  # predicted labels, for the flip rate
    count: int

    @property
    def worst_class_recall(self) -> float:
        return min(self.class_recall.values()) if self.class_recall else float("nan")

    def score(self, rank_by: str) -> float:
        """Higher is better, whichever metric ranks."""
        if rank_by == "ece":
            return -self.ece
        return self.worst_class_recall if rank_by == "worst_class_recall" else self.accuracy

    def summary(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "ece": self.ece,
            "worst_class_recall": self.worst_class_recall,
            "samples": self.count,
        }


@torch.no_grad()
def evaluate_on_gate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> GateEvaluation:
    logits = predict_logits(model, x)
    predictions = logits.argmax(1).cpu()
    labels = y.cpu()
    correct = predictions.eq(labels)
    recall = {
        int(c): float(correct[labels == c].float().mean()) for c in torch.unique(labels).tolist()
    }
    return GateEvaluation(
        accuracy=float(correct.float().mean()) if len(labels) else float("nan"),
        ece=expected_calibration_error(logits.softmax(1), y) if len(labels) else float("nan"),
        class_recall=recall,
        predictions=predictions,
        count=len(labels),
    )


@dataclass
class Verdict:
    """``passed`` or ``held``, with one reason per broken rule and the numbers compared."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "verdict": "passed" if self.passed else "held",
            "reasons": self.reasons,
            "numbers": self.numbers,
        }


def _class_rules(
    candidate: GateEvaluation, live: GateEvaluation, policy: PromotionPolicy
) -> tuple[list[str], dict]:
    reasons, drops = [], {}
    for label, recall in sorted(candidate.class_recall.items()):
        if policy.min_class_recall is not None and recall < policy.min_class_recall:
            reasons.append(
                f"class {label} recall {recall:.4f} is below the floor {policy.min_class_recall}"
            )
        drops[label] = live.class_recall.get(label, recall) - recall
    worst = max(drops, key=lambda label: drops[label]) if drops else None
    if policy.max_class_recall_drop is not None and worst is not None:
        if drops[worst] > policy.max_class_recall_drop:
            reasons.append(
                f"class {worst} recall dropped by {drops[worst]:.4f} "
                f"(more than {policy.max_class_recall_drop})"
            )
    drop = drops[worst] if worst is not None else None
    return reasons, {"worst_class": worst, "worst_class_drop": drop}


def judge(
    candidate: GateEvaluation, live: GateEvaluation | None, policy: PromotionPolicy
) -> Verdict:
    """Apply every rule that is set. Without a live version there is nothing to be worse than,
    so only the absolute rule (the class recall floor) applies."""
    numbers: dict = {"candidate": candidate.summary()}
    if live is None:
        floor, _ = _class_rules(candidate, candidate, policy)
        return Verdict(not floor, floor, numbers)
    numbers["live"] = live.summary()
    reasons: list[str] = []
    accuracy_delta = candidate.accuracy - live.accuracy
    ece_increase = candidate.ece - live.ece
    flip_rate = float(candidate.predictions.ne(live.predictions).float().mean())
    numbers |= {
        "accuracy_delta": accuracy_delta,
        "ece_increase": ece_increase,
        "flip_rate": flip_rate,
    }
    if policy.min_accuracy_delta is not None and accuracy_delta < policy.min_accuracy_delta:
        reasons.append(
            f"accuracy changed by {accuracy_delta:+.4f} ({live.accuracy:.4f} → "
            f"{candidate.accuracy:.4f}), below the minimum {policy.min_accuracy_delta:+}"
        )
    if policy.max_ece_increase is not None and ece_increase > policy.max_ece_increase:
        reasons.append(
            f"ECE rose by {ece_increase:.4f} ({live.ece:.4f} → {candidate.ece:.4f}), "
            f"more than {policy.max_ece_increase}"
        )
    class_reasons, class_numbers = _class_rules(candidate, live, policy)
    reasons += class_reasons
    numbers |= class_numbers
    if policy.max_flip_rate is not None and flip_rate > policy.max_flip_rate:
        reasons.append(
            f"{flip_rate:.2%} of gate samples changed their predicted label "
            f"(more than {policy.max_flip_rate:.2%})"
        )
    return Verdict(not reasons, reasons, numbers)


def margin(candidate: GateEvaluation, live: GateEvaluation | None, rank_by: str) -> float | None:
    """How far the candidate is ahead of live on the ranking metric (negative: behind)."""
    return None if live is None else candidate.score(rank_by) - live.score(rank_by)
