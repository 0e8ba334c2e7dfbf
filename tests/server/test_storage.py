import pytest

from lure_core.blobs import ChecksumMismatch, LocalBlobStore


@pytest.mark.parametrize(
    "key", ["../outside", "a/../../b", "/etc/passwd", "a//b", "name with space", ""]
)
def test_blob_keys_cannot_leave_the_store(tmp_path, key):
    with pytest.raises(ValueError, match="invalid blob key"):
        LocalBlobStore(tmp_path).write(key, b"x")


def test_writes_are_whole_and_reads_checked(tmp_path):
    store = LocalBlobStore(tmp_path)
    sha = store.write("models/1/a.bin", b"payload")
    assert store.read("models/1/a.bin", sha) == b"payload"
    assert not list(tmp_path.rglob(".tmp-*"))
    (tmp_path / "models/1/a.bin").write_bytes(b"payloaD")
    with pytest.raises(ChecksumMismatch, match="sha256"):
        store.read("models/1/a.bin", sha)
    with pytest.raises(ChecksumMismatch, match="missing"):
        store.read("models/1/none.bin", sha)
