"""Disk use per model for the API, the dashboard and ``/metrics``, walked at most every few
seconds.

Why a cache: the number comes from walking the model's blob folder, which grows by a file per
chunk; at 5,000 files a walk took 25-40 ms here, and ``GET /v1/models`` (polled by the
dashboard) and every Prometheus scrape ask for every model's. Disk use changes slowly and
nothing decides on it, so a figure up to ``DISK_USE_SECONDS`` old is good enough.
"""

from __future__ import annotations

from lure_core.blobs import BlobStore
from lure_core.model_removal import model_disk_bytes
from service.serving.ttl_cache import TtlCache

DISK_USE_SECONDS = 10.0


class DiskUse:
    def __init__(self, blobs: BlobStore, ttl: float = DISK_USE_SECONDS) -> None:
        self.blobs = blobs
        self._bytes: TtlCache[int, int] = TtlCache(ttl)

    def of(self, model_id: int) -> int:
        """Bytes the model's blobs take, walked afresh once the last walk is ``ttl`` old."""
        cached = self._bytes.get(model_id)
        if cached is None:
            cached = model_disk_bytes(self.blobs, model_id)
            self._bytes.put(model_id, cached)
        return cached

    def forget(self, model_id: int) -> None:
        self._bytes.forget(model_id)
