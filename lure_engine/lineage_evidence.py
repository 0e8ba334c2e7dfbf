"""The statistics of lineage evidence: which rows two models disagree on, and whether one is
ahead beyond noise (the decisions made on them are ``lure_update/selection.py``'s).

With challenger lineages every strategy continues its own versions. On each mega-batch two kinds
of rows say which lineage is ahead now: the gate rows, on which the two candidates (the models
that would go live) are scored, and the new mega-batch's rows, on which their heads were scored
before anything trained on them. Only the rows where exactly one of two models is right (the
discordant rows) say anything; McNemar's exact test on their count says whether one lineage is
ahead beyond noise. The live pointer switches lineage on that test at a loose level (a switch is
undone by the next mega-batch's evidence). Retiring a lineage is a costlier step (it stops
training for good), so it needs the same newest evidence to put it significantly behind at the
gate's strict level on several mega-batches in a row.
"""

from __future__ import annotations

from dataclasses import dataclass

from lure_engine.gate import GateEvaluation
from lure_engine.gate_statistics import TestResult

DEFAULT_SIGNIFICANCE = 0.05  # when the promotion policy has none (plain thresholds)
# The live pointer's level. Switching is cheap and undone by the next mega-batch's evidence, so
# it may move on weaker evidence than retirement (which stops a lineage for good, at 0.05): at
# 0.05 the pointer stayed on a lineage 2.2 points behind (docs/BENCHMARKS.md, issue 26).
DEFAULT_SWITCH_SIGNIFICANCE = 0.25


@dataclass(frozen=True)
class Discordance:
    """Gate rows where exactly one of two models is right: ``only_this`` (this one) and
    ``only_other``; the rows both get right or both get wrong say nothing about which is ahead."""

    only_this: int = 0
    only_other: int = 0

    def __add__(self, other: Discordance) -> Discordance:
        return Discordance(self.only_this + other.only_this, self.only_other + other.only_other)

    def swapped(self) -> Discordance:
        return Discordance(self.only_other, self.only_this)

    def to_dict(self) -> dict:
        return {"only_this": self.only_this, "only_other": self.only_other}

    @classmethod
    def from_dict(cls, values: dict) -> Discordance:
        return cls(int(values["only_this"]), int(values["only_other"]))


def discordance(this: GateEvaluation, other: GateEvaluation) -> Discordance:
    """Both evaluated on the same gate rows (siblings of one mega-batch)."""
    a, b = this.correct, other.correct
    return Discordance(int((a & ~b).sum()), int((b & ~a).sum()))


def ahead_test(evidence: Discordance) -> TestResult:
    """H0: this lineage is no more accurate than the other; one-sided exact McNemar test,
    p = P(X ≥ only_this), X ~ Binomial(discordant rows, 1/2)."""
    from scipy.stats import binom  # here: scipy.stats costs a second of every process's start

    discordant = evidence.only_this + evidence.only_other
    if discordant == 0:
        return TestResult("mcnemar_exact_pooled", 1.0, 0)
    return TestResult(
        "mcnemar_exact_pooled", float(binom.sf(evidence.only_this - 1, discordant, 0.5)), discordant
    )


def significantly_behind(evidence: Discordance, significance: float) -> bool:
    """Is this lineage behind the other beyond noise on this evidence?"""
    return ahead_test(evidence.swapped()).significant(significance)
