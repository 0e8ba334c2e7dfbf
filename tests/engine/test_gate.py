"""Gate arithmetic: each rule holds back a candidate built to break exactly that rule, only it."""

from __future__ import annotations

import pytest
import torch

from lure_engine.gate import GateEvaluation, PromotionPolicy, evaluate_on_gate, judge, margin

LABELS = torch.tensor([0] * 10 + [1] * 10)  # 20 gate samples, two classes


def _evaluation(predictions: list[int], ece: float = 0.05) -> GateEvaluation:
    predicted = torch.tensor(predictions)
    correct = predicted.eq(LABELS)
    return GateEvaluation(
        accuracy=float(correct.float().mean()),
        ece=ece,
        class_recall={c: float(correct[LABELS == c].float().mean()) for c in (0, 1)},
        predictions=predicted,
        count=len(LABELS),
    )


# live: 18/20 right, one error in each class (recall 0.9 / 0.9)
LIVE = _evaluation([0] * 9 + [1] + [1] * 9 + [0])

ALL_RULES = PromotionPolicy(
    min_accuracy_delta=-0.05,
    max_ece_increase=0.02,
    min_class_recall=0.75,
    max_class_recall_drop=0.15,
    max_flip_rate=0.2,
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
    # the same accuracy and recalls, the errors moved: 4 of 20 labels flip
    "max_flip_rate": _evaluation([1] + [0] * 9 + [0] + [1] * 9),
}

# where one candidate's other numbers sit on another rule's threshold, that threshold moves so
# the candidate satisfies it: every rule stays set, and only the targeted one is broken
OVERRIDES = {
    "min_class_recall": {"max_class_recall_drop": 0.25, "min_accuracy_delta": -0.06},
    "max_class_recall_drop": {"min_accuracy_delta": -0.06, "min_class_recall": 0.6},
    "max_flip_rate": {"max_flip_rate": 0.15},
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
        "max_flip_rate": "changed their predicted label",
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
    assert numbers["flip_rate"] == pytest.approx(0.1)
    assert numbers["live"]["accuracy"] == pytest.approx(0.9)
    assert verdict.to_dict()["verdict"] == "passed"
    assert margin(better, LIVE, "accuracy") == pytest.approx(0.1)
    assert margin(better, LIVE, "ece") == pytest.approx(0.02)


def test_without_a_live_version_only_the_absolute_floor_applies():
    weak = _evaluation([1] * 20)  # class 0 recall 0
    assert judge(weak, None, PromotionPolicy()).passed
    held = judge(weak, None, PromotionPolicy(min_class_recall=0.5))
    assert not held.passed and "class 0" in held.reasons[0]


def test_the_default_policy_tolerates_one_point_and_no_more():
    assert PromotionPolicy().min_accuracy_delta == -0.01
    one_wrong_more = _evaluation([0] * 8 + [1, 1] + [1] * 9 + [0])  # −0.05
    assert not judge(one_wrong_more, LIVE, PromotionPolicy()).passed
    assert judge(LIVE, LIVE, PromotionPolicy()).passed


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
