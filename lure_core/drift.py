"""Drift (issue 28 §4): does the traffic a version answers still look like its reference?

The reference is the version's own answers on its gate rows (held-out rows of the stream it was
trained on), recorded when it was published. Recent traffic is the last ``window`` logged answers
of the same version. Two stated tests, Bonferroni-combined:

- the two-sample Kolmogorov–Smirnov test on the top-1 confidence (scipy's exact or asymptotic p):
  corrupted or unfamiliar images lower a model's confidence before anyone has a label for them;
- the chi-square test of homogeneity on the predicted classes (a 2 × K contingency table): a
  shift in what the traffic is made of shows as a shift in what the model answers.

A check drifts when the smaller p-value is below ``p_value / 2``. Why tests and not thresholds:
a 200-row window's confidence histogram moves on noise alone, and the false-alarm rate of a test
is what its level says (``benchmarks/drift_detection.py`` measures it on a clean stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TESTS = 2  # the Bonferroni divisor: confidence and classes


@dataclass(frozen=True)
class DriftPolicy:
    """``window``: recent logged answers compared; ``check_every``: logged answers between two
    checks; ``min_seconds``: and at least this long between two checks of one API process (busy
    traffic would otherwise pay for several checks a second); ``p_value``: the family-wise level
    of one check; ``seal``: seal the open mega-batch when a check drifts (once per live
    version), so what the traffic brought is learnt sooner."""

    window: int = 200
    check_every: int = 100
    min_seconds: float = 10.0
    p_value: float = 0.001
    seal: bool = True

    @classmethod
    def from_dict(cls, values: dict | None) -> DriftPolicy:
        return cls(**(values or {}))


@dataclass(frozen=True)
class Answers:
    """What a model said on some images: its top-1 confidence and predicted class per image."""

    confidence: np.ndarray
    predicted: np.ndarray

    @classmethod
    def of(cls, confidence: Sequence[float], predicted: Sequence[int]) -> Answers:
        return cls(np.asarray(confidence, dtype=np.float64), np.asarray(predicted, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.confidence)

    def to_record(self) -> dict:
        return {
            "confidence": [round(float(c), 5) for c in self.confidence],
            "predicted": [int(p) for p in self.predicted],
        }


@dataclass(frozen=True)
class DriftResult:
    confidence_statistic: float  # KS D: the largest gap between the two confidence CDFs
    confidence_p_value: float
    class_p_value: float
    drifted: bool

    @property
    def p_value(self) -> float:
        """The check's Bonferroni-adjusted p-value (what ``p_value`` is compared with)."""
        return adjusted_p_value(self.confidence_p_value, self.class_p_value)


def adjusted_p_value(confidence_p_value: float, class_p_value: float) -> float:
    """The smaller of the two tests' p-values, Bonferroni-adjusted: one check's p-value."""
    return min(1.0, TESTS * min(confidence_p_value, class_p_value))


def compare(reference: Answers, window: Answers, p_value: float) -> DriftResult:
    """Test the window against the reference; both need at least one row."""
    if not len(reference) or not len(window):
        raise ValueError("drift needs rows in both the reference and the window")
    from scipy.stats import ks_2samp  # here: scipy.stats costs a second of every API's start

    ks = ks_2samp(reference.confidence, window.confidence)
    classes = class_p_value(reference.predicted, window.predicted)
    smaller = min(float(ks.pvalue), classes)
    return DriftResult(float(ks.statistic), float(ks.pvalue), classes, smaller < p_value / TESTS)


def class_p_value(reference: np.ndarray, window: np.ndarray) -> float:
    """Chi-square homogeneity of two samples of predicted classes. Classes expected fewer than
    5 times in either sample are pooled into one column (the usual rule for the chi-square
    approximation, which small gate splits would otherwise break); 1.0 when fewer than two
    columns remain (nothing to compare)."""
    from scipy.stats import chi2_contingency

    classes = np.union1d(reference, window)
    table = np.stack(
        [
            np.array([(reference == c).sum() for c in classes]),
            np.array([(window == c).sum() for c in classes]),
        ]
    ).astype(np.float64)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    rare = (expected < 5).any(0)
    if rare.any():
        table = np.concatenate([table[:, ~rare], table[:, rare].sum(1, keepdims=True)], axis=1)
    if table.shape[1] < 2:
        return 1.0
    return float(chi2_contingency(table, correction=False).pvalue)
