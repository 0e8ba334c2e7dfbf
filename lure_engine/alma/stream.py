"""Split a training set into an ALMA stream of mega-batches, each split as the server splits a
sealed mega-batch (``lure_engine/splits.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lure_engine.splits import megabatch_split_seed, split_megabatch, split_train_val

__all__ = ["MegaBatch", "make_stream", "split_train_val"]


@dataclass(frozen=True)
class MegaBatch:
    index: int  # 1-based, as in the paper
    ids: np.ndarray  # every sample, in arrival order (the order a server would receive them)
    train_ids: np.ndarray
    val_ids: np.ndarray


def make_stream(
    n_samples: int, megabatches: int, seed: int, split_seed: int | None = None
) -> list[MegaBatch]:
    """Randomly divide ``n_samples`` ids into ``megabatches`` equal parts (the remainder is
    dropped).

    Each part is split as the server splits a sealed mega-batch: by row position within the part,
    with :func:`megabatch_split_seed` of ``split_seed`` (default: ``seed``).
    """
    if megabatches < 1:
        raise ValueError(f"megabatches must be at least 1, got {megabatches}")
    size = n_samples // megabatches
    if size < 2:
        raise ValueError(f"{n_samples} samples cannot fill {megabatches} mega-batches of 2 or more")
    order = np.random.default_rng(seed).permutation(n_samples)
    split_base = seed if split_seed is None else split_seed
    stream = []
    for index in range(1, megabatches + 1):
        members = order[(index - 1) * size : index * size]
        train_rows, val_rows = split_megabatch(size, megabatch_split_seed(split_base, index))
        stream.append(MegaBatch(index, members, members[train_rows], members[val_rows]))
    return stream
