"""Disk use is the bytes under the model's blob folder, walked at most once per cache time."""

import time

from lure_core.blobs import LocalBlobStore
from lure_core.model_removal import model_disk_bytes
from service.operations.disk_use import DiskUse


def _write(folder, name: str, size: int) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_disk_use_counts_nested_files_and_is_walked_again_only_after_its_cache_time(tmp_path):
    blobs = LocalBlobStore(tmp_path / "blobs")
    folder = blobs.root / "models" / "7"
    _write(folder, "chunks/1.npz", 300)
    _write(folder, "versions/1/weights.safetensors", 1000)
    _write(blobs.root / "models" / "8", "chunks/1.npz", 5)  # another model's files do not count
    (folder / "link").symlink_to(tmp_path / "blobs")  # a link is not followed
    assert model_disk_bytes(blobs, 7) == 1300
    assert model_disk_bytes(blobs, 99) == 0  # no folder yet

    disk = DiskUse(blobs, ttl=0.3)
    assert disk.of(7) == 1300
    _write(folder, "chunks/2.npz", 200)
    assert disk.of(7) == 1300  # within the cache time: the last walk's figure
    time.sleep(0.35)
    assert disk.of(7) == 1500
    _write(folder, "chunks/3.npz", 100)
    disk.forget(7)  # this process changed the folder (a model deleted): walked at once
    assert disk.of(7) == 1600
