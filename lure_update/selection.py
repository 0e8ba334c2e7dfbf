"""Who wins a mega-batch, which lineage is live, and who stops training: every such decision of
an update, in one place.

- **Offered to go live**: without lineages, the best candidate on this mega-batch's gate rows (by
  the policy's ``rank_by``; ties to the primary). With lineages, the live lineage's candidate
  unless another lineage is significantly ahead on the newest evidence, at the switch level
  (0.25): the two candidates on the gate rows plus their heads on the new mega-batch's rows,
  two disjoint sets of rows neither model trained on (evidence summed over the whole stream kept
  the first lineage live long after the other overtook it; docs/BENCHMARKS.md, issue 26). The
  promotion gate still judges the offered candidate against live.
- **Retirement**: ``auto``'s race by successive halving (default): after each mega-batch from the
  second, the better half of the lineages still training, by rows right of the rows all were
  scored on, less any the leader is significantly ahead of; the first update trains once for
  every rule (nothing to forget yet). With 5 rules that costs 1.5× one rule's optimiser steps
  over 8 mega-batches with full replay, 1.9× with a fixed-size buffer, whatever else happens.
  Or (``race: evidence``) a lineage significantly behind the live one on each of the last
  ``retire_after`` mega-batches' newest evidence, at the gate's strict level; without lineages,
  one that lost ``retire_after`` mega-batches in a row. Never every candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from sqlalchemy.orm import Session

from lure_core.recipe import Recipe
from lure_core.records import ModelRow
from lure_engine.gate import GateEvaluation
from lure_engine.lineage_evidence import (
    Discordance,
    ahead_test,
    discordance,
    significantly_behind,
)
from lure_update.lineage_records import (
    incumbent,
    losses_in_a_row,
    newest_evidence,
    newest_race,
    results_by_megabatch,
)
from lure_update.lineup import Lineup


@dataclass(frozen=True)
class LineageChoice:
    """The lineage to serve, and why: the evidence of each challenger against the incumbent,
    with its test."""

    leader: str
    incumbent: str | None
    switched: bool
    evidence: dict[str, dict]
    significance: float | None = None  # the level a challenger had to pass

    def to_dict(self) -> dict:
        return {
            "leader": self.leader,
            "incumbent": self.incumbent,
            "switched": self.switched,
            "evidence": self.evidence,
            "significance": self.significance,
        }


def choose_lineage(
    incumbent: str | None,
    evidence_vs_incumbent: dict[str, Discordance],
    significance: float,
    fallback: str,
) -> LineageChoice:
    """Keep the incumbent unless a challenger is significantly ahead of it (the most significant
    one wins); no incumbent (nothing of these lineages is live yet): ``fallback``."""
    if incumbent is None:
        return LineageChoice(fallback, None, False, {}, significance)
    tests = {name: ahead_test(evidence) for name, evidence in evidence_vs_incumbent.items()}
    record = {
        name: {**evidence_vs_incumbent[name].to_dict(), **test.to_dict()}
        for name, test in tests.items()
    }
    ahead = [
        name
        for name, test in tests.items()
        if test.significant(significance)
        and evidence_vs_incumbent[name].only_this > evidence_vs_incumbent[name].only_other
    ]
    if not ahead:
        return LineageChoice(incumbent, incumbent, False, record, significance)
    leader = min(ahead, key=lambda name: tests[name].p_value)
    return LineageChoice(leader, incumbent, True, record, significance)


def pairs(evaluations: dict[str, GateEvaluation]) -> dict[str, dict[str, Discordance]]:
    """Each model's discordant rows against every other one's (all scored on the same rows)."""
    return {
        this: {other: discordance(mine, theirs) for other, theirs in evaluations.items()}
        for this, mine in evaluations.items()
    }


@dataclass(frozen=True)
class Standing:
    """One lineage on one mega-batch's evidence: rows right of the rows every lineage was
    scored on, and its discordant rows against each other lineage."""

    right: int
    rows: int
    against: dict[str, Discordance]


def cut(
    alive: list[str], standings: dict[str, Standing], live: str | None, significance: float
) -> list[str]:
    """The lineages that go on training after a round, in ``alive``'s order: the better half
    (ties: the live one first, then the earlier listed), less any the leader is significantly
    ahead of. Never empty; the live lineage stays only while it ranks among the kept."""
    if len(alive) <= 1:
        return list(alive)
    order = {name: i for i, name in enumerate(alive)}
    ranked = sorted(alive, key=lambda s: (-standings[s].right, s != live, order[s]))
    leader = ranked[0]
    kept = [
        s
        for s in ranked[: math.ceil(len(alive) / 2)]
        if s == leader or not significantly_behind(standings[s].against[leader], significance)
    ]
    return [s for s in alive if s in kept]


@dataclass(frozen=True)
class RaceRound:
    """``auto``'s race after one mega-batch: the lineages that go on training, and the rows each
    got right of the rows all were scored on."""

    alive: list[str]
    right: dict[str, int]
    rows: int

    def to_dict(self) -> dict:
        return {"alive": self.alive, "right": self.right, "rows": self.rows}


def standings(correct: dict[str, torch.Tensor]) -> dict[str, Standing]:
    """Each lineage's standing from which rows it got right (the same rows for all)."""
    return {
        s: Standing(
            int(mine.sum()),
            len(mine),
            {
                other: Discordance(int((mine & ~theirs).sum()), int((theirs & ~mine).sum()))
                for other, theirs in correct.items()
                if other != s
            },
        )
        for s, mine in correct.items()
    }


