"""The blob interface every user of stored bytes goes through, and its embedded default: a local
folder with atomic writes (temp, fsync, rename) and sha256-checked reads.

Why an interface: chunks, checkpoints, masks, replay memories and exports must live where every
host can read them once the API and the workers run on different machines
(:mod:`lure_core.object_store` keeps them in S3-compatible storage). Both backends pass the same
contract tests (``tests/server/test_blob_stores.py``).

Keys are built by the server from ids, never from client strings, and are checked to stay inside
the store.
"""

from __future__ import annotations

import abc
import hashlib
import io
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def check_key(key: str) -> str:
    """``key`` if it is a relative path of plain names inside a blob folder; ValueError if it
    could name anything outside one (``..``, an absolute path, odd characters)."""
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A key prefix ending in ``/`` (a folder), or the empty prefix (everything)."""
    if prefix and not prefix.endswith("/"):
        raise ValueError(f"a blob prefix names a folder and ends with '/': {prefix!r}")
    if prefix:
        check_key(prefix[:-1])
    return prefix


class ChecksumMismatch(RuntimeError):
    """A blob is missing, truncated or altered: its sha256 does not match the record."""


class ObjectStoreUnavailable(RuntimeError):
    """The blob store cannot be reached or answers with a server error: an infrastructure fault,
    waited out and retried, never a damaged blob (``lure_core.infrastructure``)."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class StoredBlob:
    """One stored object: its key, its sha256 where the store's names carry it (object storage)
    or None (the folder, where only the rows know it), its size and when it was written."""

    key: str
    sha256: str | None
    size: int
    modified: float  # seconds since the epoch


class BlobStore(abc.ABC):
    """Write-once blobs named by the server; reads are checked against the recorded sha256."""

    @abc.abstractmethod
    def write(self, key: str, data: bytes) -> str:
        """Store ``data`` durably under ``key``; returns its sha256. Readers never see half a
        blob."""

    @abc.abstractmethod
    def read(self, key: str, expected_sha256: str) -> bytes:
        """The bytes stored under ``key``; ChecksumMismatch when missing or not ``expected``."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (nothing when it is absent)."""

    @abc.abstractmethod
    def signature(self, key: str, expected_sha256: str) -> Hashable | None:
        """Something that changes whenever the stored bytes may have changed (size, inode, mtime
        or ETag), None when nothing is stored: lets a verifier re-hash only changed blobs."""

    @abc.abstractmethod
    def entries(self, prefix: str = "") -> Iterator[StoredBlob]:
        """Every stored blob whose key starts with ``prefix`` (a folder ending in ``/``)."""

    @abc.abstractmethod
    def discard(self, blob: StoredBlob) -> None:
        """Remove exactly the object ``entries`` listed (not another one under the same key)."""

    @abc.abstractmethod
    def children(self, prefix: str) -> list[str]:
        """The names of the folders directly under ``prefix``."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under the folder ``prefix``."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the blobs live, in words (for logs, ``/readyz`` and errors)."""

    def bytes_under(self, prefix: str) -> int:
        return sum(entry.size for entry in self.entries(prefix))

    def for_checks(self) -> BlobStore:
        """This store as health checks use it (object storage: one try, a short timeout)."""
        return self

    def verify_stored(self, key: str, expected_sha256: str) -> None:
        """ChecksumMismatch unless the *stored* bytes match, whatever a cache holds: for a
        decision that trusts them again (a promotion). The folder has no cache: a read is that."""
        self.read(key, expected_sha256)

    def probe(self) -> None:
        """Raise unless the store can be reached and written now (``/readyz``)."""
        key = f"readiness/{uuid.uuid4().hex}"
        sha = self.write(key, b"ok")
        self.read(key, sha)
        self.delete(key)

    def write_arrays(self, key: str, **arrays: np.ndarray) -> str:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub: allow_pickle
        return self.write(key, buffer.getvalue())

    def read_arrays(self, key: str, expected_sha256: str) -> dict[str, np.ndarray]:
        """Never unpickles: object arrays in a blob are refused."""
        with np.load(io.BytesIO(self.read(key, expected_sha256)), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}


def verify(data: bytes, key: str, expected_sha256: str) -> bytes:
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise ChecksumMismatch(
            f"blob {key} has sha256 {actual[:12]}..., the record says {expected_sha256[:12]}..."
        )
    return data


class LocalBlobStore(BlobStore):
    """The embedded default: blobs as files under one folder (``DATA_DIR/blobs``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def describe(self) -> str:
        return f"the folder {self.root}"

    def write(self, key: str, data: bytes) -> str:
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
        return verify(data, key, expected_sha256)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def signature(self, key: str, expected_sha256: str) -> Hashable | None:
        try:
            stat = os.stat(self.path(key))
        except FileNotFoundError:
            return None
        return (stat.st_size, stat.st_ino, stat.st_mtime_ns)

    def _folder(self, prefix: str) -> Path:
        return self.root / check_prefix(prefix)

    def entries(self, prefix: str = "") -> Iterator[StoredBlob]:
        folder = self._folder(prefix)
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            try:
                stat = path.lstat()
            except FileNotFoundError:
                continue  # removed meanwhile
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                yield StoredBlob(key, None, stat.st_size, stat.st_mtime)

    def discard(self, blob: StoredBlob) -> None:
        self.delete(blob.key)

    def children(self, prefix: str) -> list[str]:
        folder = self._folder(prefix)
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def delete_prefix(self, prefix: str) -> None:
        if not check_prefix(prefix):
            raise ValueError("refusing to delete every blob at once")
        try:
            shutil.rmtree(self._folder(prefix))
        except FileNotFoundError:
            pass  # nothing stored there (or removed meanwhile)

    def bytes_under(self, prefix: str) -> int:
        return folder_bytes(self._folder(prefix))


def folder_bytes(folder: Path) -> int:
    """One ``scandir`` pass (each entry's type and size come with the listing, not a stat call
    apiece as with ``rglob``); a folder or file removed meanwhile counts as empty."""
    total = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        total += folder_bytes(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
    except (FileNotFoundError, NotADirectoryError):
        return 0
    return total
