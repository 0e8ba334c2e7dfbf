"""Which candidate strategies ``strategy: auto`` still trains: with lineages, one significantly
behind the live lineage; without, one that lost the last K mega-batches in a row (``retire_after``).

Retiring a strategy lets the compute fall back to one candidate.

The record is the versions themselves: every sibling's gate record says whether it won its
mega-batch, so the win counts and the retirements can always be recomputed from the database.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.recipe import Recipe
from lure_core.records import MegaBatchRow, ModelRow, VersionRow
from lure_update.lineages import lineage_summary, raced_out, retired_on_evidence


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


def retired_strategies(session: Session, model_id: int, recipe: Recipe) -> set[str]:
    """Strategies ``auto`` no longer trains; never all of them. With lineages: those whose
    lineage is significantly behind the live one (``lure_update.lineages``); without: those that
    lost ``retire_after`` mega-batches in a row. Racing by halving: those the newest mega-batch's
    race left out."""
    model = session.get(ModelRow, model_id)
    if recipe.races:
        return raced_out(session, model, recipe) if model else set()
    limit = recipe.retire_losers_after
    if limit is None:
        return set()
    if recipe.own_lineages:
        retired = retired_on_evidence(session, model, recipe) if model else set()
        return retired if retired != set(recipe.candidates) else set()
    results = results_by_megabatch(session, model_id, ties_win=True)
    retired = {s for s in recipe.candidates if losses_in_a_row(results, s) >= limit}
    return retired if retired != set(recipe.candidates) else set()


def strategy_summary(session: Session, model_id: int, recipe: Recipe) -> dict:
    """Win counts, retirements, seconds per candidate and per-strategy gate accuracy by
    mega-batch: what the dashboard and ``GET /v1/models/{name}/strategies`` show."""
    rows = session.execute(
        select(MegaBatchRow.index, VersionRow)
        .join(MegaBatchRow, MegaBatchRow.id == VersionRow.megabatch_id)
        .where(VersionRow.model_id == model_id, VersionRow.gate.is_not(None))
        .order_by(MegaBatchRow.index, VersionRow.number)
    ).all()
    results = results_by_megabatch(session, model_id)
    standing = results_by_megabatch(session, model_id, ties_win=True)
    model = session.get(ModelRow, model_id)
    strategies = list(dict.fromkeys([*recipe.candidates, *(v.strategy for _, v in rows)]))
    curves: dict[str, list] = {s: [] for s in strategies}
    seconds: dict[str, list[float]] = {s: [] for s in strategies}
    for index, version in rows:
        gate = version.gate or {}
        candidate = (gate.get("numbers") or {}).get("candidate") or {}
        curves[version.strategy].append(
            {
                "megabatch": index,
                "version": version.number,
                "gate_accuracy": candidate.get("accuracy"),
                "verdict": gate.get("verdict"),
                "winner": bool(gate.get("winner")),
                "release": version.release,
            }
        )
        if version.candidate_seconds is not None:
            seconds[version.strategy].append(version.candidate_seconds)
    return {
        "candidates": list(recipe.candidates),
        "wins": {s: sum(1 for r in results.values() if r.get(s)) for s in strategies},
        "losses_in_a_row": {s: losses_in_a_row(standing, s) for s in strategies},
        "retired": sorted(retired_strategies(session, model_id, recipe)),
        "retire_after": recipe.retire_losers_after,
        "seconds_per_candidate": {s: (sum(v) / len(v) if v else None) for s, v in seconds.items()},
        "seconds_total": {s: sum(v) for s, v in seconds.items()},
        "curves": curves,
        "lineages": lineage_summary(session, model, recipe) if model else {"on": False},
    }