def race_round(
    lineup: Lineup, evaluations: dict[str, GateEvaluation], heads: dict[str, GateEvaluation]
) -> RaceRound | None:
    """The race after a mega-batch: the candidates on the gate rows and, when the lineages have
    heads of their own, those heads on the new mega-batch's rows. None unless ``auto`` races by
    halving and more than one lineage still trains; and not on the first update (nothing to
    forget yet: every rule trained the same weights)."""
    recipe, strategies = lineup.live.recipe, lineup.strategies
    if not (lineup.own_lineages and recipe.races) or len(strategies) < 2:
        return None
    if all(lineup.inputs[s].start.version is None for s in strategies):
        return None
    correct = {
        s: torch.cat([evaluations[s].correct, *([heads[s].correct] if heads else [])])
        for s in strategies
    }
    table = standings(correct)
    alive = cut(list(strategies), table, lineup.incumbent, recipe.lineage_significance)
    return RaceRound(alive, {s: st.right for s, st in table.items()}, len(correct[strategies[0]]))


def offered(
    lineup: Lineup,
    evaluations: dict[str, GateEvaluation],
    fresh: dict[str, dict[str, Discordance]],
    rank_by: str,
    significance: float,
    race: RaceRound | None = None,
) -> tuple[str, LineageChoice | None]:
    """The strategy whose version is offered to go live, and, with lineages, the choice with its
    evidence (``significance``: the switch level); a lineage the race cut gives way to the best
    one still racing."""
    order = list(lineup.strategies)
    best = max(order, key=lambda s: (evaluations[s].score(rank_by), -order.index(s)))
    if not lineup.own_lineages:
        return best, None
    leader = lineup.incumbent if lineup.incumbent in evaluations else None
    candidates = pairs(evaluations)
    evidence = {
        s: candidates[s][leader] + fresh.get(s, {}).get(leader, Discordance())
        for s in evaluations
        if leader is not None and s != leader
    }
    choice = choose_lineage(leader, evidence, significance, fallback=best)
    if race is not None and choice.leader not in race.alive:
        survivor = max(race.alive, key=lambda s: (race.right[s], -order.index(s)))
        choice = replace(choice, leader=survivor, switched=survivor != leader)
    return choice.leader, choice


def behind_in_a_row(newest: list[Discordance], significance: float) -> int:
    """On how many of the latest mega-batches in a row (``newest``: each one's evidence, oldest
    first) this lineage was significantly behind: the ``evidence`` race's retirement rule.
    Evidence summed over the stream retired warm-starting on one CIFAR-10 seed while it was 2
    points behind after mega-batch 6; alone it ended 1.55 points ahead (docs/BENCHMARKS.md)."""
    count = 0
    for evidence in reversed(newest):
        if not significantly_behind(evidence, significance):
            break
        count += 1
    return count


def retired_strategies(session: Session, model: ModelRow, recipe: Recipe) -> set[str]:
    """Strategies ``auto`` no longer trains (see the module's docstring); never all of them."""
    if recipe.races:
        alive = newest_race(session, model)
        return set() if alive is None else {s for s in recipe.candidates if s not in alive}
    limit = recipe.retire_losers_after
    if limit is None:
        return set()
    if recipe.own_lineages:
        leader = incumbent(session, model, recipe.candidates)
        retired = {
            strategy
            for strategy in recipe.candidates
            if leader is not None
            and strategy != leader
            and behind_in_a_row(
                newest_evidence(session, model, strategy, leader), recipe.lineage_significance
            )
            >= limit
        }
    else:
        results = results_by_megabatch(session, model.id, ties_win=True)
        retired = {s for s in recipe.candidates if losses_in_a_row(results, s) >= limit}
    return retired if retired != set(recipe.candidates) else set()
