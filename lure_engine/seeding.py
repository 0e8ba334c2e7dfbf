"""Seeded random sources, so every random choice of an update can be replayed from its seed.

torch is imported where it is used: ``derive_seed`` serves processes that never load torch.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (for code we do not control)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A private torch generator: our own draws never depend on global state."""
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def derive_seed(base: int, *labels: int | str) -> int:
    """A stable sub-seed for one purpose (e.g. "reinit", megabatch 3) of a base seed."""
    text = ":".join([str(base), *map(str, labels)])
    value = 1469598103934665603
    for byte in text.encode():
        value = ((value ^ byte) * 1099511628211) % 2**63
    return value
