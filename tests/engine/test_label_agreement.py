"""Agreement beyond chance and label mappings (issue 43 §3): the statistics the data gate uses for
a weak live model."""

from __future__ import annotations

import numpy as np
import pytest

from lure_engine.data_gate import AgreementEvidence, DataGatePolicy, Scored, judge_data
from lure_engine.label_agreement import (
    Agreement,
    above_chance_p,
    best_mapping,
    kappa_drop_p,
    mapping_p,
)

CLASSES = 10


def _weak_model(labels: np.ndarray, accuracy: float, rng) -> np.ndarray:
    """Right with probability ``accuracy``, otherwise a uniformly wrong class."""
    right = rng.random(len(labels)) < accuracy
    return np.where(right, labels, (labels + rng.integers(1, CLASSES, len(labels))) % CLASSES)


def test_kappa_is_agreement_beyond_what_the_marginals_give_by_chance():
    labels = np.array([0, 0, 1, 1])
    assert Agreement.of(labels, labels, 2).kappa == pytest.approx(1.0)
    assert Agreement.of(1 - labels, labels, 2).kappa == pytest.approx(-1.0)
    constant = Agreement.of(np.zeros(4, dtype=int), labels, 2)  # half right, by the marginals
    assert constant.accuracy == 0.5 and constant.kappa == pytest.approx(0.0)
    pooled = Agreement.of(labels, labels, 2) + constant
    assert (pooled.correct, pooled.rows, pooled.predicted) == (6, 8, (6, 2))


def test_a_model_at_20_percent_is_above_chance_and_a_shuffle_of_its_labels_is_not():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, 1250)
    predicted = _weak_model(labels, 0.2, rng)
    clean = Agreement.of(predicted, labels, CLASSES)
    shuffled = Agreement.of(predicted, rng.permutation(labels), CLASSES)
    assert above_chance_p(clean) < 1e-6 and above_chance_p(shuffled) > 0.01
    assert kappa_drop_p(shuffled, clean) < 1e-6 and kappa_drop_p(clean, clean) == 0.5


def test_a_class_index_mix_up_is_found_on_held_out_rows_and_a_shuffle_is_not():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, CLASSES, 1250)
    predicted = _weak_model(labels, 0.3, rng)
    moved = (labels + 3) % CLASSES
    mapping = best_mapping(predicted, moved, CLASSES)
    assert mapping is not None and mapping.moved == {(c + 3) % CLASSES: c for c in range(10)}
    assert mapping.agreement.accuracy == Agreement.of(predicted, labels, CLASSES).accuracy
    assert mapping_p(mapping) < 1e-6
    chance = best_mapping(predicted, rng.permutation(labels), CLASSES)
    assert chance is None or mapping_p(chance) > 0.001  # beats the labels only where it was fit
    assert best_mapping(predicted, labels, CLASSES) is None


@pytest.mark.parametrize("accuracy", [0.2, 0.6])
def test_the_gate_stops_a_shuffled_and_a_moved_megabatch_and_passes_a_clean_one(accuracy):
    rng = np.random.default_rng(2)
    recent_labels = rng.integers(0, CLASSES, 2500)
    recent = Agreement.of(_weak_model(recent_labels, accuracy, rng), recent_labels, CLASSES)
    labels = rng.integers(0, CLASSES, 1250)
    predicted = _weak_model(labels, accuracy, rng)
    verdicts = {}
    for name, given in (
        ("clean", labels),
        ("shuffled", rng.permutation(labels)),
        ("moved", (labels + 1) % CLASSES),
    ):
        evidence = AgreementEvidence(
            Agreement.of(predicted, given, CLASSES), recent, best_mapping(predicted, given, CLASSES)
        )
        new = Scored(int((predicted == given).sum()), len(given))
        old = Scored(recent.correct, recent.rows)
        verdicts[name] = judge_data(new, old, None, 0, DataGatePolicy(), evidence)
    assert not verdicts["clean"].out_of_line
    assert any("chance" in r or "mixed up" in r for r in verdicts["shuffled"].reasons)
    assert any("mixed up" in r for r in verdicts["moved"].reasons)
    assert not any("mixed up" in r for r in verdicts["shuffled"].reasons)
