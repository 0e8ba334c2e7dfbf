"""Is a PNG's pixel data all there? Pillow decodes a PNG whose compressed stream ends early
without complaint and leaves the missing rows black: a 74-byte file claiming 1024x1024 pixels
became an all-zero training sample. This reads the header and inflates the image data (at most
the size the header promises) to check that every row is present.
"""

from __future__ import annotations

import struct
import zlib

_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type → samples per pixel
# Adam7 passes: (x start, y start, x step, y step)
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def _expected_bytes(width: int, height: int, bits_per_pixel: int, interlaced: bool) -> int:
    """Filtered scanline bytes the header promises (one filter byte per row)."""

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits_per_pixel + 7) // 8)

    if not interlaced:
        return rows(width, height)
    return sum(
        rows((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in _ADAM7
    )


def _chunks(raw: bytes):
    position = 8
    while position + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[position : position + 8])
        yield kind, raw[position + 8 : position + 8 + length]
        position += 12 + length


def missing_png_rows(raw: bytes) -> str | None:
    """Why the PNG's pixel data is incomplete, or None when every row is there."""
    header, data = None, []
    for kind, body in _chunks(raw):
        if kind == b"IHDR" and len(body) == 13:
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            data.append(body)
    if header is None:
        return "it has no image header"
    width, height, depth, colour, _, _, interlace = header
    bits = _CHANNELS.get(colour, 1) * depth
    expected = _expected_bytes(width, height, bits, interlace == 1)
    inflater = zlib.decompressobj()
    try:
        produced = len(inflater.decompress(b"".join(data), expected + 1))
    except zlib.error as error:
        return f"its compressed pixel data is damaged ({error})"
    if produced < expected:
        return (
            f"it is truncated: its pixel data holds {produced} of the {expected} bytes its "
            f"{width}x{height} header promises"
        )
    return None
