"""Challenger lineages, read from the versions' records: where each strategy's next update starts,
which lineage is live, and the evidence pooled between lineages.

With ``lineages`` on (the default whenever more than one strategy trains), each strategy continues
its *own* versions: its next candidate starts from its lineage's head, the newest version of that
strategy since the last manual promotion that passed the gate against its own parent. A lineage
with no such version yet starts from the live version (after an import or a promotion every
lineage restarts there). The replay memory is the stream's, shared by every lineage, so lineages
differ only in where they start. Each version's gate record carries ``lineage``: its parent,
whether it extends its lineage, its discordant gate rows against each sibling, and its parent's
discordant rows against each sibling's parent on the new mega-batch (scored before training on
it: fresh rows every time), from which the evidence between two lineages is summed
(``lure_engine.lineage_evidence``).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.recipe import Recipe
from lure_core.records import JobRow, MegaBatchRow, ModelRow, VersionRow
from lure_engine.lineage_evidence import Discordance, ahead_test, behind_in_a_row


def epoch_versions(session: Session, model: ModelRow) -> list[VersionRow]:
    """Versions trained since the model's last manual promotion, oldest first."""
    return list(
        session.scalars(
            select(VersionRow)
            .join(JobRow, JobRow.megabatch_id == VersionRow.megabatch_id)
            .join(MegaBatchRow, MegaBatchRow.id == VersionRow.megabatch_id)
            .where(
                VersionRow.model_id == model.id,
                JobRow.promotion_epoch == model.promotion_epoch,
            )
            .order_by(MegaBatchRow.index, VersionRow.number)
        )
    )


def lineage_record(version: VersionRow) -> dict:
    return (version.gate or {}).get("lineage") or {}


def lineage_heads(session: Session, model: ModelRow, strategies: tuple[str, ...]) -> dict:
    """Strategy → the version its next candidate starts from (absent: start from live)."""
    heads: dict[str, VersionRow] = {}
    for version in epoch_versions(session, model):
        if version.strategy in strategies and lineage_record(version).get("extends"):
            heads[version.strategy] = version  # oldest first: the newest one stays
    return heads


def incumbent(session: Session, model: ModelRow, strategies: tuple[str, ...]) -> str | None:
    """The strategy whose lineage is live (None: imported weights, or a strategy no longer
    trained, are live: the next mega-batch's best candidate is chosen)."""
    if model.live_version is None:
        return None
    live = session.scalar(
        select(VersionRow.strategy).where(
            VersionRow.model_id == model.id, VersionRow.number == model.live_version
        )
    )
    return live if live in strategies else None


def pooled_evidence(
    session: Session, model: ModelRow, this: str, other: str
) -> tuple[Discordance, int]:
    """``this`` lineage against ``other`` over every mega-batch of the epoch on which both
    trained: the rows of each new mega-batch only one of their heads got right (scored before
    training on them), summed, and how many mega-batches that is."""
    total, megabatches = Discordance(), 0
    for version in epoch_versions(session, model):
        pair = (lineage_record(version).get("prequential_pairs") or {}).get(other)
        if version.strategy == this and pair is not None:
            total, megabatches = total + Discordance.from_dict(pair), megabatches + 1
    return total, megabatches


def newest_evidence(session: Session, model: ModelRow, this: str, other: str) -> list[Discordance]:
    """Per mega-batch of the epoch on which both trained, oldest first: ``this`` lineage's
    candidate against ``other``'s on the gate rows, plus their heads on the new mega-batch's rows
    (the evidence the live pointer moves on)."""
    out = []
    for version in epoch_versions(session, model):
        record = lineage_record(version)
        gate = (record.get("pairs") or {}).get(other)
        if version.strategy != this or gate is None:
            continue
        fresh = (record.get("prequential_pairs") or {}).get(other)
        heads = Discordance.from_dict(fresh) if fresh else Discordance()  # none: one version
        out.append(Discordance.from_dict(gate) + heads)
    return out


def retired_on_evidence(session: Session, model: ModelRow, recipe: Recipe) -> set[str]:
    """Lineages significantly behind the live one on each of the last ``retire_after``
    mega-batches' newest evidence: ``auto`` stops training them. Never the live lineage."""
    limit = recipe.retire_losers_after
    leader = incumbent(session, model, recipe.candidates)
    if limit is None or leader is None:
        return set()
    significance = recipe.lineage_significance
    return {
        strategy
        for strategy in recipe.candidates
        if strategy != leader
        and behind_in_a_row(newest_evidence(session, model, strategy, leader), significance)
        >= limit
    }


def raced_out(session: Session, model: ModelRow, recipe: Recipe) -> set[str]:
    """The lineages ``auto``'s race has left behind: every candidate not alive after the newest
    mega-batch of the epoch that recorded a race (``lure_update/lineup.py:race_round``)."""
    alive: list[str] | None = None
    for version in epoch_versions(session, model):  # oldest first: the newest record stays
        race = lineage_record(version).get("race")
        if race:
            alive = race["alive"]
    if alive is None:
        return set()
    return {s for s in recipe.candidates if s not in alive}


def lineage_summary(session: Session, model: ModelRow, recipe: Recipe) -> dict:
    """What the dashboard and ``GET /v1/models/{name}/strategies`` show of the lineages: the
    live one, each head, and each challenger's pooled evidence against the live one."""
    if not recipe.own_lineages:
        return {"on": False}
    strategies = recipe.candidates
    live = incumbent(session, model, strategies)
    evidence = {}
    for strategy in strategies:
        if live is None or strategy == live:
            continue
        pooled, megabatches = pooled_evidence(session, model, strategy, live)
        test = ahead_test(pooled).to_dict()
        behind = ahead_test(pooled.swapped()).p_value
        newest = newest_evidence(session, model, strategy, live)
        evidence[strategy] = {
            **pooled.to_dict(),
            "megabatches": megabatches,
            "p_ahead": test["p_value"],
            "p_behind": behind,
            "behind_in_a_row": behind_in_a_row(newest, recipe.lineage_significance),
        }
    heads = lineage_heads(session, model, strategies)
    return {
        "on": True,
        "race": "halving" if recipe.races else "evidence",
        "racing": [s for s in strategies if s not in raced_out(session, model, recipe)]
        if recipe.races
        else None,
        "live_lineage": live,
        "heads": {s: v.number for s, v in heads.items()},
        "evidence_against_live": evidence,
        "significance": recipe.lineage_significance,
        "switch_significance": recipe.lineage_switch_significance,
    }
