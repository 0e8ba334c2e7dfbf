"""The promotion gate: is a candidate version fit to replace the live one?

Candidate and live are compared on the gate split (validation rows: data neither trained on, and
not the reported test set, so published test metrics are never selected on). Each rule of a
:class:`PromotionPolicy` that is set can hold the candidate back, and with ``significance`` set
(the default) only when the candidate breaks it beyond the noise of the rows it was measured on
(``lure_engine/gate_statistics.py``). The verdict keeps every reason, the numbers behind it and
each rule's test, so a held version can be explained and audited.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional

from lure_engine.data_gate import json_safe
from lure_engine.gate_statistics import (
    TestResult,
    paired_accuracy_test,
    paired_mean_increase_test,
    proportion_above_test,
    proportion_below_test,
)
from lure_engine.metrics import expected_calibration_error, predict_logits

RANK_METRICS = ("accuracy", "ece", "worst_class_recall")


@dataclass(frozen=True)
class PromotionPolicy:
    """When a candidate may go live. ``None`` turns a rule off.

    ``min_accuracy_delta``: candidate accuracy − live accuracy must be at least this (−0.01 lets a
    candidate one point worse through, absorbing the noise of a small validation split).
    ``max_ece_increase``: candidate ECE − live ECE at most this (no test: ECE has none that fits).
    ``max_nll_increase``: the mean negative log-likelihood per gate row rises by at most this
    (nats; a model that turned confidently wrong). ``min_class_recall``: every class present in the
    gate split reaches at least this recall. ``max_class_recall_drop``: no class loses more recall
    than this against live. ``max_flip_rate``: at most this share of gate samples change their
    predicted label to a wrong one. ``significance``: a rule holds only when its one-sided test
    rejects "within the rule" at this level (per-class rules: divided by the number of classes);
    None: plain thresholds. ``rank_by``: how sibling candidates are ranked.
    """

    min_accuracy_delta: float | None = -0.01
    max_ece_increase: float | None = None
    max_nll_increase: float | None = 0.5
    min_class_recall: float | None = None
    max_class_recall_drop: float | None = None
    max_flip_rate: float | None = 0.75
    significance: float | None = 0.05
    rank_by: str = "accuracy"

    def __post_init__(self) -> None:
        if self.rank_by not in RANK_METRICS:
            raise ValueError(f"rank_by must be one of {RANK_METRICS}, got {self.rank_by!r}")
        if self.significance is not None and not 0 < self.significance < 1:
            raise ValueError(f"significance must be in (0, 1), got {self.significance}")

    def breaks(self, observed_beyond: bool, test: TestResult, tests: int = 1) -> bool:
        """Does a rule hold the candidate: past its threshold and, with ``significance``, beyond
        noise (``tests``: how many such tests the rule makes, Bonferroni)."""
        if self.significance is None:
            return observed_beyond
        return observed_beyond and test.significant(self.significance / max(tests, 1))

    @classmethod
    def from_dict(cls, values: dict | None) -> PromotionPolicy:
        return cls(**(values or {}))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateEvaluation:
    """One model on the gate split, row by row: what every rule and its test need."""

    labels: torch.Tensor  # the gate rows' labels
    predictions: torch.Tensor  # predicted labels (the flip rate compares them)
    row_nll: torch.Tensor  # negative log-likelihood of each row's label
    ece: float
    # top-1 probability of each row: the reference traffic's confidences are compared with
    confidence: torch.Tensor | None = None

    @property
    def count(self) -> int:
        return len(self.labels)

    @property
    def correct(self) -> torch.Tensor:
        return self.predictions.eq(self.labels)

    @property
    def accuracy(self) -> float:
        return float(self.correct.float().mean()) if self.count else float("nan")

    @property
    def nll(self) -> float:
        return float(self.row_nll.mean()) if self.count else float("nan")

    @property
    def class_recall(self) -> dict[int, float]:
        """Recall of each class present in the gate split."""
        correct = self.correct
        return {
            int(c): float(correct[self.labels == c].float().mean())
            for c in torch.unique(self.labels).tolist()
        }

    @property
    def worst_class_recall(self) -> float:
        recall = self.class_recall
        return min(recall.values()) if recall else float("nan")

    def score(self, rank_by: str) -> float:
        """Higher is better, whichever metric ranks."""
        if rank_by == "ece":
            return -self.ece
        return self.worst_class_recall if rank_by == "worst_class_recall" else self.accuracy

    def summary(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "ece": self.ece,
            "nll": self.nll,
            "worst_class_recall": self.worst_class_recall,
            "samples": self.count,
        }


@dataclass(frozen=True)
class GateSplit:
    """The gate rows a verdict is made on: the earlier mega-batches' validation rows. The
    update's own mega-batch's rows are judged apart (they cannot vouch for it: a mega-batch whose
    labels are swapped scores live near zero there and a candidate that learned the swap well)."""

    x: torch.Tensor
    y: torch.Tensor
    own_x: torch.Tensor
    own_y: torch.Tensor
    self_vouched: bool  # nothing earlier (the first update after an import): its own rows judge

    def record(self) -> dict:
        return {
            "judged": len(self.y),
            "own_left_out": len(self.own_y),
            "self_vouched": self.self_vouched,
        }


def split_gate(x: torch.Tensor, y: torch.Tensor, own_rows: int) -> GateSplit:
    """``own_rows``: how many of the last rows are the update's own mega-batch's."""
    earlier = len(y) - own_rows
    if earlier > 0:
        return GateSplit(x[:earlier], y[:earlier], x[earlier:], y[earlier:], False)
    return GateSplit(x, y, x[:0], y[:0], True)


@torch.no_grad()
def evaluate_on_gate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> GateEvaluation:
    labels = y.cpu()
    if not len(labels):  # no rows (an update's own, left out on its first mega-batch)
        empty = torch.zeros(0)
        return GateEvaluation(labels, labels.clone(), empty, float("nan"))
    logits = predict_logits(model, x)
    probabilities = logits.softmax(1)
    return GateEvaluation(
        labels=labels,
        predictions=logits.argmax(1).cpu(),
        row_nll=functional.cross_entropy(logits, y, reduction="none").cpu(),
        ece=expected_calibration_error(probabilities, y) if len(labels) else float("nan"),
        confidence=probabilities.max(1).values.cpu(),
    )


@dataclass
class Verdict:
    """``passed`` or ``held``, with one reason per broken rule, the numbers compared and each
    rule's test."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "verdict": "passed" if self.passed else "held",
            "reasons": self.reasons,
            "numbers": json_safe(self.numbers),
        }


