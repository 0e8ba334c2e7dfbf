"""Gate arithmetic: each rule holds back a candidate built to break exactly that rule, only it."""

from __future__ import annotations

import pytest
import torch

from lure_engine.gate import GateEvaluation, PromotionPolicy, evaluate_on_gate, judge, margin

LABELS = torch.tensor([0] * 10 + [1] * 10)  # 20 gate samples, two classes


def _evaluation(
    predictions: list[int], ece: float = 0.05, nll: float = 0.3, labels: torch.Tensor = LABELS
) -> GateEvaluation:
    return GateEvaluation(
        labels=labels,
        predictions=torch.tensor(predictions),
        row_nll=torch.full((len(labels),), nll),
        ece=ece,
    )


# live: 18/20 right, one error in each class (recall 0.9 / 0.9)
LIVE = _evaluation([0] * 9 + [1] + [1] * 9 + [0])

ALL_RULES = PromotionPolicy(
    min_accuracy_delta=-0.05,
    max_ece_increase=0.02,
    min_class_recall=0.75,
    max_class_recall_drop=0.15,
    max_flip_rate=0.2,
    max_nll_increase=0.5,
    significance=None,  # plain thresholds: each rule's arithmetic, apart from its test
)

CANDIDATES = {
    # 16/20 right (−0.10) spread evenly: recall 0.8 each (floor ok, drop 0.1 ok), flips 4/20
    "min_accuracy_delta": _evaluation([0] * 8 + [1, 1] + [1] * 8 + [0, 0]),
    # the same predictions as live, calibration worse by 0.03
    "max_ece_increase": _evaluation([0] * 9 + [1] + [1] * 9 + [0], ece=0.08),
    # class 0 recall 0.7, under the floor (class 1 perfect): −0.05 accuracy, 3 flips
    "min_class_recall": _evaluation([0] * 7 + [1] * 3 + [1] * 10),
    # class 1 loses 0.2 recall (0.9 → 0.7) while class 0 gains: −0.05 accuracy, 3 flips
    "max_class_recall_drop": _evaluation([0] * 10 + [1] * 7 + [0] * 3),
    # the same accuracy and recalls, the errors moved: 4 of 20 labels flip, 2 of them to wrong
    "max_flip_rate": _evaluation([1] + [0] * 9 + [0] + [1] * 9),
    # the same predictions as live, each one far less sure of its label
    "max_nll_increase": _evaluation([0] * 9 + [1] + [1] * 9 + [0], nll=1.3),
}

# where one candidate's other numbers sit on another rule's threshold, that threshold moves so
# the candidate satisfies it: every rule stays set, and only the targeted one is broken
OVERRIDES = {
    "min_class_recall": {"max_class_recall_drop": 0.25, "min_accuracy_delta": -0.06},
    "max_class_recall_drop": {"min_accuracy_delta": -0.06, "min_class_recall": 0.6},
    "max_flip_rate": {"max_flip_rate": 0.05},
}


def _policy_for(rule: str) -> PromotionPolicy:
    return PromotionPolicy(**{**ALL_RULES.to_dict(), **OVERRIDES.get(rule, {})})


@pytest.mark.parametrize("rule", sorted(CANDIDATES))
def test_each_rule_holds_back_the_candidate_built_to_break_it_and_only_it(rule):
    verdict = judge(CANDIDATES[rule], LIVE, _policy_for(rule))
    assert not verdict.passed
    assert len(verdict.reasons) == 1, verdict.reasons
    keyword = {
        "min_accuracy_delta": "accuracy changed",
        "max_ece_increase": "ECE rose",
        "min_class_recall": "below the floor",
        "max_class_recall_drop": "recall dropped",
        "max_flip_rate": "changed their predicted label to a wrong one",
        "max_nll_increase": "log-likelihood rose",
    }[rule]
    assert keyword in verdict.reasons[0]
    # with that one rule off, the same candidate passes
    relaxed = PromotionPolicy(**{**_policy_for(rule).to_dict(), rule: None})
    assert judge(CANDIDATES[rule], LIVE, relaxed).passed


def test_numbers_are_recorded_and_a_better_candidate_passes():
    better = _evaluation([0] * 10 + [1] * 10, ece=0.03)
    verdict = judge(better, LIVE, ALL_RULES)
    assert verdict.passed and verdict.reasons == []
    numbers = verdict.to_dict()["numbers"]
    assert numbers["accuracy_delta"] == pytest.approx(0.1)
    assert numbers["flip_rate"] == pytest.approx(0.1)  # two rows changed, both to the right label
    assert numbers["harmful_flip_rate"] == 0
    assert numbers["live"]["accuracy"] == pytest.approx(0.9)
    assert verdict.to_dict()["verdict"] == "passed"
    assert margin(better, LIVE, "accuracy") == pytest.approx(0.1)
    assert margin(better, LIVE, "ece") == pytest.approx(0.02)


def test_without_a_live_version_only_the_absolute_floor_applies():
    weak = _evaluation([1] * 20)  # class 0 recall 0
    assert judge(weak, None, PromotionPolicy()).passed
    held = judge(weak, None, PromotionPolicy(min_class_recall=0.5))
    assert not held.passed and "class 0" in held.reasons[0]


