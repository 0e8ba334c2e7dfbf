"""Blobs in S3-compatible object storage (AWS S3, SeaweedFS, MinIO, Ceph...), shared by every host.

Objects are content-addressed: the blob ``key`` with sha256 ``h`` is the object
``<prefix>/<key>/<h>``, so an object is never overwritten once a row may name it (a retried write
of different bytes lands beside it, and a reader always gets the bytes its row recorded), and a
listing says which hash each object holds (the orphan sweep needs no download). Reads are
verified by sha256 and go through a bounded local :class:`ReadCache`.

Why boto3 (``benchmarks/s3_clients.py``, ``docs/benchmarks/s3_clients.md``, against obstore and
s3fs on one SeaweedFS): obstore was faster on small objects (a 100 KiB chunk: put 3.1 against
6.2 ms, get 1.6 against 4.5 ms) and level on checkpoints (8 MiB: within 10 %), boto3 faster on
64 MiB gets; s3fs was never the fastest. A few milliseconds per chunk are small beside an
ingest request's decoding and checks, and boto3 is what MLflow's ``S3ArtifactRepository`` and
KServe's storage initializer use, brings the standard AWS credential chain (variables, profiles,
instance and pod roles) and typed errors this module classifies. obstore is the upgrade if
small-object latency ever dominates.

A connection error, a timeout or a 5xx/throttling answer raises :class:`ObjectStoreUnavailable`,
an infrastructure fault: ingest answers 503 with ``Retry-After``, an update is retried without
counting the attempt, and ``/predict`` keeps serving what it has loaded or cached.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlparse

from lure_core.blob_cache import ReadCache
from lure_core.blobs import (
    BlobStore,
    ChecksumMismatch,
    ObjectStoreUnavailable,
    StoredBlob,
    check_key,
    check_prefix,
    sha256_hex,
    verify,
)

T = TypeVar("T")
_THROTTLED = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


def parse_blob_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as (bucket, prefix without slashes at either end)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"LURE_BLOB_URL must look like s3://bucket/prefix, not {url!r}")
    prefix = parsed.path.strip("/")
    if prefix:
        check_key(prefix)
    return parsed.netloc, prefix


def _unavailable(error: Exception) -> bool:
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(error, ConnectionError | HTTPClientError):
        return True  # refused, reset, timed out (connect or read), closed mid-answer
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or error.response.get("Error", {}).get("Code") in _THROTTLED
    return False


def _missing(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and (
        str(error.response.get("Error", {}).get("Code")) in _MISSING
    )


class S3BlobStore(BlobStore):
    def __init__(self, url: str, client: Any, cache: ReadCache, check_client: Any = None) -> None:
        self.url, self.client, self.cache = url, client, cache
        self.bucket, self.prefix = parse_blob_url(url)
        self.check_client = check_client

    def for_checks(self) -> BlobStore:
        """The same store through a client that tries once with a short timeout: a health check
        must say "down" within its bound, not wait out the retries a write deserves."""
        if self.check_client is None:
            return self
        return S3BlobStore(self.url, self.check_client, self.cache)

    def describe(self) -> str:
        endpoint = getattr(self.client.meta, "endpoint_url", "")
        return f"the object store {self.url} at {endpoint}"

    def probe(self) -> None:
        """HEAD on the bucket: reachability and credentials, without a billed write per probe."""
        self._call("HEAD bucket", lambda: self.client.head_bucket(Bucket=self.bucket))

    def _object(self, key: str, sha256: str) -> str:
        return self._root() + f"{check_key(key)}/{sha256}"

    def _root(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _call(self, what: str, request: Callable[[], T]) -> T:
        try:
            return request()
        except Exception as error:
            if _unavailable(error):
                raise ObjectStoreUnavailable(
                    f"{self.describe()} did not answer {what}: {error}"
                ) from error
            raise

    def write(self, key: str, data: bytes) -> str:
        sha = sha256_hex(data)
        name = self._object(key, sha)
        self._call(
            f"PUT {name}",
            lambda: self.client.put_object(Bucket=self.bucket, Key=name, Body=data),
        )
        self.cache.put(sha, data)  # written here: the next read of it is local
        return sha

    def read(self, key: str, expected_sha256: str) -> bytes:
        cached = self.cache.get(expected_sha256)
        if cached is not None:
            return cached
        return self._fetch(key, expected_sha256)

    def verify_stored(self, key: str, expected_sha256: str) -> None:
        """The object itself, not the cache; a damaged object's cached copy is dropped, so
        this host no longer serves what no other host can read."""
        try:
            self._fetch(key, expected_sha256)
        except ChecksumMismatch:
            self.cache.discard(expected_sha256)
            raise

    def _fetch(self, key: str, expected_sha256: str) -> bytes:
        name = self._object(key, expected_sha256)
        try:
            answer = self._call(
                f"GET {name}", lambda: self.client.get_object(Bucket=self.bucket, Key=name)
            )
            data = self._call(f"GET {name}", answer["Body"].read)
        except ObjectStoreUnavailable:
            raise
        except Exception as error:
            if _missing(error):
                raise ChecksumMismatch(f"blob {key} is missing from {self.url}") from None
            raise
        self.cache.put(expected_sha256, verify(data, key, expected_sha256))
        return data

    def signature(self, key: str, expected_sha256: str) -> Hashable | None:
        name = self._object(key, expected_sha256)
        try:
            head = self._call(
                f"HEAD {name}", lambda: self.client.head_object(Bucket=self.bucket, Key=name)
            )
        except ObjectStoreUnavailable:
            raise
        except Exception as error:
            if _missing(error):
                return None
            raise
        return (head["ContentLength"], head.get("ETag"))

    def _list(self, prefix: str, **extra: Any) -> Iterator[dict]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._root() + prefix, **extra)
        iterator = iter(pages)
        while True:
            page = self._call(f"LIST {prefix}", lambda: next(iterator, None))
            if page is None:
                return
            yield page

    def entries(self, prefix: str = "") -> Iterator[StoredBlob]:
        root = self._root()
        for page in self._list(check_prefix(prefix)):
            for item in page.get("Contents", []):
                key, _, sha = item["Key"][len(root) :].rpartition("/")
                if key:
                    modified = item["LastModified"].timestamp()
                    yield StoredBlob(key, sha, int(item["Size"]), modified)

    def children(self, prefix: str) -> list[str]:
        """Folders holding at least one object: some servers (SeaweedFS) keep listing a folder
        whose objects were all deleted."""
        start = len(self._root() + check_prefix(prefix))
        names = []
        for page in self._list(prefix, Delimiter="/"):
            names += [p["Prefix"][start:].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return sorted(name for name in names if self._holds_objects(f"{prefix}{name}/"))

    def _holds_objects(self, prefix: str) -> bool:
        page = next(self._list(prefix, MaxKeys=1), {})
        return bool(page.get("Contents"))

    def delete(self, key: str) -> None:
        self._delete_objects(self._objects_of(f"{check_key(key)}/", exact=key))

    def discard(self, blob: StoredBlob) -> None:
        if blob.sha256 is None:
            raise ValueError(f"{blob.key}: an object-store entry always carries its sha256")
        self._delete_objects([self._object(blob.key, blob.sha256)])

    def delete_prefix(self, prefix: str) -> None:
        if not check_prefix(prefix):
            raise ValueError("refusing to delete every blob at once")
        self._delete_objects(self._objects_of(prefix))

    def _objects_of(self, prefix: str, exact: str | None = None) -> list[str]:
        root = self._root()
        names = [item["Key"] for page in self._list(prefix) for item in page.get("Contents", [])]
        if exact is not None:  # only <key>/<sha>, not the blobs of a longer key below it
            names = [n for n in names if n[len(root) :].rpartition("/")[0] == exact]
        return names

    def _delete_objects(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):  # S3's limit per DeleteObjects
            self._call(
                f"DELETE objects {start}..", partial(self._delete, names[start : start + 1000])
            )

    def _delete(self, names: list[str]) -> None:
        objects = {"Objects": [{"Key": n} for n in names], "Quiet": True}
        self.client.delete_objects(Bucket=self.bucket, Delete=objects)


def make_s3_client(endpoint_url: str | None, timeout: float, attempts: int = 3) -> Any:
    """A boto3 client with short timeouts: a dead store must fail fast enough for ingest to answer
    503 and for ``/predict`` to fall back on what it has, not hang a request thread."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
