"""Blob store on a local folder: atomic writes (temp, fsync, rename) and sha256-checked reads.

Keys are built by the server from ids, never from client strings, and are checked to stay inside
the root.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

import numpy as np

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def check_key(key: str) -> str:
    """``key`` if it is a relative path of plain names inside a blob folder; ValueError if it
    could name anything outside one (``..``, an absolute path, odd characters)."""
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class ChecksumMismatch(RuntimeError):
    """A blob is missing, truncated or altered: its sha256 does not match the record."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def write(self, key: str, data: bytes) -> str:
        """Write ``data`` durably under ``key``; returns its sha256. Readers never see half
        a file.
        """
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return sha256_hex(data)

    def read(self, key: str, expected_sha256: str) -> bytes:
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            raise ChecksumMismatch(f"blob {key} is missing") from None
        actual = sha256_hex(data)
        if actual != expected_sha256:
            raise ChecksumMismatch(
                f"blob {key} has sha256 {actual[:12]}..., the record says {expected_sha256[:12]}..."
            )
        return data

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def write_arrays(self, key: str, **arrays: np.ndarray) -> str:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub: allow_pickle
        return self.write(key, buffer.getvalue())

    def read_arrays(self, key: str, expected_sha256: str) -> dict[str, np.ndarray]:
        """Never unpickles: object arrays in a blob are refused."""
        with np.load(io.BytesIO(self.read(key, expected_sha256)), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
