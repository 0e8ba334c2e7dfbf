"""The blob interface's contract, run against both backends: the data folder and a real S3 server
(SeaweedFS from ``scripts/services.sh``). What one backend does, the other must do too."""

from __future__ import annotations

import io
import socket
import threading
import time

import numpy as np
import pytest

from lure_core.blob_backend import open_blob_store
from lure_core.blob_cache import ReadCache
from lure_core.blobs import ChecksumMismatch, LocalBlobStore, ObjectStoreUnavailable, sha256_hex
from lure_core.infrastructure import is_infrastructure_fault
from lure_core.object_store import S3BlobStore, make_s3_client, parse_blob_url
from lure_core.settings import SharedSettings
from tests.s3 import s3_environment


def _settings(tmp_path, monkeypatch, env: dict[str, str], **extra) -> SharedSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return SharedSettings(data_dir=tmp_path / "data", **extra)


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path, monkeypatch):
    if request.param == "folder":
        return LocalBlobStore(tmp_path / "blobs")
    return open_blob_store(_settings(tmp_path, monkeypatch, s3_environment()))


def _alter(store, key: str, sha: str, data: bytes) -> None:
    """Change the stored bytes behind the store's back (disk rot, a hand edit)."""
    if isinstance(store, LocalBlobStore):
        store.path(key).write_bytes(data)
        return
    store.client.put_object(Bucket=store.bucket, Key=store._object(key, sha), Body=data)
    (store.cache.folder / sha).unlink(missing_ok=True)


@pytest.mark.parametrize(
    "key", ["../outside", "a/../../b", "/etc/passwd", "a//b", "name with space", ""]
)
def test_keys_cannot_leave_the_store(store, key):
    with pytest.raises(ValueError, match="invalid blob key"):
        store.write(key, b"x")
    with pytest.raises(ValueError):
        store.delete_prefix(f"{key}/")


def test_reads_are_checked_against_the_recorded_sha256(store):
    sha = store.write("models/1/a.bin", b"payload")
    assert sha == sha256_hex(b"payload")
    assert store.read("models/1/a.bin", sha) == b"payload"
    _alter(store, "models/1/a.bin", sha, b"payloaD")
    with pytest.raises(ChecksumMismatch, match="sha256"):
        store.read("models/1/a.bin", sha)
    with pytest.raises(ChecksumMismatch, match="missing"):
        store.read("models/1/none.bin", sha)


def test_listing_sizes_and_deletion_by_key_and_by_folder(store):
    store.write("models/7/chunks/1.npz", b"x" * 300)
    store.write("models/7/versions/1/weights.safetensors", b"y" * 1000)
    store.write("models/7/versions/1/weights.safetensors.extra", b"z" * 7)
    store.write("models/8/chunks/1.npz", b"w" * 5)
    assert store.children("models/") == ["7", "8"]
    assert store.bytes_under("models/7/") == 1307
    assert store.bytes_under("models/99/") == 0
    keys = sorted(entry.key for entry in store.entries("models/7/"))
    assert keys == [
        "models/7/chunks/1.npz",
        "models/7/versions/1/weights.safetensors",
        "models/7/versions/1/weights.safetensors.extra",
    ]
    assert all(time.time() - e.modified < 600 for e in store.entries("models/7/"))
    store.delete("models/7/versions/1/weights.safetensors")  # not the longer key beside it
    assert store.bytes_under("models/7/") == 307
    store.delete("models/7/never-written")  # absent: nothing happens
    store.delete_prefix("models/7/")
    assert store.children("models/") == ["8"]
    with pytest.raises(ValueError, match="every blob"):
        store.delete_prefix("")


def test_signature_follows_the_stored_bytes(store):
    sha = store.write("models/1/a.bin", b"payload")
    first = store.signature("models/1/a.bin", sha)
    assert first is not None
    assert store.signature("models/1/absent.bin", sha) is None
    time.sleep(0.01)
    _alter(store, "models/1/a.bin", sha, b"another payload")
    assert store.signature("models/1/a.bin", sha) != first


def test_arrays_round_trip_and_pickles_are_refused(store):
    sha = store.write_arrays("models/1/c.npz", x=np.arange(6).reshape(2, 3), y=np.array([1, 2]))
    arrays = store.read_arrays("models/1/c.npz", sha)
    assert arrays["x"].tolist() == [[0, 1, 2], [3, 4, 5]] and arrays["y"].tolist() == [1, 2]
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"a": 1}], dtype=object))
    pickled = store.write("models/1/p.npz", buffer.getvalue())
    with pytest.raises(ValueError, match="pickle"):
        store.read_arrays("models/1/p.npz", pickled)


def test_probe_passes_on_a_reachable_store(store):
    store.probe()
    assert store.describe()


# --- object storage only -------------------------------------------------------------------


