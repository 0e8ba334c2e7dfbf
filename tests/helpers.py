"""Small factories shared by the API and integration tests."""

from __future__ import annotations

import io

import numpy as np

from service.images import encode_png_base64

DIGITS_MODEL = {
    "name": "digits", "architecture": "small_cnn", "width": 0.5, "num_classes": 10, "image_size": 8,
    "channels": 1, "strategy": "lure", "replay": "full", "megabatch_size": 300, "epochs": 8,
    "batch_size": 32, "lr": 0.05, "hflip": False,
}


def npz_body(x: np.ndarray, y: np.ndarray, **extra) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y, **extra)
    return buffer.getvalue()


NPZ = {"content-type": "application/octet-stream"}


def png_images(x: np.ndarray) -> list[str]:
    return [encode_png_base64(image) for image in x]
