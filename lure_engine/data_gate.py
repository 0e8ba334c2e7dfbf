"""The data gate: is a new mega-batch fit to train on, judged before any training?

Comparing a candidate with live cannot see a poisoned mega-batch when replay carries the model
through it. The live model can: it scores the new mega-batch (its prequential accuracy) and the
recent mega-batches it scored the same way; a mega-batch whose labels disagree with the model far
more than usual, beyond noise (a one-sided two-proportion test), is out of line. So is one the
live model agrees with no better than chance, or only once its labels are systematically mapped
to other classes, while it agrees beyond chance with the recent mega-batches
(``lure_engine/label_agreement.py``: the test that works for a weak model). Also flagged: a label
distribution far from the stream's (chi-square) and images already in the stream under another
label (a hash of the pixels).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from lure_engine.label_agreement import (
    Agreement,
    LabelMapping,
    above_chance_p,
    kappa_drop_p,
    mapping_p,
)

MODES = ("off", "warn", "quarantine")


def json_safe(value):
    """A record every database stores: NaN and infinities (an empty split's accuracy) become
    None, as PostgreSQL's JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


@dataclass(frozen=True)
class DataGatePolicy:
    """``mode``: ``quarantine`` (an out-of-line mega-batch is not trained on until an admin
    releases it), ``warn`` (recorded and logged, trained on) or ``off``. ``max_accuracy_drop``:
    how far the live model's accuracy on the new mega-batch may fall below its recent accuracy
    before the drop counts; ``significance``: the test's level (strict: a false quarantine stops
    a mega-batch). ``max_conflict_rate``: share of rows that repeat a stream image under another
    label. ``label_skew_significance``: the chi-square level that flags a label distribution."""

    mode: str = "quarantine"
    max_accuracy_drop: float = 0.15
    significance: float = 0.001
    max_conflict_rate: float = 0.05
    label_skew_significance: float = 0.001
    # agreement beyond chance: the live model must be above chance on the recent mega-batches at
    # ``skill_significance``; a new one whose kappa is below theirs at ``chance_level`` is out of
    # line when it is also consistent with chance (above chance only at p >= ``chance_level``) or
    # a label mapping brings it back (mapped kappa not below the recent at ``chance_level``, the
    # mapping better than the labels on held-out rows at ``significance``). Two conditions at
    # 0.01 together: a clean mega-batch would need the model to lose all its skill on it and
    # fall 2.3 standard errors below its reference (0 of every clean stream measured)
    skill_significance: float = 0.001
    chance_level: float = 0.01

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"data gate mode must be one of {MODES}, got {self.mode!r}")

    @classmethod
    def from_dict(cls, values: dict | None) -> DataGatePolicy:
        return cls(**(values or {}))


@dataclass(frozen=True)
class Scored:
    """How many rows the live model got right, of how many."""

    correct: int
    rows: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else float("nan")


