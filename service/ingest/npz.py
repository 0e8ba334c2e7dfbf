"""Read an uploaded ``.npz`` chunk safely: every limit is checked on the headers, before any data
is decompressed.

An ``.npz`` is a zip of ``.npy`` files, each with a small header declaring dtype and shape. A
hostile body can declare a 10 TB array, or compress a gigabyte of zeros into a megabyte (a zip
bomb); ``np.load`` would try to materialise either. Here the declared shapes are read first and
the arrays are decompressed only when they fit the limits, so decoding never holds more than the
limits allow.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with entries, an empty zip
NPY_MAGIC = b"\x93NUMPY"


class NpzError(ValueError):
    """The body is not an acceptable chunk; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChunkLimits:
    max_samples: int
    max_side: int
    max_decoded_bytes: int


@dataclass(frozen=True)
class Declared:
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def _header(archive: zipfile.ZipFile, name: str) -> Declared:
    with archive.open(name) as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise NpzError(f"{name} uses .npy format version {version}, which is not supported")
        except NpzError:
            raise
        except Exception as error:  # a damaged or hand-made header
            raise NpzError(f"{name} does not start with a valid .npy header: {error}") from None
    if dtype.hasobject:
        raise NpzError(
            f"{name[:-4]} holds pickled Python objects ({dtype}); only numeric arrays are accepted"
        )
    return Declared(tuple(int(d) for d in shape), dtype)


def _check_x(x: Declared, limits: ChunkLimits) -> None:
    if x.dtype != np.uint8:
        raise NpzError(f"x must be uint8 images, got {x.dtype}")
    if len(x.shape) not in (3, 4):
        raise NpzError(f"x must have shape (N, H, W, C) or (N, H, W), got {x.shape}")
    n, height, width = x.shape[:3]
    channels = x.shape[3] if len(x.shape) == 4 else 1
    if n == 0:
        raise NpzError("chunk is empty: send at least one image")
    if height < 1 or width < 1 or channels < 1:
        raise NpzError(f"images must be at least 1x1 pixels with a channel, got shape {x.shape}")
    if n > limits.max_samples:
        raise NpzError(f"chunk has {n} samples; the limit is {limits.max_samples}", 413)
    if max(height, width) > limits.max_side:
        raise NpzError(
            f"images are {width}x{height}, larger than the limit of {limits.max_side} pixels a side"
        )
    if x.nbytes > limits.max_decoded_bytes:
        raise NpzError(
            f"x declares {x.nbytes} bytes of pixels; the limit is {limits.max_decoded_bytes}", 413
        )


def _check_y(y: Declared, n: int) -> None:
    if len(y.shape) != 1 or not np.issubdtype(y.dtype, np.integer):
        raise NpzError(f"y must be a 1-d integer array, got {y.dtype} {y.shape}")
    if y.shape[0] != n:
        raise NpzError(f"x has {n} images but y has {y.shape[0]} labels")


def _read(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    with archive.open(name) as handle:
        try:
            return np.lib.format.read_array(handle, allow_pickle=False)
        except Exception as error:  # truncated data, a bad CRC, a corrupt deflate stream
            raise NpzError(f"{name[:-4]} could not be read: {error}") from None


def read_npz_chunk(body: bytes, limits: ChunkLimits) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from an ``.npz`` body holding exactly ``x`` and ``y``, or an :class:`NpzError`."""
    if body.startswith(NPY_MAGIC):
        raise NpzError(
            "body is a bare .npy array; send an .npz with arrays x and y "
            "(np.savez(f, x=..., y=...))"
        )
    if not body.startswith(ZIP_MAGIC):
        raise NpzError(
            "body is not a readable .npz archive (a zip of .npy files with arrays x and y)"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        names = sorted(info.filename for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise NpzError(f"body is not a readable .npz archive: {error}") from None
    if names != ["x.npy", "y.npy"]:
        found = [n[:-4] if n.endswith(".npy") else n for n in names]
        raise NpzError(f".npz must hold exactly the arrays 'x' and 'y', found {found}")
    with archive:
        x_declared = _header(archive, "x.npy")
        _check_x(x_declared, limits)
        _check_y(_header(archive, "y.npy"), x_declared.shape[0])
        return _read(archive, "x.npy"), _read(archive, "y.npy")
