"""Step 2 of an update: train every candidate of a plan and judge it (the promotion gate, which
lineage is ahead). No database and no blob store: all it reads is in the plan
(``lure_update/plan.py``), all it decides is in the result, which
``lure_update/version_records.py`` stores and ``lure_update/publish.py`` publishes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import torch

from lure_core.model_store import VersionRef
from lure_engine.gate import (
    GateEvaluation,
    GateSplit,
    PromotionPolicy,
    Verdict,
    evaluate_on_gate,
    judge,
    split_gate,
)
from lure_engine.lineage_evidence import Discordance
from lure_engine.pipeline import MegaBatchUpdate, as_tensors
from lure_engine.trainer import Progress
from lure_engine.update import (
    trains_alike_without_parent,
    update_config_to_dict,
)
from lure_update.inputs import UpdateInputs
from lure_update.lineup import Lineup, score_heads
from lure_update.plan import UpdatePlan
from lure_update.selection import LineageChoice, RaceRound, offered, pairs, race_round
from lure_update.training import starting_model, train_candidate


class ProgressSink(Protocol):
    """Where a run reports its phase and training steps (``lure_update/progress.py`` writes them to
    the job; a test may keep them)."""

    candidate: dict

    def phase(self, name: str, **extra) -> None: ...

    def training(self, p: Progress) -> None: ...


@dataclass
class Candidate:
    """One strategy trained on the mega-batch, judged against the live version (and, in its own
    lineage, against its parent)."""

    strategy: str
    inputs: UpdateInputs  # what it trained from: its own starting point, the shared data
    update: MegaBatchUpdate
    evaluation: GateEvaluation
    verdict: Verdict
    seconds: float
    config: dict  # the resolved update configuration it was trained with (recorded)
    lineage: dict = field(default_factory=dict)  # parent, extends (recorded with lineages)


@dataclass
class AttemptResult:
    """What an attempt decided, before anything is stored: every candidate, the one offered to go
    live, the live version's gate scores, the lineage evidence and the choice made on it."""

    plan: UpdatePlan
    candidates: list[Candidate]
    best: int
    live: GateEvaluation | None
    fresh: dict[str, dict[str, Discordance]]  # the heads' discordant rows, before training
    choice: LineageChoice | None
    race: RaceRound | None = None  # auto's race after this mega-batch

    @property
    def winner(self) -> Candidate:
        return self.candidates[self.best]


def run_plan(plan: UpdatePlan, progress: ProgressSink) -> AttemptResult:
    """Train and judge every candidate; choose the one offered to go live."""
    heads = score_heads(plan.lineup, plan.device)  # before anything trains
    fresh = pairs(heads)
    candidates, live = _train_candidates(plan, progress)
    progress.candidate = {}
    evaluations = {c.strategy: c.evaluation for c in candidates}
    race = race_round(plan.lineup, evaluations, heads)
    best, choice = _winner(plan.lineup, candidates, fresh, plan.inputs.recipe.policy, race)
    return AttemptResult(plan, candidates, best, live, fresh, choice, race)


@dataclass
class _GateContext:
    """The gate rows and the live version's scores on them, shared by every candidate; its
    parents' scores, cached by version number (lineages share heads)."""

    gate: GateSplit
    live: GateEvaluation | None
    live_own: float | None
    device: torch.device
    live_version: VersionRef | None = None
    parents: dict[int, GateEvaluation] = field(default_factory=dict)

    def is_live(self, version: VersionRef | None) -> bool:
        live = self.live_version
        return version is None or (live is not None and version.number == live.number)

    def parent(self, inputs: UpdateInputs) -> GateEvaluation | None:
        """The candidate's own parent on the gate rows (the live version's when it is live)."""
        version = inputs.start.version
        if version is None or self.is_live(version):
            return self.live
        if version.number not in self.parents:
            model = starting_model(inputs).to(self.device)
            self.parents[version.number] = evaluate_on_gate(model, self.gate.x, self.gate.y)
        return self.parents[version.number]


def _gate_context(inputs: UpdateInputs, device: torch.device) -> _GateContext:
    recipe = inputs.recipe
    gate = split_gate(
        *as_tensors(inputs.data.val, device, recipe.preprocessing), inputs.data.val_own_rows
    )
    if inputs.start.version is None:
        return _GateContext(gate, None, None, device)
    start = starting_model(inputs).to(device)
    live_own = evaluate_on_gate(start, gate.own_x, gate.own_y).accuracy
    live = evaluate_on_gate(start, gate.x, gate.y)
    return _GateContext(gate, live, live_own, device, inputs.start.version)


