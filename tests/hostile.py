"""Hostile request bodies, built byte by byte: what a fuzzer or an attacker sends (issue 11)."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image, PngImagePlugin


def _png(array: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def png_text_bomb() -> bytes:
    """A 4 KB PNG whose zTXt chunk inflates to 4 MB, past Pillow's text limit."""
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "A" * (4 * 1024 * 1024), zip=True)
    return _png(np.zeros((8, 8), np.uint8), pnginfo=info)


def png_icc_bomb() -> bytes:
    """A PNG whose iCCP profile inflates to 8 MB."""
    return _png(np.zeros((8, 8, 3), np.uint8), icc_profile=b"\0" * (8 * 1024 * 1024))


def png_garbage_second_idat() -> bytes:
    """Half the image data, then a chunk whose header is garbage: Pillow raises SyntaxError."""
    data = _png(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))
    out, position = data[:8], 8
    while position < len(data):
        length = struct.unpack(">I", data[position : position + 4])[0]
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IDAT":
            half = body[: len(body) // 2]
            out += (
                struct.pack(">I", len(half))
                + kind
                + half
                + struct.pack(">I", zlib.crc32(kind + half))
            )
            out += struct.pack(">I", 64) + b"\x01\x02\x03\x04" + b"garbage!" * 8 + b"\0\0\0\0"
        else:
            out += data[position - 12 - length : position]
    return out


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _header_only(dtype: str, shape: tuple[int, ...]) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        header, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return header.getvalue()


def npz_declaring(x_shape: tuple[int, ...], n_labels: int | None = None) -> bytes:
    """An .npz whose headers declare uint8 x of ``x_shape`` and int64 y, but which carries
    no data.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", _header_only("|u1", x_shape))
        archive.writestr(
            "y.npy", _header_only("<i8", (n_labels if n_labels is not None else x_shape[0],))
        )
    return buffer.getvalue()


def npz_zip_bomb(samples: int, side: int) -> bytes:
    """A real zip bomb: ``samples`` all-zero RGB images of side ``side``, deflated ~1000:1,
    streamed.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "|u1", "fortran_order": False, "shape": (samples, side, side, 3)}
            )
            member.write(b"\x93NUMPY\x01\x00" + header.getvalue()[8:])
            block = bytes(side * side * 3)
            for _ in range(samples):
                member.write(block)
        archive.writestr("y.npy", npy_bytes(np.zeros(samples, np.int64)))
    return buffer.getvalue()
