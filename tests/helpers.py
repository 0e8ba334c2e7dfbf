"""Small factories shared by the API and integration tests."""

from __future__ import annotations

import numpy as np

from lure_client.client import encode_image, encode_npz
from service.demo import DEMO_MODEL

# the demo's digits model (small_cnn on 8x8 digits), with fewer epochs so tests train in seconds
DIGITS_MODEL = {**DEMO_MODEL, "name": "digits", "epochs": 8}


def npz_body(x: np.ndarray, y: np.ndarray, **extra) -> bytes:
    return encode_npz(x, y, compressed=False, **extra)


NPZ = {"content-type": "application/octet-stream"}


def png_images(x: np.ndarray) -> list[str]:
    return [encode_image(image) for image in x]
