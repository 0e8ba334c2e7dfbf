"""Split a training set into an ALMA stream: t equal mega-batches, each split 90/10 train/val."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MegaBatch:
    index: int  # 1-based, as in the paper
    train_ids: np.ndarray
    val_ids: np.ndarray


def split_train_val(ids: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split; at least one validation sample whenever there are two or more samples."""
    shuffled = np.random.default_rng(seed).permutation(ids)
    n_val = int(round(val_fraction * len(ids)))
    if len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    return np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val])


def make_stream(n_samples: int, megabatches: int, seed: int, val_fraction: float = 0.1) -> list[MegaBatch]:
    """Randomly divide ``n_samples`` ids into ``megabatches`` equal parts (the remainder is dropped)."""
    if megabatches < 1:
        raise ValueError(f"megabatches must be at least 1, got {megabatches}")
    size = n_samples // megabatches
    if size < 2:
        raise ValueError(f"{n_samples} samples cannot fill {megabatches} mega-batches of 2 or more")
    order = np.random.default_rng(seed).permutation(n_samples)
    stream = []
    for i in range(megabatches):
        train_ids, val_ids = split_train_val(order[i * size : (i + 1) * size], val_fraction, seed + i + 1)
        stream.append(MegaBatch(i + 1, train_ids, val_ids))
    return stream
