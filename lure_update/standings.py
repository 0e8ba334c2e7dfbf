"""What the dashboard and ``GET /v1/models/{name}/strategies`` show of a model's candidates and
lineages: win counts, seconds, retirements, the live lineage, each head, and the evidence
between lineages. Read from the versions' records; every decision they report is
``lure_update/selection.py``'s.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lure_core.recipe import Recipe
from lure_core.records import MegaBatchRow, ModelRow, VersionRow
from lure_engine.lineage_evidence import ahead_test
from lure_update.lineage_records import (
    incumbent,
    lineage_heads,
    losses_in_a_row,
    newest_evidence,
    pooled_evidence,
    results_by_megabatch,
)
from lure_update.selection import behind_in_a_row, retired_strategies


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
        "retired": sorted(retired_strategies(session, model, recipe) if model else []),
        "retire_after": recipe.retire_losers_after,
        "seconds_per_candidate": {s: (sum(v) / len(v) if v else None) for s, v in seconds.items()},
        "seconds_total": {s: sum(v) for s, v in seconds.items()},
        "curves": curves,
        "lineages": lineage_summary(session, model, recipe) if model else {"on": False},
    }


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
        "racing": [s for s in strategies if s not in retired_strategies(session, model, recipe)]
        if recipe.races
        else None,
        "live_lineage": live,
        "heads": {s: v.number for s, v in heads.items()},
        "evidence_against_live": evidence,
        "significance": recipe.lineage_significance,
        "switch_significance": recipe.lineage_switch_significance,
    }