def _p_note(test: TestResult, policy: PromotionPolicy) -> str:
    if policy.significance is None:
        return ""
    return f"; {test.test} p = {test.p_value:.3g} on {test.rows} rows"


def _accuracy_rule(
    candidate: GateEvaluation, live: GateEvaluation, policy: PromotionPolicy, tests: dict
) -> list[str]:
    if policy.min_accuracy_delta is None:
        return []
    delta = candidate.accuracy - live.accuracy
    test = paired_accuracy_test(candidate.correct, live.correct, policy.min_accuracy_delta)
    tests["min_accuracy_delta"] = test.to_dict()
    if not policy.breaks(delta < policy.min_accuracy_delta, test):
        return []
    return [
        f"accuracy changed by {delta:+.4f} ({live.accuracy:.4f} → {candidate.accuracy:.4f}), "
        f"below the minimum {policy.min_accuracy_delta:+}{_p_note(test, policy)}"
    ]


def _likelihood_rules(
    candidate: GateEvaluation, live: GateEvaluation, policy: PromotionPolicy, tests: dict
) -> list[str]:
    """Calibration (ECE, a threshold) and likelihood (NLL, a paired test): a model that turned
    confidently wrong, whatever its accuracy."""
    reasons = []
    ece_increase = candidate.ece - live.ece
    if policy.max_ece_increase is not None and ece_increase > policy.max_ece_increase:
        reasons.append(
            f"ECE rose by {ece_increase:.4f} ({live.ece:.4f} → {candidate.ece:.4f}), "
            f"more than {policy.max_ece_increase}"
        )
    if policy.max_nll_increase is not None:
        test = paired_mean_increase_test(candidate.row_nll, live.row_nll, policy.max_nll_increase)
        tests["max_nll_increase"] = test.to_dict()
        increase = candidate.nll - live.nll
        if policy.breaks(increase > policy.max_nll_increase, test):
            reasons.append(
                f"the negative log-likelihood rose by {increase:.3f} nats ({live.nll:.3f} → "
                f"{candidate.nll:.3f}), more than {policy.max_nll_increase}{_p_note(test, policy)}"
            )
    return reasons


