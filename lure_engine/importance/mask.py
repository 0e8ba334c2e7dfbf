"""Turn per-parameter scores into one global keep-mask holding exactly the top-k fraction."""

from __future__ import annotations

import torch

Scores = dict[str, torch.Tensor]
Mask = dict[str, torch.Tensor]


def keep_count(total: int, keep_fraction: float) -> int:
    """round(k·n), the exact number of entries a mask keeps."""
    if not 0.0 < keep_fraction < 1.0:
        raise ValueError(f"keep fraction must lie in (0, 1), got {keep_fraction}")
    return int(round(keep_fraction * total))


def normalise(scores: Scores) -> Scores:
    """Divide by the global sum (the paper's s_j); ranking is unchanged, values become
    comparable.
    """
    total = sum(float(s.sum()) for s in scores.values())
    if total <= 0:
        return {name: torch.zeros_like(s) for name, s in scores.items()}
    return {name: s / total for name, s in scores.items()}


def top_k_mask(scores: Scores, keep_fraction: float) -> Mask:
    """Keep the globally highest-scoring round(k·n) entries.

    Ties are broken by position (parameter order, then flat index): the earlier entry is kept, so
    the mask is deterministic even when many scores are equal (e.g. all zero).
    """
    names = list(scores)
    flat = torch.cat([scores[name].detach().flatten().float().cpu() for name in names])
    count = keep_count(flat.numel(), keep_fraction)
    order = torch.sort(flat, descending=True, stable=True).indices
    keep_flat = torch.zeros(flat.numel(), dtype=torch.bool)
    keep_flat[order[:count]] = True
    mask, offset = {}, 0
    for name in names:
        size = scores[name].numel()
        mask[name] = keep_flat[offset : offset + size].view_as(scores[name]).to(scores[name].device)
        offset += size
    return mask