def test_plain_thresholds_tolerate_one_point_and_no_more():
    plain = PromotionPolicy(significance=None)
    assert plain.min_accuracy_delta == -0.01
    one_wrong_more = _evaluation([0] * 8 + [1, 1] + [1] * 9 + [0])  # −0.05
    assert not judge(one_wrong_more, LIVE, plain).passed
    assert judge(LIVE, LIVE, plain).passed


def test_an_unknown_ranking_metric_is_refused():
    with pytest.raises(ValueError, match="rank_by"):
        PromotionPolicy(rank_by="loss")


def test_evaluate_on_gate_measures_a_real_model():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    x = torch.randn(50, 4)
    y = model(x).argmax(1)  # the model is right on every sample
    evaluation = evaluate_on_gate(model, x, y)
    assert evaluation.accuracy == 1.0
    assert set(evaluation.class_recall) == set(y.tolist())
    assert evaluation.predictions.equal(y)


# --- the default gate tests each rule against the noise of the rows it was measured on ---


def _paired(n: int, only_live: int, only_candidate: int, both: int) -> tuple:
    """Gate evaluations of live and a candidate on n rows of one class (label 0)."""
    labels = torch.zeros(n, dtype=torch.long)
    live = [0] * (only_live + both) + [1] * (n - only_live - both)
    candidate = [1] * only_live + [0] * both + [0] * only_candidate
    candidate += [1] * (n - len(candidate))
    return _evaluation(candidate, labels=labels), _evaluation(live, labels=labels)


def test_two_and_a_half_points_down_on_120_rows_is_noise_and_passes_by_default():
    # the demo's spurious hold: −2.5 points on a 120-row gate split
    candidate, live = _paired(120, only_live=8, only_candidate=5, both=80)
    verdict = judge(candidate, live, PromotionPolicy())
    assert candidate.accuracy - live.accuracy == pytest.approx(-0.025, abs=1e-6)
    assert verdict.passed, verdict.reasons
    test = verdict.numbers["tests"]["min_accuracy_delta"]
    assert test["test"] == "mcnemar_exact" and test["rows"] == 120 and test["p_value"] > 0.05
    # with plain thresholds the same candidate is held
    assert not judge(candidate, live, PromotionPolicy(significance=None)).passed


def test_the_same_drop_measured_on_many_rows_is_held_with_its_p_value():
    candidate, live = _paired(4000, only_live=300, only_candidate=100, both=2400)  # −5 points
    verdict = judge(candidate, live, PromotionPolicy())
    assert not verdict.passed
    assert "accuracy changed by -0.0500" in verdict.reasons[0] and "p = " in verdict.reasons[0]
    assert verdict.numbers["tests"]["min_accuracy_delta"]["p_value"] < 1e-6


def test_a_confidently_wrong_model_is_held_by_the_default_likelihood_rule():
    # an import's first update that collapsed: about as accurate, every answer sure and wrong
    live = _evaluation([0] * 9 + [1] + [1] * 9 + [0], nll=0.4)
    broken = _evaluation([0] * 9 + [1] + [1] * 9 + [0], nll=4.6)
    broken = GateEvaluation(broken.labels, broken.predictions, broken.row_nll + torch.rand(20), 0.8)
    verdict = judge(broken, live, PromotionPolicy())
    assert not verdict.passed and "log-likelihood rose" in verdict.reasons[0]


def test_a_default_flip_rule_holds_a_model_that_changed_most_answers():
    labels = torch.tensor([0, 1] * 100)
    live = _evaluation(labels.tolist(), labels=labels)
    shuffled = _evaluation((1 - labels).tolist()[:180] + labels.tolist()[180:], labels=labels)
    verdict = judge(shuffled, live, PromotionPolicy(min_accuracy_delta=None))
    assert not verdict.passed and "changed their predicted label" in verdict.reasons[0]


def test_the_shifted_mcnemar_test_is_mcnemars_at_zero_tolerance():
    from scipy.stats import binomtest

    from lure_engine.gate_statistics import paired_accuracy_test

    candidate, live = _paired(100, only_live=12, only_candidate=4, both=50)
    test = paired_accuracy_test(candidate.correct, live.correct, 0.0)
    expected = binomtest(4, 16, 0.5, alternative="less").pvalue
    assert test.p_value == pytest.approx(expected)
    # an impossible demand (+100 points) is rejected outright; any loss within tolerance is not
    assert paired_accuracy_test(candidate.correct, live.correct, 1.0).p_value == 0.0
    assert paired_accuracy_test(candidate.correct, live.correct, -0.5).p_value == 1.0


def test_a_significance_outside_zero_and_one_is_refused():
    with pytest.raises(ValueError, match="significance"):
        PromotionPolicy(significance=1.5)


def test_flips_that_fix_mistakes_never_hold_a_candidate():
    # live gets 2 of 20 right; the candidate changes 17 answers, every one to the right label
    weak_live = _evaluation([1] * 9 + [0] + [0] * 9 + [1])
    policy = PromotionPolicy(max_flip_rate=0.1, significance=None)
    fixed = judge(_evaluation([0] * 9 + [0] + [1] * 9 + [1]), weak_live, policy)
    assert fixed.passed and fixed.to_dict()["numbers"]["flip_rate"] == pytest.approx(0.9)
    # the same churn with three of the changed answers wrong holds it (3/20 > 0.1)
    mixed = judge(_evaluation([0] * 6 + [2] * 3 + [0] + [1] * 9 + [1]), weak_live, policy)
    assert not mixed.passed and "to a wrong one" in mixed.reasons[0]
