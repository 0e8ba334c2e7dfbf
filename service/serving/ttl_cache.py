"""A small thread-safe cache whose entries are trusted for ``ttl`` seconds.

Why: the API answers each /predict from facts that change rarely (who holds a key, which version
is live) but that other processes may change (``lure keys revoke``, a worker publishing, a
replica promoting). Asking the database every time cost more API CPU than a small model's
forward pass; trusting an answer for a second or two bounds how long another process's change
takes to reach this one. ``ttl`` 0 turns the cache off.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl: float, size: int = 1024) -> None:
        self.ttl, self.size = ttl, size
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value stored less than ``ttl`` seconds ago, else None."""
        if self.ttl <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, stored_at = entry
            if time.monotonic() - stored_at >= self.ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (value, time.monotonic())
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, key: K) -> None:
        """Drop one entry: this process changed what it caches."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class SingleFlightCache(TtlCache[K, V]):
    """A :class:`TtlCache` whose misses are loaded once, however many requests miss together.

    Why: when the live version's entry expires, every request in flight misses at the same
    moment; at 32 clients that was up to 32 identical database reads (and thread hops) once a
    second. Here the first miss loads, the others await its answer (or its error). A ``forget``
    while a load is running (this process just promoted) keeps that load's now-stale answer out of
    the cache.
    """

    def __init__(self, ttl: float, size: int = 1024) -> None:
        super().__init__(ttl, size)
        self._loading: dict[K, asyncio.Task] = {}
        self._generation: dict[K, int] = {}

    async def fetch(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, else ``await load()``, shared by every caller missing meanwhile.

        The load runs as its own task: a caller that goes away (its client disconnected) does not
        cancel the answer the others are waiting for."""
        if (hit := self.get(key)) is not None:
            return hit
        task = self._loading.get(key)
        if task is None:
            task = self._loading[key] = asyncio.ensure_future(self._load(key, load))
            task.add_done_callback(_retrieved)
        return await asyncio.shield(task)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        generation = self._generation.get(key, 0)
        try:
            value = await load()
        finally:
            del self._loading[key]
        if self._generation.get(key, 0) == generation:
            self.put(key, value)
        return value

    def forget(self, key: K) -> None:
        self._generation[key] = self._generation.get(key, 0) + 1
        super().forget(key)


def _retrieved(task: asyncio.Task) -> None:
    """Mark a failed load's error as seen: when every caller went away, nobody else will."""
    if not task.cancelled():
        task.exception()