def _train_candidates(
    plan: UpdatePlan, progress: ProgressSink
) -> tuple[list[Candidate], GateEvaluation | None]:
    """Each candidate from its starting point, on the same data and seeds
    (``lure_update.inputs.train_candidate``), judged on the gate split against live."""
    lineup = plan.lineup
    context = _gate_context(lineup.live, plan.device)
    candidates: list[Candidate] = []
    for number, strategy in enumerate(lineup.strategies, start=1):
        progress.candidate = {"candidate": strategy, "candidate_number": number}
        progress.candidate["candidates"] = len(lineup.strategies)
        progress.phase("unlearn")
        candidates.append(_train_one(plan, strategy, context, candidates, progress))
    return candidates, context.live


def _train_one(
    plan: UpdatePlan,
    strategy: str,
    context: _GateContext,
    trained: list[Candidate],
    progress: ProgressSink,
) -> Candidate:
    """Train (or reuse an identical sibling's weights), then judge against live and parent."""
    started = time.perf_counter()
    lineup = plan.lineup
    inputs = lineup.inputs[strategy]
    recipe, gate = inputs.recipe, context.gate
    config = plan.configs[strategy]
    sibling = _alike_sibling(plan, strategy, trained)
    device = context.device
    update = (
        sibling.update
        if sibling
        else train_candidate(inputs, strategy, device, progress.training, config=config)
    )
    # the same weights as a sibling's score the same: no second pass over the gate rows
    evaluation = sibling.evaluation if sibling else evaluate_on_gate(update.model, gate.x, gate.y)
    verdict = judge(evaluation, context.live, recipe.policy)
    own = (
        sibling.verdict.numbers["own_rows_accuracy"]["candidate"]
        if sibling
        else evaluate_on_gate(update.model, gate.own_x, gate.own_y).accuracy
    )
    verdict.numbers["gate_rows"] = gate.record()
    verdict.numbers["own_rows_accuracy"] = {"candidate": own, "live": context.live_own}
    if sibling:  # not trained again: the same weights as this sibling's
        verdict.numbers["same_weights_as"] = sibling.strategy
    lineage = _lineage_verdict(lineup, inputs, evaluation, verdict, context)
    seconds = time.perf_counter() - started
    config_record = update_config_to_dict(config)
    return Candidate(strategy, inputs, update, evaluation, verdict, seconds, config_record, lineage)


def _lineage_verdict(
    lineup: Lineup,
    inputs: UpdateInputs,
    evaluation: GateEvaluation,
    verdict: Verdict,
    context: _GateContext,
) -> dict:
    """With lineages: does this version extend its lineage, i.e. does it pass the gate against
    its own parent (what this strategy alone would have decided)?"""
    if not lineup.own_lineages:
        return {}
    parent = inputs.start.version
    own = verdict
    if not context.is_live(parent):
        own = judge(evaluation, context.parent(inputs), inputs.recipe.policy)
    record: dict = {"parent": parent.number if parent else None, "extends": own.passed}
    if own is not verdict:
        record["reasons_against_parent"] = own.reasons
    return record


def _alike_sibling(plan: UpdatePlan, strategy: str, trained: list[Candidate]) -> Candidate | None:
    """On a model's first mega-batch (no parent) lure, warm, dash … train the same weights: the
    first such sibling's update is published again under this strategy instead of retraining it
    (same sha256; the gate records the tie)."""
    if plan.lineup.inputs[strategy].start.version is not None:
        return None
    if not trains_alike_without_parent(plan.configs[strategy]):
        return None
    for sibling in trained:
        alike = trains_alike_without_parent(plan.configs[sibling.strategy])
        if alike and sibling.inputs.start.version is None:
            return sibling
    return None


def _winner(
    lineup: Lineup,
    candidates: list[Candidate],
    fresh: dict[str, dict[str, Discordance]],
    policy: PromotionPolicy,
    race: RaceRound | None,
) -> tuple[int, LineageChoice | None]:
    """The candidate offered to go live: the best by the policy's ranking metric (a tie goes to
    the primary strategy), or, with lineages, the live lineage's unless another is ahead."""
    evaluations = {c.strategy: c.evaluation for c in candidates}
    significance = lineup.live.recipe.lineage_switch_significance
    strategy, choice = offered(lineup, evaluations, fresh, policy.rank_by, significance, race)
    return [c.strategy for c in candidates].index(strategy), choice
