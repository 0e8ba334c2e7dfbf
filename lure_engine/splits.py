"""How a mega-batch is split into train and validation rows: one definition for the server and the
simulator, so the same rows in the same order give the same split in a benchmark and in production.
"""

from __future__ import annotations

import numpy as np

from lure_engine.seeding import derive_seed

VALIDATION_FRACTION = 0.1  # of every mega-batch, held out for validation and never trained on


def split_train_val(
    ids: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split; at least one validation sample whenever there are two or more samples."""
    shuffled = np.random.default_rng(seed).permutation(ids)
    n_val = int(round(val_fraction * len(ids)))
    if len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    return np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val])


def megabatch_split_seed(base_seed: int, index: int) -> int:
    """The recorded split seed of mega-batch ``index`` of a learner seeded with ``base_seed``."""
    return derive_seed(base_seed, "split", index) % 2**31


def split_megabatch(n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row positions of a mega-batch of ``n_samples`` rows."""
    return split_train_val(np.arange(n_samples), VALIDATION_FRACTION, seed)
