"""Importance estimation: score parameters on a data sample, keep the global top-k as a mask."""

from __future__ import annotations

import torch
from torch import nn

from lure_engine.importance.estimators import ESTIMATORS
from lure_engine.importance.mask import Mask, keep_count, top_k_mask
from lure_engine.importance.scope import (
    SCOPES,
    resettable_parameter_names,
    scored_parameter_names,
)

__all__ = [
    "ESTIMATORS",
    "SCOPES",
    "Mask",
    "compute_keep_mask",
    "keep_count",
    "resettable_parameter_names",
    "scored_parameter_names",
    "top_k_mask",
]


def compute_keep_mask(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    estimator: str = "snip",
    keep_fraction: float = 0.8,
    scope: str = "conv_linear_weights",
    seed: int = 0,
) -> Mask:
    """Score ``model`` on (x, y) with ``estimator`` and keep the top ``keep_fraction`` entries.

    Scored parameters that ``scope`` never resets took part in the threshold but are kept whole.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(
            f"unknown importance estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}"
        )
    names = scored_parameter_names(model, scope)
    scores = ESTIMATORS[estimator](model, x, y, names=names, seed=seed)
    mask = top_k_mask(scores, keep_fraction)
    resettable = set(resettable_parameter_names(model, scope))
    return {
        name: keep if name in resettable else torch.ones_like(keep) for name, keep in mask.items()
    }
