"""The candidates of one mega-batch: which strategies train, where each starts, and which one's
version is offered to go live.

Without lineages (one strategy, or ``lineages: false``) every candidate starts from the live
version and the best on this mega-batch's gate rows is offered. With lineages each starts from its
own lineage's head (``lure_update.lineages``), and the live lineage's candidate is offered unless a
challenger's lineage is significantly ahead on the newest evidence: the two candidates (the
models that would go live) on the gate rows, and their heads on the new mega-batch's rows, scored
before training on them (``lure_engine.lineage_evidence``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch
from sqlalchemy.orm import Session

from lure_core.records import ModelRow, VersionRow
from lure_engine.gate import GateEvaluation, evaluate_on_gate
from lure_engine.lineage_evidence import Discordance, LineageChoice, choose_lineage, discordance
from lure_engine.lineage_race import Standing, cut
from lure_engine.pipeline import as_tensors
from lure_update.context import UpdateContext
from lure_update.damaged_versions import newest_intact
from lure_update.inputs import (
    StartingPoint,
    UpdateInputs,
    read_starting_point,
    starting_from,
    starting_model,
)
from lure_update.lineages import incumbent, lineage_heads


@dataclass
class Lineup:
    """Per strategy, the update it trains (its own starting point, the shared data), and the
    live lineage."""

    live: UpdateInputs  # from the live version: the data gate and the promotion gate judge on it
    strategies: tuple[str, ...]
    inputs: dict[str, UpdateInputs]
    own_lineages: bool
    incumbent: str | None = None


def _lineage_start(ctx: UpdateContext, head: VersionRow, live: StartingPoint) -> StartingPoint:
    """The head's weights, or its newest intact ancestor's; none intact: live."""
    if live.version is not None and head.number == live.version.number:
        return live
    found = newest_intact(ctx.sessions, head, partial(read_starting_point, ctx.blobs))
    return found.value if found.value is not None else live


def line_up(
    ctx: UpdateContext,
    session: Session,
    model: ModelRow,
    inputs: UpdateInputs,
    strategies: tuple[str, ...],
) -> Lineup:
    """Where each strategy starts, and the evidence the live pointer is moved on."""
    if not inputs.recipe.own_lineages:
        return Lineup(inputs, strategies, dict.fromkeys(strategies, inputs), own_lineages=False)
    heads = lineage_heads(session, model, strategies)
    per_strategy = {
        s: starting_from(session, inputs, _lineage_start(ctx, heads[s], inputs.start))
        if s in heads
        else inputs
        for s in strategies
    }
    live_lineage = incumbent(session, model, strategies)
    return Lineup(inputs, strategies, per_strategy, True, live_lineage)


def pairs(evaluations: dict[str, GateEvaluation]) -> dict[str, dict[str, Discordance]]:
    """Each model's discordant rows against every other one's (all scored on the same rows)."""
    return {
        this: {other: discordance(mine, theirs) for other, theirs in evaluations.items()}
        for this, mine in evaluations.items()
    }


def score_heads(lineup: Lineup, device: torch.device) -> dict[str, GateEvaluation]:
    """The lineages' heads scored on the new mega-batch's rows before anything trains on them:
    fresh rows every mega-batch, so the evidence summed over a stream counts each row once (the
    gate rows are reused from one mega-batch to the next). Heads that are one version (after an
    import or a promotion) are not scored: they agree on every row."""
    if not lineup.own_lineages:
        return {}
    starts = {s: inputs.start.version for s, inputs in lineup.inputs.items()}
    numbers = {v.number for v in starts.values() if v is not None}
    if any(v is None for v in starts.values()) or len(numbers) < 2:
        return {}
    inputs = lineup.live
    x, y = as_tensors(inputs.data.megabatch, device, inputs.recipe.preprocessing)
    scored: dict[int, GateEvaluation] = {}
    for strategy, version in starts.items():
        assert version is not None
        if version.number not in scored:
            model = starting_model(lineup.inputs[strategy]).to(device)
            scored[version.number] = evaluate_on_gate(model, x, y)
    return {s: scored[v.number] for s, v in starts.items() if v is not None}


@dataclass(frozen=True)
class RaceRound:
    """``auto``'s race after one mega-batch (``lure_engine.lineage_race``): the lineages that go
    on training, and the rows each got right of the rows all were scored on (the candidates on
    the gate rows, their heads on the new mega-batch's rows)."""

    alive: list[str]
    right: dict[str, int]
    rows: int

    def to_dict(self) -> dict:
        return {"alive": self.alive, "right": self.right, "rows": self.rows}


def race_round(
    lineup: Lineup, evaluations: dict[str, GateEvaluation], heads: dict[str, GateEvaluation]
) -> RaceRound | None:
    """None unless ``auto`` races its lineages by halving and more than one still trains; and
    not on the first update (nothing to forget yet: every rule trained the same weights)."""
    recipe = lineup.live.recipe
    if not (lineup.own_lineages and recipe.races) or len(lineup.strategies) < 2:
        return None
    if all(lineup.inputs[s].start.version is None for s in lineup.strategies):
        return None
    correct = {
        s: torch.cat([evaluations[s].correct, heads[s].correct])
        if heads
        else evaluations[s].correct
        for s in lineup.strategies
    }
    standings = {
        s: Standing(
            int(mine.sum()),
            len(mine),
            {
                o: Discordance(int((mine & ~c).sum()), int((c & ~mine).sum()))
                for o, c in correct.items()
                if o != s
            },
        )
        for s, mine in correct.items()
    }
    alive = cut(list(lineup.strategies), standings, lineup.incumbent, recipe.lineage_significance)
    rows = len(next(iter(correct.values())))
    return RaceRound(alive, {s: st.right for s, st in standings.items()}, rows)


def _against(mine: torch.Tensor, correct: dict[str, torch.Tensor], this: str) -> dict:
    return {
        other: Discordance(int((mine & ~theirs).sum()), int((theirs & ~mine).sum()))
        for other, theirs in correct.items()
        if other != this
    }


def offered(
    lineup: Lineup,
    evaluations: dict[str, GateEvaluation],
    fresh: dict[str, dict[str, Discordance]],
    rank_by: str,
    significance: float,
    race: RaceRound | None = None,
) -> tuple[str, LineageChoice | None]:
    """The strategy whose version is offered to go live (the gate still judges it against
    live), and, with lineages, the choice with its evidence: each challenger's discordant rows
    against the live lineage, the candidates' on the gate rows plus their heads' on the new
    mega-batch's (``fresh``). Two disjoint sets of rows neither model trained on, judged by the
    newest models: which lineage is ahead *now* (evidence summed over the whole stream kept the
    first lineage live long after the other overtook it)."""
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
    if race is not None and choice.leader not in race.alive:  # cut from the race: the best
        survivor = max(race.alive, key=lambda s: (race.right[s], -order.index(s)))
        choice = replace(choice, leader=survivor, switched=survivor != leader)
    return choice.leader, choice