def _s3_store(tmp_path, monkeypatch, cache_bytes: int = 1 << 20) -> S3BlobStore:
    settings = _settings(tmp_path, monkeypatch, s3_environment(), blob_cache_bytes=cache_bytes)
    store = open_blob_store(settings)
    assert isinstance(store, S3BlobStore)
    return store


def _count_gets(store: S3BlobStore) -> list[str]:
    calls: list[str] = []
    store.client.meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: calls.append(params["url_path"])
    )
    return calls


def test_objects_are_content_addressed_and_never_overwritten(tmp_path, monkeypatch):
    store = _s3_store(tmp_path, monkeypatch)
    first = store.write("models/1/ck.bin", b"first bytes")
    second = store.write("models/1/ck.bin", b"second bytes")  # a retried write of other bytes
    names = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store._root())["Contents"]
    assert sorted(n["Key"].rsplit("/", 1)[1] for n in names) == sorted([first, second])
    store.cache.max_bytes = 0  # reads from the server itself
    assert store.read("models/1/ck.bin", first) == b"first bytes"
    assert store.read("models/1/ck.bin", second) == b"second bytes"
    assert {e.sha256 for e in store.entries("models/1/")} == {first, second}


def test_reads_come_from_the_local_cache_once_fetched(tmp_path, monkeypatch):
    writer = _s3_store(tmp_path / "writer", monkeypatch)
    sha = writer.write("models/1/ck.bin", b"c" * 1000)
    reader = _s3_store(tmp_path / "reader", monkeypatch)  # another host: its own empty cache
    reader.bucket, reader.prefix = writer.bucket, writer.prefix
    gets = _count_gets(reader)
    assert reader.read("models/1/ck.bin", sha) == b"c" * 1000
    assert reader.read("models/1/ck.bin", sha) == b"c" * 1000
    assert len(gets) == 1 and reader.cache.hits == 1
    (reader.cache.folder / sha).write_bytes(b"rotten")  # a damaged cache file is never served
    assert reader.read("models/1/ck.bin", sha) == b"c" * 1000
    assert len(gets) == 2


def test_the_cache_is_bounded_and_evicts_the_least_recently_used(tmp_path):
    cache = ReadCache(tmp_path / "cache", max_bytes=250)
    blobs = {name: name.encode() * 100 for name in ("a", "b", "c")}
    shas = {name: sha256_hex(data) for name, data in blobs.items()}
    cache.put(shas["a"], blobs["a"])
    cache.put(shas["b"], blobs["b"])
    assert cache.get(shas["a"]) == blobs["a"]  # a is now the most recent
    cache.put(shas["c"], blobs["c"])  # 300 bytes > 250: b goes
    assert cache.get(shas["b"]) is None
    assert cache.get(shas["a"]) == blobs["a"] and cache.get(shas["c"]) == blobs["c"]
    assert cache.size == 200
    restarted = ReadCache(tmp_path / "cache", max_bytes=150)  # a restart adopts and re-bounds
    assert restarted.size <= 150 and restarted.get(shas["c"]) == blobs["c"]
    cache.put(sha256_hex(b"x" * 400), b"x" * 400)  # bigger than the whole cache: not kept
    assert cache.size <= 250


def test_an_unreachable_store_is_an_infrastructure_fault(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    client = make_s3_client("http://127.0.0.1:9", timeout=1)  # the discard port: refused
    store = S3BlobStore("s3://lure-test/x", client, ReadCache(tmp_path / "cache", 0))
    for attempt in (
        lambda: store.write("models/1/a.bin", b"x"),
        lambda: store.read("models/1/a.bin", "0" * 64),
        store.probe,
        lambda: list(store.entries("models/")),
    ):
        with pytest.raises(ObjectStoreUnavailable) as raised:
            attempt()
        assert is_infrastructure_fault(raised.value)
        assert "127.0.0.1:9" in str(raised.value)


@pytest.fixture()
def silent_server():
    """A TCP server that accepts connections and never answers: an object store hung or slow."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_a_store_that_never_answers_fails_within_its_timeouts(tmp_path, monkeypatch, silent_server):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    client = make_s3_client(silent_server, timeout=0.5)
    store = S3BlobStore("s3://lure-test/x", client, ReadCache(tmp_path / "cache", 0))
    started = time.monotonic()
    with pytest.raises(ObjectStoreUnavailable) as raised:
        store.write("models/1/a.bin", b"x")
    # bounded by the timeout setting, not a hang: about 12 s here for 3 tries at 0.5 s with
    # botocore's backoff between them
    assert time.monotonic() - started < 40
    assert is_infrastructure_fault(raised.value)


@pytest.mark.parametrize("url", ["s3://", "file:///tmp/x", "s3://bucket/../up", "bucket/prefix"])
def test_a_bad_blob_url_is_refused_with_its_form(url):
    with pytest.raises(ValueError):
        parse_blob_url(url)
