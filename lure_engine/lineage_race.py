"""Which lineages ``auto`` keeps training: a race by successive halving on the newest evidence.

Why: the rule that wins flips with the training budget (DASH is 7 points behind warm-starting at
6 epochs an update and 6-9 ahead at long budgets; docs/BENCHMARKS.md), and a user should not have
to know which regime they are in. So ``auto`` starts every warm-family rule, scores them all on the
same rows after each mega-batch (their candidates on the gate rows, their heads on the new
mega-batch's rows before training on it), and keeps the better half, until one is left. Every rule
starts from the same first version (the first update has no parent to forget, so it trains once),
so with R rules halved after each mega-batch from ``first_cut`` on, the race costs at most
1 + R + ⌈R/2⌉ + ... updates' worth of extra steps, whatever the stream's length: with 5 rules and
full replay 1.5× one rule's steps over 8 mega-batches, with a fixed-size buffer 1.9× (the
bound and the measurements: docs/CHOOSING_A_STRATEGY.md).

A lineage significantly behind the leader on the newest evidence (McNemar's exact test at
``significance``) may be retired at once, before its turn ("less if the evidence allows").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lure_engine.lineage_evidence import Discordance, significantly_behind


@dataclass(frozen=True)
class Standing:
    """One lineage on one mega-batch's evidence: rows right of the rows every lineage was
    scored on, and its discordant rows against each other lineage."""

    right: int
    rows: int
    against: dict[str, Discordance]


def cut(
    alive: list[str],
    standings: dict[str, Standing],
    live: str | None,
    significance: float,
) -> list[str]:
    """The lineages that go on training after this round, in ``alive``'s order: the better half
    (ties: the live one first, then the earlier listed), less any the leader is significantly
    ahead of. Never empty; the live lineage is kept only while it ranks among the kept."""
    if len(alive) <= 1:
        return list(alive)
    order = {name: i for i, name in enumerate(alive)}
    ranked = sorted(alive, key=lambda s: (-standings[s].right, s != live, order[s]))
    leader = ranked[0]
    kept = ranked[: math.ceil(len(alive) / 2)]
    kept = [
        s
        for s in kept
        if s == leader or not significantly_behind(standings[s].against[leader], significance)
    ]
    return [s for s in alive if s in kept]
