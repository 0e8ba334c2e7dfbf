"""Decode client images into the model's uint8 (N, H, W, C) layout, or say exactly what is wrong.

Base64 PNG/JPEG go through Pillow; arrays from ``.npz`` bodies are converted with the same rules,
the model's own (``lure_engine.preprocess.Preprocessing``: size, resize policy, grayscale ↔ RGB);
anything else is refused.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from PIL import Image

from lure_engine.preprocess import Preprocessing
from service.ingest.png_check import missing_png_rows


class ImageError(ValueError):
    """Input that cannot become model images; the message names the item and the problem."""


SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # the first bytes of every PNG and JPEG


def _format_of(raw: bytes) -> str | None:
    """What a refused file is, for its error message; None: nothing Pillow knows."""
    try:
        return Image.open(io.BytesIO(raw)).format
    except Exception:  # noqa: BLE001 - unidentifiable is an answer here, not a fault
        return None


def _open_image(raw: bytes, position: int, max_side: int) -> Image.Image:
    """Header first (format, size) and only then the pixels, so the side limit holds before
    decoding.
    """
    if not raw.startswith(SIGNATURES):
        if (detected := _format_of(raw)) is not None:
            raise ImageError(f"images[{position}] is {detected}, expected PNG or JPEG")
        raise ImageError(
            f"images[{position}] could not be decoded as PNG or JPEG (not an image file)"
        )
    # only the two accepted formats are tried: probing every plugin Pillow has was a third of
    # a 32x32 PNG's decode time
    image = Image.open(io.BytesIO(raw), formats=("PNG", "JPEG"))
    if min(image.size) < 1:
        raise ImageError(f"images[{position}] is {image.size[0]}x{image.size[1]}: it has no pixels")
    if max(image.size) > max_side:
        raise ImageError(
            f"images[{position}] is {image.size[0]}x{image.size[1]}, larger than the limit of "
            f"{max_side} pixels a side"
        )
    return image


def decode_base64_images(
    items: list[str],
    preprocessing: Preprocessing,
    max_side: int,
    max_decoded_bytes: int | None = None,
) -> np.ndarray:
    """JSON's base64 images: each item decoded, or :class:`ImageError` naming the first bad one."""
    raw = []
    for position, item in enumerate(items):
        try:
            raw.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise ImageError(f"images[{position}] is not valid base64") from None
    return decode_images(raw, preprocessing, max_side, max_decoded_bytes)


def decode_images(
    items: list[bytes],
    preprocessing: Preprocessing,
    max_side: int,
    max_decoded_bytes: int | None = None,
) -> np.ndarray:
    """Encoded PNG/JPEG files (uploads, raw bodies, decoded base64) → the model's images.

    Whatever a hostile file makes Pillow raise (a text chunk that inflates past Pillow's limit, a
    damaged compressed stream, a truncated file) is that item's 422, never a 500.
    """
    out, decoded_bytes = [], 0
    for position, raw in enumerate(items):
        try:
            image = _open_image(raw, position, max_side)
            decoded_bytes += image.size[0] * image.size[1] * 4
            if max_decoded_bytes is not None and decoded_bytes > max_decoded_bytes:
                raise ImageError(
                    f"images[{position}]: the chunk's images decode to more than "
                    f"{max_decoded_bytes} bytes, the limit; send fewer or smaller images"
                )
            image.load()
            # Pillow fills rows a short but well-formed stream lacks with zeros, silently
            if raw.startswith(SIGNATURES[0]) and (why := missing_png_rows(raw)) is not None:
                raise ImageError(f"images[{position}] is not a whole PNG: {why}")
            if image.mode not in ("1", "L", "P", "RGB", "RGBA", "LA", "I;16", "CMYK", "YCbCr"):
                raise ImageError(f"images[{position}] has unsupported mode {image.mode}")
            out.append(preprocessing.fit_image(image))
        except ImageError:
            raise
        except Exception as error:  # noqa: BLE001 - any decoder failure is the client's bad file
            reason = str(error).strip() or type(error).__name__
            raise ImageError(
                f"images[{position}] could not be decoded as PNG or JPEG ({reason})"
            ) from None
    return np.stack(out)


def fit_array_images(x: np.ndarray, preprocessing: Preprocessing, max_side: int) -> np.ndarray:
    """uint8 (N, H, W, C) or (N, H, W) → the model's (N, size, size, channels)."""
    if x.dtype != np.uint8:
        raise ImageError(f"x must be uint8, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ImageError(f"x must have shape (N, H, W, C), got {x.shape}")
    if min(x.shape[1:]) < 1:
        raise ImageError(f"images must be at least 1x1 pixels with a channel, got shape {x.shape}")
    if max(x.shape[1:3]) > max_side:
        raise ImageError(
            f"images are {x.shape[2]}x{x.shape[1]}, larger than the limit of {max_side} pixels "
            "a side"
        )
    have = x.shape[3]
    if have not in (1, 3):
        if x.shape[1] in (1, 3):
            raise ImageError(
                f"x has shape {tuple(x.shape)}: it looks channels-first (N, C, H, W); send "
                "(N, H, W, C), e.g. x.transpose(0, 2, 3, 1)"
            )
        raise ImageError(
            f"images have {have} channels; only 1 (grayscale) or 3 (RGB) can be converted"
        )
    return preprocessing.fit_array(x)
