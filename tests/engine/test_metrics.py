import pytest
import torch

from lure_engine.metrics import (
    evaluate_logits,
    expected_calibration_error,
    generalization_gap,
    reliability_bins,
)


def test_cer_is_the_running_sum_of_test_errors(cnn):
    from types import SimpleNamespace

    from lure_engine.metrics import measure_update

    result = SimpleNamespace(
        model=cnn,
        train=SimpleNamespace(seconds=0.0, epochs=1, steps=1),
        unlearn_seconds=0.0,
        reset_seconds=0.0,
        importance_seconds=0.0,
    )
    x, y = torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    cers = []
    for _ in range(3):  # each version adds its test errors to its parent's CER
        metrics = measure_update(
            result,
            train=(x, y),
            val=(x, y),
            test=(x, y),
            prequential_accuracy=0.0,
            parent_cer=cers[-1] if cers else 0,
        )
        cers.append(metrics.cer)
    assert cers == [metrics.test_errors, 2 * metrics.test_errors, 3 * metrics.test_errors]


def test_ece_matches_a_hand_computed_case():
    # confidences 0.95 (right), 0.91 (wrong) share bin (0.9, 1.0]; 0.65 (right) and 0.75 (wrong)
    # sit alone. ECE = sum over bins of |bin| / N * |accuracy - confidence|.
    probs = torch.tensor([[0.95, 0.05], [0.09, 0.91], [0.65, 0.35], [0.25, 0.75]])
    labels = torch.tensor([0, 0, 0, 0])
    expected = 2 / 4 * abs(0.5 - 0.93) + 1 / 4 * abs(1 - 0.65) + 1 / 4 * abs(0 - 0.75)
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(expected, abs=1e-6)


def test_evaluation_counts_errors_and_nll():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    result = evaluate_logits(logits, torch.tensor([0, 0, 0]))
    assert result.errors == 1 and result.count == 3
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.nll == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0, 0])))
    )


def test_generalization_gap_is_train_minus_validation():
    assert generalization_gap(0.98, 0.9) == pytest.approx(0.08)


def test_reliability_bins_partition_the_samples():
    probs = torch.softmax(torch.randn(200, 5, generator=torch.Generator().manual_seed(0)), 1)
    labels = torch.randint(0, 5, (200,), generator=torch.Generator().manual_seed(1))
    bins = reliability_bins(probs, labels, bins=10)
    assert sum(b["count"] for b in bins) == 200
    for b in bins:
        if b["count"]:
            assert b["low"] <= b["confidence"] <= b["high"]
