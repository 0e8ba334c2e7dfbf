"""Loaded models for /predict, keyed by version and checkpoint hash, least recently used evicted.

A request resolves the live version from the database each time, so a newly published version
serves from the next request on; requests already running keep the model object they hold, so a
swap never fails one.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import numpy as np
import torch

from lure_core.blobs import BlobStore, ChecksumMismatch
from lure_core.checkpoints import load_state
from lure_core.recipe import Recipe
from lure_core.records import VersionRow
from lure_engine.models import build_model
from service.serving.engines import Engine, choose_engine

log = logging.getLogger("lure.inference")


class ModelCache:
    """Loaded versions ready for inference: each on ``device`` (``LURE_SERVE_DEVICE``), through
    the engine ``engine`` names (``LURE_SERVE_ENGINE``; auto: the fastest that matches eager)."""

    def __init__(
        self,
        blobs: BlobStore,
        size: int,
        on_refused=None,
        device: torch.device | None = None,
        engine: str = "auto",
    ) -> None:
        self.blobs, self.size = blobs, size
        self.device = device or torch.device("cpu")
        self.engine = engine
        self.on_refused = on_refused or (lambda version, reason: None)
        self._models: OrderedDict[tuple, Engine] = OrderedDict()
        self._refused: dict[tuple, str] = {}  # checkpoints that failed their check: never re-read
        self._lock = threading.Lock()

    def forget(self, model_id: int) -> None:
        """Drop a deleted model's loaded versions."""
        with self._lock:
            for key in [k for k in self._models if k[0] == model_id]:
                del self._models[key]

    def drop(self, version: VersionRow) -> None:
        """Forget a loaded version whose stored file turned out damaged: it is read (and
        refused) again before it is served."""
        with self._lock:
            self._models.pop((version.model_id, version.number, version.checkpoint_sha256), None)

    def loaded(self, version: VersionRow) -> Engine | None:
        """The version's network if it is already loaded: cheap enough for the event loop."""
        key = (version.model_id, version.number, version.checkpoint_sha256)
        with self._lock:
            engine = self._models.get(key)
            if engine is not None:
                self._models.move_to_end(key)
            return engine

    def get(self, recipe: Recipe, version: VersionRow, model_name: str | None = None) -> Engine:
        """The loaded model; ChecksumMismatch when the checkpoint's sha256 differs from the
        record. ``model_name``: for the log line (people read names, not ids).
        """
        key = (version.model_id, version.number, version.checkpoint_sha256)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            if key in self._refused:
                raise ChecksumMismatch(self._refused[key])
        model = build_model(recipe.model_spec)
        try:
            state = load_state(self.blobs, version.checkpoint_key, version.checkpoint_sha256)
        except ChecksumMismatch as error:
            with self._lock:
                self._refused[key] = str(error)
            log.error(
                "refusing version %s of model %s: %s",
                version.number,
                version.model_id,
                error,
                extra={"version": version.number, "model_id": version.model_id},
            )
            self.on_refused(version, str(error))
            raise
        model.load_state_dict(state)
        engine = choose_engine(
            model.eval(), recipe.preprocessing, _probe(recipe), self.device, self.engine
        )
        log.info(
            "model %s version %s serves through %s on %s",
            model_name or version.model_id,
            version.number,
            engine.name,
            self.device,
            extra={"version": version.number, "model_id": version.model_id},
        )
        with self._lock:
            self._models[key] = engine
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return engine


def _probe(recipe: Recipe) -> np.ndarray:
    """Random uint8 images in the model's input layout, to compare and time engines on."""
    pre = recipe.preprocessing
    return np.random.default_rng(0).integers(
        0, 256, (8, pre.size, pre.size, pre.channels), dtype=np.uint8
    )
