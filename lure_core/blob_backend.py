"""Which blob store this process uses, chosen once from the settings: the data folder by default,
S3-compatible object storage when ``LURE_BLOB_URL`` is an ``s3://`` URL."""

from __future__ import annotations

from lure_core.blob_cache import ReadCache
from lure_core.blobs import BlobStore, LocalBlobStore
from lure_core.settings import SharedSettings


def open_blob_store(settings: SharedSettings) -> BlobStore:
    if not settings.blob_url:
        return LocalBlobStore(settings.blob_dir)
    from lure_core.object_store import S3BlobStore, make_s3_client

    client = make_s3_client(settings.s3_endpoint_url, settings.s3_timeout_seconds)
    # health checks ask once and briefly: "down" must be said within /readyz's bound
    checks = make_s3_client(settings.s3_endpoint_url, min(settings.s3_timeout_seconds, 1.0), 1)
    cache = ReadCache(settings.blob_cache_dir, settings.blob_cache_bytes)
    return S3BlobStore(settings.blob_url, client, cache, checks)
