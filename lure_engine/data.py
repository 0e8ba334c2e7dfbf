"""Image datasets as plain uint8 arrays, and their conversion to normalised tensors.

Everything downstream (trainer, metrics, simulator, server) works on NHWC uint8 arrays plus int
labels: the same form the server stores chunks in, so a benchmark and a live update see identical
inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

# Fixed normalisation keeps a model usable on any future data without carrying dataset statistics.
PIXEL_MEAN, PIXEL_STD = 0.5, 0.25


@dataclass
class ImageArrays:
    """A labelled image set: ``x`` uint8 (N, H, W, C), ``y`` int64 (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"images must have shape (N, H, W, C), got {self.x.shape}")
        if self.x.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {self.x.dtype}")
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise ValueError(f"labels must have shape ({len(self.x)},), got {self.y.shape}")
        self.y = self.y.astype(np.int64)

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> ImageArrays:
        return ImageArrays(self.x[index], self.y[index])


@dataclass
class Dataset:
    """A source's train and held-out test images, and what augmentations keep labels true."""

    name: str
    train: ImageArrays
    test: ImageArrays
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    hflip: bool = True

    @property
    def channels(self) -> int:
        return self.train.x.shape[3]

    @property
    def image_size(self) -> int:
        return self.train.x.shape[1]


def to_tensor(x: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 NHWC → normalised float32 NCHW on ``device``.

    The result is a permuted view: NCHW in shape, NHWC in memory (channels_last strides). Forward
    passes run oneDNN's channels_last kernels on it, which are faster on the CPU; anything that
    back-propagates through it must first call :func:`for_backward`.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    tensor = tensor.permute(0, 3, 1, 2).float().div_(255.0)
    return tensor.sub_(PIXEL_MEAN).div_(PIXEL_STD)


def for_backward(x: torch.Tensor) -> torch.Tensor:
    """``x`` in plain NCHW memory, the layout every backward pass on the CPU must be fed.

    Fed a channels_last input while the weights are NCHW, torch 2.14.1's CPU backward runs
    oneDNN's brgemm convolution kernels (``brg_conv_bwd``), and on some CPUs and shapes these
    corrupt the heap and kill the process (``double free or corruption`` in SNIP and Fisher
    scoring; docs/RELIABILITY.md). The copy costs one pass over a batch; it is a no-op for inputs
    that are already NCHW.
    """
    return x.contiguous()


def load_digits_dataset(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images): always available, no download."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return Dataset(
        "digits",
        ImageArrays(x[train], y[train]),
        ImageArrays(x[test], y[test]),
        10,
        [str(d) for d in range(10)],
        hflip=False,
    )


def load_npz_dataset(path: str | Path) -> Dataset:
    """An ``.npz`` with uint8 ``x_train`` (N,H,W,C), ``y_train``, ``x_test``, ``y_test``.

    Loaded with ``allow_pickle=False``: a data file can never run code.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"dataset file not found: {path}")
    with np.load(path, allow_pickle=False) as archive:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in archive]
        if missing:
            raise ValueError(f"{path}: missing arrays {', '.join(missing)}")
        arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        names = [str(n) for n in archive["class_names"]] if "class_names" in archive else []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 3:  # (N, H, W) grayscale
            x = arrays[f"x_{split}"] = x[..., None]
        if x.ndim != 4 or x.dtype != np.uint8:
            raise ValueError(f"{path}: x_{split} must be uint8 (N,H,W,C), got {x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"{path}: y_{split} must have shape ({len(x)},), got {y.shape}")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise ValueError(f"{path}: train and test images differ in shape")
    num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    return Dataset(
        path.stem,
        ImageArrays(arrays["x_train"], arrays["y_train"]),
        ImageArrays(arrays["x_test"], arrays["y_test"]),
        num_classes,
        names,
    )


def load_cifar10_folder(root: str | Path) -> Dataset:
    """torchvision's CIFAR-10 folder (``cifar-10-batches-py``), for users who downloaded it.

    torchvision reads those batches with pickle, so only point this at a copy you trust.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root)
    if not (root / "cifar-10-batches-py").is_dir():
        raise ValueError(f"no CIFAR-10 folder (cifar-10-batches-py) under {root}")
    train = CIFAR10(str(root), train=True, download=False)
    test = CIFAR10(str(root), train=False, download=False)
    return Dataset(
        "cifar10",
        ImageArrays(train.data, np.asarray(train.targets)),
        ImageArrays(test.data, np.asarray(test.targets)),
        10,
        list(train.classes),
    )


def load_dataset(source: str) -> Dataset:
    """``digits`` | ``npz:PATH`` | ``cifar10:DIR``."""
    if source == "digits":
        return load_digits_dataset()
    kind, _, rest = source.partition(":")
    if kind == "npz" and rest:
        return load_npz_dataset(rest)
    if kind == "cifar10" and rest:
        return load_cifar10_folder(rest)
    raise ValueError(f"unknown dataset {source!r}; use digits, npz:PATH or cifar10:DIR")


def balanced_train_subset(dataset: Dataset, samples: int, seed: int = 0) -> Dataset:
    """``dataset`` with ``samples`` training images, the same number of each class (a seeded
    choice), and the whole test set: a smaller study at CPU scale that keeps the class balance."""
    per_class, classes = divmod(samples, dataset.num_classes)[0], dataset.num_classes
    if per_class < 1:
        raise ValueError(f"{samples} training samples are fewer than one per class")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(classes):
        rows = np.flatnonzero(dataset.train.y == label)
        if len(rows) < per_class:
            raise ValueError(f"class {label} has {len(rows)} training images, {per_class} asked")
        chosen.append(rng.choice(rows, per_class, replace=False))
    index = np.sort(np.concatenate(chosen))
    return Dataset(
        f"{dataset.name}[{len(index)}]",
        dataset.train.subset(index),
        dataset.test,
        dataset.num_classes,
        dataset.class_names,
        dataset.hflip,
    )
