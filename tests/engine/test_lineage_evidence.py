"""The rules that move the live pointer between lineages and retire a lineage (McNemar)."""

from __future__ import annotations

import torch

from lure_engine.gate import GateEvaluation
from lure_engine.lineage_evidence import (
    Discordance,
    ahead_test,
    discordance,
    significantly_behind,
)
from lure_update.selection import choose_lineage


def _evaluation(correct: list[bool]) -> GateEvaluation:
    labels = torch.zeros(len(correct), dtype=torch.long)
    predictions = torch.tensor([0 if c else 1 for c in correct])
    return GateEvaluation(labels, predictions, torch.zeros(len(correct)), 0.0)


def test_discordance_counts_only_rows_exactly_one_gets_right():
    this = _evaluation([True, True, False, False, True])
    other = _evaluation([True, False, True, False, False])
    assert discordance(this, other) == Discordance(only_this=2, only_other=1)
    assert discordance(other, this) == Discordance(2, 1).swapped()


def test_one_megabatch_is_not_enough_but_the_same_lead_pooled_over_many_is():
    one = Discordance(only_this=12, only_other=6)  # +6 rows of, say, 200: p ≈ 0.12
    assert not ahead_test(one).significant(0.05)
    pooled = one + one + one + one  # the same lead four mega-batches running
    assert ahead_test(pooled).significant(0.05)
    assert ahead_test(pooled).rows == 72


def test_the_exact_p_value_is_the_binomial_tail():
    # P(X >= 9 | n = 10, 1/2) = 11 / 1024
    assert abs(ahead_test(Discordance(9, 1)).p_value - 11 / 1024) < 1e-12
    assert ahead_test(Discordance(0, 0)).p_value == 1.0


def test_the_incumbent_stays_unless_a_challenger_is_significantly_ahead():
    close = {"warm": Discordance(30, 22)}
    stay = choose_lineage("lure", close, 0.05, fallback="warm")
    assert (stay.leader, stay.switched) == ("lure", False)
    assert stay.evidence["warm"]["only_this"] == 30 and stay.evidence["warm"]["p_value"] > 0.05
    ahead = {"warm": Discordance(40, 12), "dash": Discordance(25, 20)}
    moved = choose_lineage("lure", ahead, 0.05, fallback="dash")
    assert (moved.leader, moved.incumbent, moved.switched) == ("warm", "lure", True)


def test_a_significant_lead_of_the_incumbent_never_moves_the_pointer_to_the_challenger():
    behind = {"warm": Discordance(5, 40)}
    assert choose_lineage("lure", behind, 0.05, fallback="warm").leader == "lure"
    assert significantly_behind(Discordance(5, 40), 0.05)
    assert not significantly_behind(Discordance(40, 5), 0.05)


def test_without_an_incumbent_the_best_candidate_of_the_megabatch_is_chosen():
    choice = choose_lineage(None, {}, 0.05, fallback="warm")
    assert (choice.leader, choice.switched, choice.evidence) == ("warm", False, {})
