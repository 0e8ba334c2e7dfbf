"""Which device runs the work, chosen once per process (or per update) from a setting.

The same code runs on either device: callers move the model and each batch to the device this
returns, so there is no branch that only a GPU would take.
"""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def choose_device(name: str) -> torch.device:
    """``auto``: CUDA when present, else the CPU. ``cuda`` without a GPU is an error now, not a
    silent fall-back later."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for, but PyTorch sees no CUDA GPU")
    return device
