"""Checkpoints and forget-masks as safetensors (no pickle), written atomically with a sha256."""

from __future__ import annotations

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from lure_core.blobs import BlobStore


def save_state(blobs: BlobStore, key: str, state: dict[str, torch.Tensor]) -> str:
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in state.items()}
    return blobs.write(key, save_safetensors(tensors))


def load_state(blobs: BlobStore, key: str, sha256: str) -> dict[str, torch.Tensor]:
    """Refuses (ChecksumMismatch) a file whose sha256 differs from the record before parsing it."""
    return load_safetensors(blobs.read(key, sha256))
