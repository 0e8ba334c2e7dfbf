"""Loaded models for /predict, keyed by version and checkpoint hash, least recently used evicted.

A request resolves the live version from the database each time, so a newly published version
serves from the next request on; requests already running keep the model object they hold, so a
swap never fails one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from lure_engine.data import to_tensor
from lure_engine.models import build_model
from worker import recipe
from worker.storage.blobs import BlobStore
from worker.storage.checkpoints import load_state
from worker.storage.schema import VersionRow


class ModelCache:
    def __init__(self, blobs: BlobStore, size: int) -> None:
        self.blobs, self.size = blobs, size
        self._models: OrderedDict[tuple, nn.Module] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, config: dict, version: VersionRow) -> nn.Module:
        key = (version.model_id, version.number, version.checkpoint_sha256)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = build_model(recipe.model_spec(config))
        model.load_state_dict(load_state(self.blobs, version.checkpoint_key, version.checkpoint_sha256))
        model.eval()
        with self._lock:
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model


@torch.inference_mode()
def predict_probabilities(model: nn.Module, images: np.ndarray) -> np.ndarray:
    return model(to_tensor(images)).float().softmax(1).numpy()