@dataclass
class DataVerdict:
    """``out_of_line``: a reason to quarantine; ``flags``: recorded, never acted on alone."""

    reasons: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    @property
    def out_of_line(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict:
        return json_safe(asdict(self))


def accuracy_drop_p_value(new: Scored, recent: Scored, tolerance: float) -> float:
    """H0: recent accuracy − new accuracy ≤ ``tolerance`` (one-sided two-proportion z-test)."""
    from scipy.stats import norm  # here: scipy.stats costs a second of every process's start

    p_new, p_recent = new.accuracy, recent.accuracy
    variance = p_new * (1 - p_new) / new.rows + p_recent * (1 - p_recent) / recent.rows
    drop = p_recent - p_new
    if variance <= 0:
        return 0.0 if drop > tolerance else 1.0
    return float(norm.sf((drop - tolerance) / math.sqrt(variance)))


def label_skew_p_value(new_labels: np.ndarray, stream_labels: np.ndarray, classes: int) -> float:
    """Chi-square of the new labels against the stream's distribution (add-one smoothed)."""
    from scipy.stats import chisquare

    observed = np.bincount(new_labels, minlength=classes).astype(np.float64)
    stream = np.bincount(stream_labels, minlength=classes).astype(np.float64) + 1
    expected = stream / stream.sum() * observed.sum()
    return float(chisquare(observed, expected).pvalue)


def pixel_hashes(images: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in images]


def conflicting_labels(
    new_images: np.ndarray, new_labels: np.ndarray, stream: dict[bytes, int]
) -> int:
    """Rows whose exact pixels are already in the stream (``hash → label``) under another label."""
    return sum(
        1
        for digest, label in zip(pixel_hashes(new_images), new_labels.tolist(), strict=True)
        if digest in stream and stream[digest] != label
    )


@dataclass(frozen=True)
class AgreementEvidence:
    """The live model's predictions against the new mega-batch's labels and the recent ones',
    and the most agreeing label mapping on the new one (None: the identity)."""

    new: Agreement
    recent: Agreement | None
    mapping: LabelMapping | None


def _chance_or_mixup(evidence: AgreementEvidence, policy: DataGatePolicy) -> tuple[list, dict]:
    """A reason when the new labels agree with the live model only by chance or through a
    mapping, while the recent ones agree beyond chance; and the numbers behind it."""
    new, recent = evidence.new, evidence.recent
    numbers: dict = {"agreement": new.to_dict()}
    if recent is None:
        return [], numbers
    skill, drop = above_chance_p(recent), kappa_drop_p(new, recent)
    numbers |= {"recent_agreement": recent.to_dict(), "recent_above_chance_p": skill}
    numbers |= {"kappa_drop_p": drop, "above_chance_p": above_chance_p(new)}
    if skill >= policy.skill_significance or drop >= policy.chance_level:
        return [], numbers
    mapping = evidence.mapping
    if mapping is not None:
        mapped_drop, gain_p = kappa_drop_p(mapping.agreement, recent), mapping_p(mapping)
        numbers["mapping"] = mapping.to_dict() | {"kappa_drop_p": mapped_drop, "p": gain_p}
        if mapped_drop >= policy.chance_level and gain_p < policy.significance:
            return [
                f"its labels look systematically mixed up: read with {mapping.describe()}, "
                f"the live model agrees with them as with the recent mega-batches (kappa "
                f"{mapping.agreement.kappa:.3f} against {recent.kappa:.3f}; as labelled "
                f"{new.kappa:.3f}, p = {drop:.2g}): a class-index mix-up?"
            ], numbers
    if numbers["above_chance_p"] >= policy.chance_level:
        return [
            f"the live model agrees with its labels no more than chance would (kappa "
            f"{new.kappa:.3f} on {new.rows} rows) while it agrees beyond chance with the recent "
            f"mega-batches (kappa {recent.kappa:.3f}, p = {skill:.2g}; a drop with p = "
            f"{drop:.2g}): its labels look shuffled"
        ], numbers
    return [], numbers


def judge_data(
    new: Scored,
    recent: Scored | None,
    label_skew_p: float | None,
    conflicts: int,
    policy: DataGatePolicy,
    agreement: AgreementEvidence | None = None,
) -> DataVerdict:
    """The verdict on one mega-batch from what the live model and the stream say about it."""
    verdict = DataVerdict(numbers={"new": asdict(new), "conflicts": conflicts})
    if recent is not None and recent.rows and new.rows:
        p = accuracy_drop_p_value(new, recent, policy.max_accuracy_drop)
        verdict.numbers |= {"recent": asdict(recent), "accuracy_drop_p": p}
        drop = recent.accuracy - new.accuracy
        if drop > policy.max_accuracy_drop and p < policy.significance:
            verdict.reasons.append(
                f"the live model gets {new.accuracy:.1%} of its {new.rows} rows right against "
                f"{recent.accuracy:.1%} on the recent mega-batches (a drop of {drop:.1%}, more "
                f"than {policy.max_accuracy_drop:.0%}; p = {p:.2g}): its labels disagree with "
                "what the model learnt far more than usual"
            )
    if agreement is not None:
        reasons, numbers = _chance_or_mixup(agreement, policy)
        verdict.reasons += reasons
        verdict.numbers |= numbers
    if new.rows and conflicts / new.rows > policy.max_conflict_rate:
        verdict.reasons.append(
            f"{conflicts} of {new.rows} images are already in the stream under another label"
        )
    elif conflicts:
        verdict.flags.append(f"{conflicts} images are already in the stream under another label")
    if label_skew_p is not None:
        verdict.numbers["label_skew_p"] = label_skew_p
        if label_skew_p < policy.label_skew_significance:
            verdict.flags.append(
                f"its label distribution differs from the stream's (chi-square p = "
                f"{label_skew_p:.2g})"
            )
    return verdict
