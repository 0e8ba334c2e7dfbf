"""A bounded local read cache of object-store blobs, keyed by sha256, least recently used out first.

Why: every ``/predict`` model load, audit and update reads checkpoints and chunks that never
change once written; fetching them again from object storage on each read would cost a round
trip per blob and make the API depend on the store for what it already holds. Entries are named
by their sha256, so a cached blob is valid for every key that records that hash, and each hit is
re-hashed before use: a damaged cache file is dropped, never served.

Several processes on one host may share the folder; each keeps its own recency order and size
estimate, and a file another process evicted is simply a miss.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from lure_core.blobs import sha256_hex

_SHA = re.compile(r"^[0-9a-f]{64}$")


class ReadCache:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = Path(folder), max_bytes
        self._sizes: OrderedDict[str, int] = OrderedDict()  # least recently used first
        self._total = 0  # sum of _sizes, kept as entries come and go (an update reads thousands)
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        if max_bytes > 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._adopt_existing()

    def _adopt_existing(self) -> None:
        """Files left by an earlier run, oldest use first (a restart keeps a warm cache)."""
        found = []
        for path in self.folder.iterdir():
            if _SHA.match(path.name):
                stat = path.stat()
                found.append((stat.st_mtime, path.name, stat.st_size))
        for _, name, size in sorted(found):
            self._set(name, size)
        self._evict()

    def get(self, sha256: str) -> bytes | None:
        if self.max_bytes <= 0 or not _SHA.match(sha256):
            return None
        path = self.folder / sha256
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self._miss(sha256)
            return None
        if sha256_hex(data) != sha256:
            path.unlink(missing_ok=True)  # damaged on disk: never served
            self._miss(sha256)
            return None
        os.utime(path)  # recency survives a restart
        with self._lock:
            self.hits += 1
            self._set(sha256, len(data))
        return data

    def _miss(self, sha256: str) -> None:
        with self._lock:
            self.misses += 1
            self._total -= self._sizes.pop(sha256, 0)

    def put(self, sha256: str, data: bytes) -> None:
        """Keep ``data`` (already verified by the caller) unless it alone exceeds the bound."""
        if self.max_bytes <= 0 or len(data) > self.max_bytes or not _SHA.match(sha256):
            return
        descriptor, temp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(temp, self.folder / sha256)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        with self._lock:
            self._set(sha256, len(data))
        self._evict()

    def discard(self, sha256: str) -> None:
        """Drop an entry whose stored original turned out damaged: every later read then asks
        the store, and fails the same way on every host."""
        if not _SHA.match(sha256):
            return
        with self._lock:
            self._total -= self._sizes.pop(sha256, 0)
        (self.folder / sha256).unlink(missing_ok=True)

    def _set(self, sha256: str, size: int) -> None:
        """Record ``sha256`` as the most recently used entry (caller holds the lock or is
        still constructing)."""
        self._total += size - self._sizes.get(sha256, 0)
        self._sizes[sha256] = size
        self._sizes.move_to_end(sha256)

    def _evict(self) -> None:
        with self._lock:
            while self._sizes and self._total > self.max_bytes:
                name, size = self._sizes.popitem(last=False)
                self._total -= size
                (self.folder / name).unlink(missing_ok=True)

    @property
    def size(self) -> int:
        with self._lock:
            return self._total
