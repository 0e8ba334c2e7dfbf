"""Importance estimators: SNIP, Fisher, weight magnitude and random, behind one signature.

Every estimator maps (model, sample, parameter names) to a non-negative score per entry; a new
criterion is one function here and one line in ``ESTIMATORS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from lure_engine.data import for_backward
from lure_engine.importance.mask import Scores, normalise
from lure_engine.seeding import torch_generator

Estimator = Callable[..., Scores]


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int):
    """Mini-batches for a backward pass, in the memory layout a backward pass needs."""
    for start in range(0, len(x), batch_size):
        yield for_backward(x[start : start + batch_size]), y[start : start + batch_size]


def _params(model: nn.Module, names: list[str]) -> dict[str, nn.Parameter]:
    named = dict(model.named_parameters())
    return {name: named[name] for name in names}


def snip_scores(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: list[str], batch_size: int = 256, **_
) -> Scores:
    """SNIP saliency |∂L/∂m| = |g ⊙ θ|, with g the gradient of the mean loss over the sample.

    The model is scored in eval mode so BatchNorm statistics are neither used from the batch nor
    updated: scoring must not change the model it scores.
    """
    params = _params(model, names)
    grads = {name: torch.zeros_like(p) for name, p in params.items()}
    was_training = model.training
    model.eval()
    for xb, yb in _batches(x, y, batch_size):
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb, reduction="sum") / len(x)
        loss.backward()
        for name, p in params.items():
            if p.grad is not None:
                grads[name] += p.grad
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return normalise({name: (grads[name] * p.detach()).abs() for name, p in params.items()})


def fisher_scores(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: list[str], batch_size: int = 16, **_
) -> Scores:
    """Empirical Fisher diagonal: the mean over mini-batches of the squared mini-batch gradient.

    Per-sample gradients would be exact but cost one backward pass per sample; mini-batches of 16
    keep the estimate cheap enough to run after every update.
    """
    params = _params(model, names)
    squared = {name: torch.zeros_like(p) for name, p in params.items()}
    was_training = model.training
    model.eval()
    batches = 0
    for xb, yb in _batches(x, y, batch_size):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        for name, p in params.items():
            if p.grad is not None:
                squared[name] += p.grad.detach() ** 2
        batches += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return normalise({name: s / max(batches, 1) for name, s in squared.items()})


def magnitude_scores(model: nn.Module, x=None, y=None, names: Sequence[str] = (), **_) -> Scores:
    """|θ|: needs no data, the classic pruning criterion."""
    params = _params(model, list(names))
    return normalise({name: p.detach().abs() for name, p in params.items()})


def random_scores(
    model: nn.Module, x=None, y=None, names: Sequence[str] = (), seed: int = 0, **_
) -> Scores:
    """Uniform random scores from ``seed``: the control that keeps a random subset."""
    params = _params(model, list(names))
    generator = torch_generator(seed)
    return {
        name: torch.rand(p.shape, generator=generator).to(p.device) for name, p in params.items()
    }


ESTIMATORS: dict[str, Estimator] = {
    "snip": snip_scores,
    "fisher": fisher_scores,
    "magnitude": magnitude_scores,
    "random": random_scores,
}
