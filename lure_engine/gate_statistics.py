"""Is a difference measured on the gate rows more than noise? The promotion gate's tests.

A gate split of 120 rows measures accuracy to about ±4 points, so a fixed threshold both holds
good candidates on noise and, on a large split, misses nothing it should not. Each rule here asks
instead whether the candidate is *significantly* worse than its tolerance allows (one-sided, at the
policy's ``significance``), and says which test, the p-value and the row count.

Candidate and live are judged on the same rows, so the accuracy tests are paired: only the rows
where exactly one of them is right (the discordant rows) carry information (McNemar).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class TestResult:
    """One rule's test: small ``p_value``: the candidate breaks the rule beyond noise."""

    test: str
    p_value: float
    rows: int

    def significant(self, significance: float) -> bool:
        return self.p_value < significance

    def to_dict(self) -> dict:
        return asdict(self)


def paired_accuracy_test(
    candidate_correct: torch.Tensor, live_correct: torch.Tensor, min_delta: float
) -> TestResult:
    """H0: candidate accuracy − live accuracy ≥ ``min_delta``.

    McNemar's exact test, shifted by the tolerance: given D discordant rows of n, the boundary of
    H0 means a discordant row favours the candidate with probability p0 = 1/2 + n·min_delta/(2D);
    p = P(X ≤ c), X ~ Binomial(D, p0), c the rows only the candidate gets right. With
    ``min_delta`` 0 this is McNemar's one-sided exact test.
    """
    rows = len(candidate_correct)
    only_candidate = int((candidate_correct & ~live_correct).sum())
    discordant = only_candidate + int((live_correct & ~candidate_correct).sum())
    return TestResult(
        "mcnemar_exact", _shifted_mcnemar(rows, discordant, only_candidate, min_delta), rows
    )


def _shifted_mcnemar(rows: int, discordant: int, only_candidate: int, min_delta: float) -> float:
    from scipy.stats import binom  # here: scipy.stats costs a second of every process's start

    if discordant == 0:  # the same rows right: the delta is 0
        return 0.0 if min_delta > 0 else 1.0
    p0 = 0.5 + rows * min_delta / (2 * discordant)
    if p0 <= 0:  # even every discordant row going to live keeps the delta within the tolerance
        return 1.0
    if p0 >= 1:  # the delta the rule asks for is more than these rows can show
        return 0.0
    return float(binom.cdf(only_candidate, discordant, p0))


def proportion_above_test(events: int, rows: int, max_rate: float) -> TestResult:
    """H0: the rate of an event (a flipped label) is at most ``max_rate``; exact binomial."""
    from scipy.stats import binom

    if rows == 0:
        return TestResult("binomial_exact", 1.0, 0)
    return TestResult("binomial_exact", float(binom.sf(events - 1, rows, max_rate)), rows)


def proportion_below_test(successes: int, rows: int, min_rate: float) -> TestResult:
    """H0: a rate (a class's recall) is at least ``min_rate``; exact binomial."""
    from scipy.stats import binom

    if rows == 0:
        return TestResult("binomial_exact", 1.0, 0)
    return TestResult("binomial_exact", float(binom.cdf(successes, rows, min_rate)), rows)


def paired_mean_increase_test(
    candidate: torch.Tensor, live: torch.Tensor, max_increase: float
) -> TestResult:
    """H0: mean(candidate − live) ≤ ``max_increase`` (per-row negative log-likelihoods);
    one-sided paired t-test."""
    from scipy.stats import t as student_t

    rows = len(candidate)
    differences = (candidate.double() - live.double()).cpu()
    if rows < 2:
        return TestResult("paired_t", 1.0, rows)
    mean, spread = float(differences.mean()), float(differences.std())
    if spread == 0 or not math.isfinite(spread):
        return TestResult("paired_t", 0.0 if mean > max_increase else 1.0, rows)
    statistic = (mean - max_increase) / (spread / math.sqrt(rows))
    return TestResult("paired_t", float(student_t.sf(statistic, rows - 1)), rows)
