"""The update of one mega-batch, arrays in, record out: what the server's worker and the ALMA
simulator both run, so a benchmark measures exactly what production runs.

prequential accuracy (the parent on the new data) → unlearn → relearn → importance for next time
(``lure_engine.update.run_update``) → evaluation (``lure_engine.metrics.measure_update``). The
callers only differ in where the arrays and the parent come from (a dataset in memory, or records
and blobs) and where the result goes (a results file, or a published version).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lure_engine.data import ImageArrays, to_tensor
from lure_engine.importance import Mask
from lure_engine.metrics import UpdateMetrics, evaluate, measure_update
from lure_engine.models import ModelSpec
from lure_engine.preprocess import Preprocessing
from lure_engine.trainer import EpochCallback, ProgressCallback
from lure_engine.update import UpdateConfig, UpdateResult, UpdateSeeds, run_update


@dataclass(frozen=True)
class MegaBatchData:
    """One update's data, as uint8 NHWC images and integer labels."""

    megabatch: (
        ImageArrays  # the whole new mega-batch, train and validation rows (prequential accuracy)
    )
    train_split: ImageArrays  # its train rows, in order: the importance sample is drawn from these
    train: ImageArrays  # what is trained on: replay first, then the train rows
    val: ImageArrays  # the validation rows of every mega-batch so far
    test: ImageArrays | None  # the held-out test set, if there is one
    # how many of val's last rows are this mega-batch's own: the gate judges them apart, so a
    # mega-batch cannot vouch for itself
    val_own_rows: int = 0


@dataclass
class MegaBatchUpdate:
    model: nn.Module
    next_mask: Mask | None
    result: UpdateResult
    metrics: UpdateMetrics


def as_tensors(
    arrays: ImageArrays, device: torch.device, preprocessing: Preprocessing | None
) -> tuple[torch.Tensor, torch.Tensor]:
    images = (
        preprocessing.to_tensor(arrays.x, device) if preprocessing else to_tensor(arrays.x, device)
    )
    return images, torch.from_numpy(arrays.y).to(device)


def update_on_megabatch(
    model: nn.Module,
    spec: ModelSpec,
    previous_mask: Mask | None,
    data: MegaBatchData,
    *,
    has_parent: bool,
    parent_cer: int,
    config: UpdateConfig,
    seeds: UpdateSeeds,
    device: torch.device,
    preprocessing: Preprocessing | None = None,
    progress: ProgressCallback | None = None,
    on_epoch_end: EpochCallback | None = None,
    momentum: dict[str, torch.Tensor] | None = None,
) -> MegaBatchUpdate:
    """Update ``model`` (on ``device``) on one mega-batch and measure the result.

    ``preprocessing``: the pixel statistics the model expects (None: the engine's default).
    ``momentum``: the previous update's SGD momentum, used when the config carries it.
    """
    prequential = evaluate(model, *as_tensors(data.megabatch, device, preprocessing)).accuracy
    train = as_tensors(data.train, device, preprocessing)
    val = as_tensors(data.val, device, preprocessing)
    megabatch = as_tensors(data.train_split, device, preprocessing)
    result = run_update(
        model,
        spec,
        previous_mask,
        has_parent=has_parent,
        train_set=train,
        megabatch=megabatch,
        config=config,
        seeds=seeds,
        val=val,
        progress=progress,
        on_epoch_end=on_epoch_end,
        momentum=momentum,
    )
    test = (
        as_tensors(data.test, device, preprocessing)
        if data.test is not None and len(data.test)
        else None
    )
    metrics = measure_update(
        result,
        train=train,
        val=val,
        test=test,
        prequential_accuracy=prequential,
        parent_cer=parent_cer,
    )
    return MegaBatchUpdate(result.model, result.next_mask, result, metrics)
