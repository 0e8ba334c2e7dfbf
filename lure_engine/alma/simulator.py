"""The ALMA simulator: run forgetting strategies through a mega-batch stream and record metrics.

For each (strategy, seed): the same initial model and the same stream for every strategy, and each
mega-batch updated and measured by :func:`lure_engine.pipeline.update_on_megabatch`, the function
the server's worker runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from lure_engine.alma.stream import MegaBatch, make_stream
from lure_engine.data import Dataset, ImageArrays, to_tensor
from lure_engine.devices import choose_device
from lure_engine.metrics import UpdateMetrics, evaluate
from lure_engine.models import ModelSpec, build_model
from lure_engine.pipeline import MegaBatchData, update_on_megabatch
from lure_engine.replay import make_replay
from lure_engine.robustness import symmetric_label_noise
from lure_engine.seeding import derive_seed, seed_everything
from lure_engine.trainer import Progress
from lure_engine.update import UpdateConfig, UpdateSeeds


@dataclass(frozen=True)
class AlmaConfig:
    model: str = "resnet18"
    width: float = 1.0
    strategies: tuple[str, ...] = ("warm", "lure")
    replay: str = "full"
    megabatches: int = 8
    seeds: tuple[int, ...] = (0,)
    label_noise: float = 0.0
    # Record test accuracy after every epoch (costs one test pass per epoch): compute-to-accuracy.
    epoch_curve: bool = False
    update: UpdateConfig = field(default_factory=UpdateConfig)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MegaBatchRecord(UpdateMetrics):
    """One mega-batch of a simulated stream: the update's metrics, plus where it sits in
    the stream.
    """

    index: int = 0
    epoch_test_accuracy: list[float] = field(default_factory=list)


# Called after each mega-batch with (strategy, seed, record); with trainer progress; with the model.
MegaBatchCallback = Callable[[str, int, MegaBatchRecord], None]
StepCallback = Callable[[str, int, int, Progress], None]
ModelCallback = Callable[[int, torch.nn.Module], None]


def _megabatch_data(
    train: ImageArrays,
    test: ImageArrays,
    megabatch: MegaBatch,
    replay_ids: np.ndarray,
    seen_val: np.ndarray,
) -> MegaBatchData:
    """The arrays the server would read for this mega-batch: its rows, replay first, val so far."""
    return MegaBatchData(
        megabatch=train.subset(np.concatenate([megabatch.train_ids, megabatch.val_ids])),
        train_split=train.subset(megabatch.train_ids),
        train=train.subset(np.concatenate([replay_ids, megabatch.train_ids]).astype(np.int64)),
        val=train.subset(seen_val),
        test=test,
        val_own_rows=len(megabatch.val_ids),
    )


def _stream_setup(
    dataset: Dataset, config: AlmaConfig, seed: int
) -> tuple[ModelSpec, list[MegaBatch], ImageArrays]:
    """The model spec, the mega-batch stream and the training arrays (labels noised if asked)."""
    spec = ModelSpec(
        config.model, dataset.num_classes, dataset.channels, dataset.image_size, config.width
    )
    stream = make_stream(
        len(dataset.train), config.megabatches, derive_seed(seed, "stream"), split_seed=seed
    )
    labels = dataset.train.y
    if config.label_noise > 0:
        noise_seed = derive_seed(seed, "noise")
        labels = symmetric_label_noise(labels, config.label_noise, dataset.num_classes, noise_seed)
    return spec, stream, ImageArrays(dataset.train.x, labels)


def run_stream(
    dataset: Dataset,
    config: AlmaConfig,
    strategy: str,
    seed: int,
    *,
    device: torch.device,
    on_megabatch: MegaBatchCallback | None = None,
    on_step: StepCallback | None = None,
    on_model: ModelCallback | None = None,
) -> list[MegaBatchRecord]:
    """One strategy, one seed, the whole stream, through the server's own update of a mega-batch.

    ``on_model(index, model)`` sees the model after each mega-batch (to save or test it).
    """
    seed_everything(seed)
    spec, stream, train = _stream_setup(dataset, config, seed)
    update_config = replace(config.update, strategy=strategy)
    model = build_model(spec, seed=derive_seed(seed, "init")).to(device)
    replay = make_replay(config.replay, seed=derive_seed(seed, "replay"))
    x_test, y_test = to_tensor(dataset.test.x, device), torch.from_numpy(dataset.test.y).to(device)
    mask, seen_val = None, np.empty(0, dtype=np.int64)
    records: list[MegaBatchRecord] = []
    momentum: dict[str, torch.Tensor] | None = None
    for megabatch in stream:
        seen_val = np.concatenate([seen_val, megabatch.val_ids])
        curve: list[float] = []

        def progress(p: Progress, index: int = megabatch.index) -> None:
            if on_step is not None:
                on_step(strategy, seed, index, p)

        def record_epoch(epoch: int, trained: torch.nn.Module, curve: list[float] = curve) -> None:
            curve.append(evaluate(trained, x_test, y_test).accuracy)

        update = update_on_megabatch(
            model,
            spec,
            mask,
            _megabatch_data(train, dataset.test, megabatch, replay.ids(), seen_val),
            has_parent=megabatch.index > 1,
            parent_cer=(records[-1].cer or 0) if records else 0,
            config=update_config,
            seeds=UpdateSeeds.derive(seed, megabatch.index),
            device=device,
            progress=progress,
            on_epoch_end=record_epoch if config.epoch_curve else None,
            momentum=momentum,
        )
        model, mask, momentum = update.model, update.next_mask, update.result.train.momentum
        replay.observe(megabatch.train_ids, train.y[megabatch.train_ids])
        record = MegaBatchRecord(
            **asdict(update.metrics), index=megabatch.index, epoch_test_accuracy=curve
        )
        records.append(record)
        if on_megabatch is not None:
            on_megabatch(strategy, seed, record)
        if on_model is not None:
            on_model(megabatch.index, model)
    return records


def run_alma(
    dataset: Dataset,
    config: AlmaConfig,
    *,
    device: str = "auto",
    on_megabatch: MegaBatchCallback | None = None,
    on_step: StepCallback | None = None,
    on_model: ModelCallback | None = None,
) -> dict:
    """Every strategy × seed; returns the ``results.json`` document (config, dataset, runs).

    ``on_model(index, model)`` sees each run's model after every mega-batch.
    """
    target = choose_device(device)
    started = time.perf_counter()
    runs = []
    for strategy in config.strategies:
        for seed in config.seeds:
            records = run_stream(
                dataset,
                config,
                strategy,
                seed,
                device=target,
                on_megabatch=on_megabatch,
                on_step=on_step,
                on_model=on_model,
            )
            runs.append(
                {"strategy": strategy, "seed": seed, "megabatches": [asdict(r) for r in records]}
            )
    return {
        "config": config.to_dict(),
        "dataset": {
            "name": dataset.name,
            "train_samples": len(dataset.train),
            "test_samples": len(dataset.test),
            "num_classes": dataset.num_classes,
            "image_size": dataset.image_size,
            "channels": dataset.channels,
        },
        "device": str(target),
        "torch": torch.__version__,
        "wall_seconds": time.perf_counter() - started,
        "runs": runs,
    }
