"""The candidates of one mega-batch: which strategies train and where each starts, and their
heads scored on the new rows before training (the evidence ``lure_update/selection.py`` decides
on).

Without lineages (one strategy, or ``lineages: false``) every candidate starts from the live
version. With lineages each starts from its own lineage's head
(``lure_update/lineage_records.py``), or from its newest intact ancestor when the head is damaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from sqlalchemy.orm import Session

from lure_core.records import ModelRow, VersionRow
from lure_engine.gate import GateEvaluation, evaluate_on_gate
from lure_engine.pipeline import as_tensors
from lure_update.context import UpdateContext
from lure_update.damaged_versions import newest_intact
from lure_update.inputs import UpdateInputs, starting_from
from lure_update.lineage_records import incumbent, lineage_heads
from lure_update.starting_point import StartingPoint, read_starting_point
from lure_update.training import starting_model


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
