"""A throughput and its reference measured in alternating rounds, compared round by round.

Why: on this shared 2-core machine the eager forward's speed drifts by a third within a minute
(967 to 1,536 images/s for the same batch two minutes apart), so a reference measured once, before
the load, can make the same server look 0.7x or 1.0x. Alternating short rounds of the reference
and the load puts both under the same drift, and the median of the per-round ratios ignores a
round that a neighbour's burst spoiled.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable


def paired_rounds(
    reference: Callable[[], float], load: Callable[[], dict], rounds: int, key: str
) -> dict:
    """``rounds`` × (``reference()`` then ``load()``); ``load()[key]`` over the reference.

    Returns the median load figures, the median reference, each round's ratio and their median.
    """
    references, loads = [], []
    for _ in range(rounds):
        references.append(reference())
        loads.append(load())
    ratios = [figures[key] / ref for figures, ref in zip(loads, references, strict=True)]
    median_load = {
        name: statistics.median(figures[name] for figures in loads)
        for name, value in loads[0].items()
        if isinstance(value, int | float)
    }
    return median_load | {
        "reference": statistics.median(references),
        "ratios": ratios,
        "ratio": statistics.median(ratios),
    }