def _flip_rule(
    candidate: GateEvaluation, live: GateEvaluation, policy: PromotionPolicy, tests: dict
) -> list[str]:
    """Churn into wrong answers: a flip that corrects a mistake is what an update is for, so
    only changes to a wrong label count (a 7 % import replaced by a 60 % model flips most rows)."""
    if policy.max_flip_rate is None:
        return []
    flips = int(_harmful_flips(candidate, live).sum())
    test = proportion_above_test(flips, candidate.count, policy.max_flip_rate)
    tests["max_flip_rate"] = test.to_dict()
    rate = flips / candidate.count if candidate.count else 0.0
    if not policy.breaks(rate > policy.max_flip_rate, test):
        return []
    return [
        f"{rate:.2%} of gate samples changed their predicted label to a wrong one "
        f"(more than {policy.max_flip_rate:.2%}{_p_note(test, policy)})"
    ]


def _harmful_flips(candidate: GateEvaluation, live: GateEvaluation) -> torch.Tensor:
    """Rows whose answer changed and is now wrong."""
    changed = candidate.predictions.ne(live.predictions)
    return changed & candidate.predictions.ne(candidate.labels)


def _class_floor_rule(candidate: GateEvaluation, policy: PromotionPolicy, tests: dict) -> list[str]:
    """Every class present reaches ``min_class_recall`` (tested per class, Bonferroni)."""
    if policy.min_class_recall is None:
        return []
    reasons, classes = [], torch.unique(candidate.labels).tolist()
    for label in classes:
        rows = candidate.labels == label
        recall = float(candidate.correct[rows].float().mean())
        test = proportion_below_test(
            int(candidate.correct[rows].sum()), int(rows.sum()), policy.min_class_recall
        )
        tests[f"min_class_recall[{label}]"] = test.to_dict()
        if policy.breaks(recall < policy.min_class_recall, test, len(classes)):
            reasons.append(
                f"class {label} recall {recall:.4f} is below the floor "
                f"{policy.min_class_recall}{_p_note(test, policy)}"
            )
    return reasons


def _class_drop_rule(
    candidate: GateEvaluation, live: GateEvaluation, policy: PromotionPolicy, tests: dict
) -> tuple[list[str], dict]:
    """No class loses more than ``max_class_recall_drop`` of recall against live (a paired test
    on that class's rows, Bonferroni over the classes)."""
    live_recall = live.class_recall
    drops = {c: live_recall.get(c, r) - r for c, r in sorted(candidate.class_recall.items())}
    worst = max(drops, key=lambda label: drops[label]) if drops else None
    numbers = {
        "worst_class": worst,
        "worst_class_drop": drops[worst] if worst is not None else None,
    }
    if policy.max_class_recall_drop is None or worst is None:
        return [], numbers
    reasons = []
    for label, drop in drops.items():
        rows = candidate.labels == label
        test = paired_accuracy_test(
            candidate.correct[rows], live.correct[rows], -policy.max_class_recall_drop
        )
        tests[f"max_class_recall_drop[{label}]"] = test.to_dict()
        if policy.breaks(drop > policy.max_class_recall_drop, test, len(drops)):
            reasons.append(
                f"class {label} recall dropped by {drop:.4f} "
                f"(more than {policy.max_class_recall_drop}{_p_note(test, policy)})"
            )
    return reasons, numbers


def judge(
    candidate: GateEvaluation, live: GateEvaluation | None, policy: PromotionPolicy
) -> Verdict:
    """Apply every rule that is set. Without a live version there is nothing to be worse than,
    so only the absolute rule (the class recall floor) applies."""
    tests: dict = {}
    numbers: dict = {"candidate": candidate.summary(), "significance": policy.significance}
    reasons = _class_floor_rule(candidate, policy, tests)
    if live is not None:
        numbers |= {
            "live": live.summary(),
            "accuracy_delta": candidate.accuracy - live.accuracy,
            "ece_increase": candidate.ece - live.ece,
            "nll_increase": candidate.nll - live.nll,
            "flip_rate": float(candidate.predictions.ne(live.predictions).float().mean()),
            "harmful_flip_rate": float(_harmful_flips(candidate, live).float().mean()),
        }
        class_reasons, class_numbers = _class_drop_rule(candidate, live, policy, tests)
        reasons = (
            _accuracy_rule(candidate, live, policy, tests)
            + _likelihood_rules(candidate, live, policy, tests)
            + reasons
            + class_reasons
            + _flip_rule(candidate, live, policy, tests)
        )
        numbers |= class_numbers
    numbers["tests"] = tests
    return Verdict(not reasons, reasons, numbers)


def margin(candidate: GateEvaluation, live: GateEvaluation | None, rank_by: str) -> float | None:
    """How far the candidate is ahead of live on the ranking metric (negative: behind)."""
    return None if live is None else candidate.score(rank_by) - live.score(rank_by)
