"""Does a mega-batch's labelling agree with the live model beyond chance, and if not, is it a
systematic mix-up? The data gate's test for a model that is still weak.

Why: an absolute tolerance on the accuracy drop cannot be reached by a model a few points above
chance. On a held-out CIFAR-10 slice the live model at 18 % got 15 % of the recent rows right and
3.4 % of a mega-batch whose every label had been moved to another class: an 11.6-point drop,
inside the 15-point tolerance, so both a shuffled and a moved mega-batch were trained on.

Agreement is judged corrected for chance (Cohen's kappa: (p_o − p_e) / (1 − p_e), p_e from the
two marginals), with its large-sample standard error, so a model at 20 % is "significantly above
chance" on a few hundred rows, and a mega-batch on which it is not is "consistent with chance". A
label mapping (a class-index bug) shows in the live model's prediction-given-label table as mass
moved off the diagonal onto one cell per label: the assignment of labels to predicted classes
that agrees most (Hungarian, ``scipy.optimize.linear_sum_assignment``) is then not the identity,
and it agrees significantly more than the identity on the rows where the two differ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Agreement:
    """A model's predictions against labels, as counts: enough for kappa and its error."""

    correct: int
    rows: int
    predicted: tuple[int, ...]  # rows predicted as each class
    labelled: tuple[int, ...]  # rows labelled as each class

    @classmethod
    def of(cls, predictions: np.ndarray, labels: np.ndarray, classes: int) -> Agreement:
        return cls(
            int((predictions == labels).sum()),
            len(labels),
            tuple(np.bincount(predictions, minlength=classes)[:classes].tolist()),
            tuple(np.bincount(labels, minlength=classes)[:classes].tolist()),
        )

    def __add__(self, other: Agreement) -> Agreement:
        if len(self.predicted) != len(other.predicted):  # a grown class list: pad the shorter
            width = max(len(self.predicted), len(other.predicted))
            pad = lambda counts: tuple(counts) + (0,) * (width - len(counts))  # noqa: E731
            return Agreement(self.correct, self.rows, pad(self.predicted), pad(self.labelled)) + (
                Agreement(other.correct, other.rows, pad(other.predicted), pad(other.labelled))
            )
        return Agreement(
            self.correct + other.correct,
            self.rows + other.rows,
            tuple(a + b for a, b in zip(self.predicted, other.predicted, strict=True)),
            tuple(a + b for a, b in zip(self.labelled, other.labelled, strict=True)),
        )

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else float("nan")

    @property
    def chance(self) -> float:
        """p_e: the agreement two independent labellings with these marginals would reach."""
        if not self.rows:
            return float("nan")
        return sum(p * q for p, q in zip(self.predicted, self.labelled, strict=True)) / (
            self.rows**2
        )

    @property
    def kappa(self) -> float:
        chance = self.chance
        return (self.accuracy - chance) / (1 - chance) if chance < 1 else 0.0

    @property
    def kappa_error(self) -> float:
        """Large-sample standard error of kappa: √(p_o (1 − p_o) / n) / (1 − p_e)."""
        p, chance = self.accuracy, self.chance
        if not self.rows or chance >= 1:
            return float("inf")
        return math.sqrt(max(p * (1 - p), 1.0 / self.rows) / self.rows) / (1 - chance)

    def to_dict(self) -> dict:
        return {**asdict(self), "kappa": self.kappa}

    @classmethod
    def from_dict(cls, values: dict) -> Agreement | None:
        """None for a record written before these counts were kept."""
        if not values or "predicted" not in values:
            return None
        return cls(
            int(values["correct"]),
            int(values["rows"]),
            tuple(values["predicted"]),
            tuple(values["labelled"]),
        )


def above_chance_p(agreement: Agreement) -> float:
    """H0: kappa ≤ 0 (no agreement beyond chance); one-sided z-test."""
    from scipy.stats import norm  # here: scipy.stats costs a second of every process's start

    return float(norm.sf(agreement.kappa / agreement.kappa_error))


def kappa_drop_p(new: Agreement, recent: Agreement) -> float:
    """H0: the new mega-batch's kappa is no lower than the recent ones' (independent rows)."""
    from scipy.stats import norm

    spread = math.hypot(new.kappa_error, recent.kappa_error)
    return float(norm.sf((recent.kappa - new.kappa) / spread))


@dataclass(frozen=True)
class LabelMapping:
    """The labels → predicted classes assignment that agrees most, where it is not the identity:
    ``moved`` maps each such label to the class the model sees in it; ``agreement`` is the
    agreement with the labels mapped. ``gained``/``lost``: rows right only under the mapping /
    only as labelled, counted on the half of the rows the mapping was *not* found on (found on the
    other half): the best of many assignments beats the identity on the rows it was chosen on
    even for shuffled labels, never on fresh rows."""

    moved: dict[int, int]
    agreement: Agreement
    gained: int
    lost: int

    def describe(self, limit: int = 5) -> str:
        pairs = sorted(self.moved.items())
        text = ", ".join(f"{label}→{seen}" for label, seen in pairs[:limit])
        more = f" and {len(pairs) - limit} more" if len(pairs) > limit else ""
        return f"labels {text}{more}"

    def to_dict(self) -> dict:
        return {
            "moved": {str(k): v for k, v in self.moved.items()},
            "agreement": self.agreement.to_dict(),
            "gained": self.gained,
            "lost": self.lost,
        }


def _assignment(table: np.ndarray) -> dict[int, int]:
    """Label → predicted class of the most agreeing assignment, where it beats the identity."""
    from scipy.optimize import linear_sum_assignment

    rows, columns = linear_sum_assignment(table, maximize=True)
    return {
        int(label): int(seen)
        for label, seen in zip(rows, columns, strict=True)
        if seen != label and table[label, seen] > table[label, label]
    }


def _table(predictions: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    table = np.zeros((classes, classes), dtype=np.int64)  # rows: label, columns: prediction
    np.add.at(table, (labels, predictions), 1)
    return table


def best_mapping(predictions: np.ndarray, labels: np.ndarray, classes: int) -> LabelMapping | None:
    """The most agreeing assignment of labels to predicted classes (on every row); None when it
    is the identity on every label that has rows. Its test counts are held out (see
    :class:`LabelMapping`): found on the even rows, counted on the odd ones."""
    moved = _assignment(_table(predictions, labels, classes))
    if not moved:
        return None
    mapped = labels.copy()
    for label, seen in moved.items():
        mapped[labels == label] = seen
    found = _assignment(_table(predictions[0::2], labels[0::2], classes))
    held_out = _table(predictions[1::2], labels[1::2], classes)
    gained = int(sum(held_out[label, seen] for label, seen in found.items()))
    lost = int(sum(held_out[label, label] for label in found))
    return LabelMapping(moved, Agreement.of(predictions, mapped, classes), gained, lost)


def mapping_p(mapping: LabelMapping) -> float:
    """H0: the mapping agrees no better than the labels as given, on the held-out rows where
    the two differ (one-sided exact binomial, as McNemar's test)."""
    from scipy.stats import binom

    differing = mapping.gained + mapping.lost
    return float(binom.sf(mapping.gained - 1, differing, 0.5)) if differing else 1.0
