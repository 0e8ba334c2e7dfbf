"""Forgetting strategies by name; adding one is a small module and one line in ``STRATEGIES``."""

from __future__ import annotations

from collections.abc import Callable

from lure_engine.forgetting.base import (
    RESET_SOURCES,
    ForgetContext,
    ForgettingStrategy,
    fresh_state,
)
from lure_engine.forgetting.baselines import ColdStart, WarmStart
from lure_engine.forgetting.dash import DirectionAwareShrinking
from lure_engine.forgetting.fire import FrobeniusIsometryReinit
from lure_engine.forgetting.l2_init import L2Init
from lure_engine.forgetting.llf import LaterLayerForgetting
from lure_engine.forgetting.lure import LureForgetting
from lure_engine.forgetting.shrink_perturb import ShrinkPerturb

STRATEGIES: dict[str, Callable[..., ForgettingStrategy]] = {
    "lure": LureForgetting,
    "shrink_perturb": ShrinkPerturb,
    "llf": LaterLayerForgetting,
    "warm": WarmStart,
    "cold": ColdStart,
    "dash": DirectionAwareShrinking,
    "l2_init": L2Init,
    "fire": FrobeniusIsometryReinit,
}

__all__ = [
    "RESET_SOURCES",
    "STRATEGIES",
    "ForgetContext",
    "ForgettingStrategy",
    "fresh_state",
    "make_strategy",
    "uses_importance_mask",
]


def make_strategy(name: str, **options) -> ForgettingStrategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name](**options)


def uses_importance_mask(name: str) -> bool:
    """Only LURE needs a keep-mask, so the others skip the (small) cost of estimating one."""
    return name == "lure"
