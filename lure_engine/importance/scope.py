"""Which parameters an importance estimator scores (and so which ones LURE may reset).

Explicit and configurable because resetting e.g. BatchNorm scales is a different intervention from
resetting connections; the paper scores connections, i.e. conv and linear weights. The paper's
public code does something in between (``all_scored_conv_reset``): every parameter competes for
the global threshold, but only conv and linear weights outside shortcut (``downsample``) branches
are ever reset.
"""

from __future__ import annotations

from torch import nn

SCOPES = ("conv_linear_weights", "weights", "all", "all_scored_conv_reset")


def scored_parameter_names(model: nn.Module, scope: str = "conv_linear_weights") -> list[str]:
    """Names of the parameters in ``scope``, in ``named_parameters`` order.

    - ``conv_linear_weights``: the ``weight`` of every Conv and Linear layer (default);
    - ``weights``: every parameter with two or more dimensions;
    - ``all``: every parameter, biases and normalisation affine terms included;
    - ``all_scored_conv_reset``: scores every parameter, like ``all``.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown parameter scope {scope!r}; choose one of {', '.join(SCOPES)}")
    if scope in ("all", "all_scored_conv_reset"):
        return [name for name, _ in model.named_parameters()]
    if scope == "weights":
        return [name for name, p in model.named_parameters() if p.dim() >= 2]
    names = []
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            names.append(f"{module_name}.weight" if module_name else "weight")
    return names


def resettable_parameter_names(model: nn.Module, scope: str = "conv_linear_weights") -> list[str]:
    """Names of the scored parameters a reset may change: all of them, except in
    ``all_scored_conv_reset``, where only conv and linear weights outside ``downsample`` branches.
    """
    if scope != "all_scored_conv_reset":
        return scored_parameter_names(model, scope)
    return [
        name
        for name in scored_parameter_names(model, "conv_linear_weights")
        if "downsample" not in name
    ]
