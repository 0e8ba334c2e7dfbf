"""What the versions' records say about the candidates and lineages of a model: read here,
decided on in ``lure_update/selection.py``.

With ``lineages`` on (the default whenever more than one strategy trains), each strategy continues
its *own* versions: its next candidate starts from its lineage's head, the newest version of that
strategy since the last manual promotion that passed the gate against its own parent. A lineage
with no such version yet starts from the live version (after an import or a promotion every
lineage restarts there). The replay memory is the stream's, shared by every lineage, so lineages
differ only in where they start. Each version's gate record carries ``lineage``: its parent,
whether it extends its lineage, its discordant gate rows against each sibling, its parent's
discordant rows against each sibling's parent on the new mega-batch (scored before training on
it: fresh rows every time), and ``auto``'s race after that mega-batch.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.model_store import live_version
from lure_core.records import JobRow, MegaBatchRow, ModelRow, VersionRow
from lure_engine.lineage_evidence import Discordance


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
    live = live_version(session, model)
    return live.strategy if live is not None and live.strategy in strategies else None


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


def newest_race(session: Session, model: ModelRow) -> list[str] | None:
    """The lineages ``auto``'s race kept after the newest mega-batch of the epoch that ran one."""
    alive: list[str] | None = None
    for version in epoch_versions(session, model):  # oldest first: the newest record stays
        race = lineage_record(version).get("race")
        if race:
            alive = race["alive"]
    return alive


def results_by_megabatch(
    session: Session, model_id: int, ties_win: bool = False
) -> dict[int, dict[str, bool]]:
    """Mega-batch index → {strategy: won} for every mega-batch trained with candidates;
    ``ties_win``: a tie with the winner counts too (for retirement: it lost nothing)."""
    rows = session.execute(
        select(MegaBatchRow.index, VersionRow.strategy, VersionRow.gate)
        .join(MegaBatchRow, MegaBatchRow.id == VersionRow.megabatch_id)
        .where(VersionRow.model_id == model_id, VersionRow.gate.is_not(None))
    ).all()
    results: dict[int, dict[str, bool]] = defaultdict(dict)
    for index, strategy, gate in rows:
        results[index][strategy] = bool(gate.get("winner") or (ties_win and gate.get("tied")))
    return dict(results)


def losses_in_a_row(results: dict[int, dict[str, bool]], strategy: str) -> int:
    """Losses since the strategy last won, counting only mega-batches it ran on."""
    count = 0
    for index in sorted(results, reverse=True):
        if strategy not in results[index]:
            continue
        if results[index][strategy]:
            break
        count += 1
    return count
