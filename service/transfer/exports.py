"""Take any version out: safetensors (the weights), TorchScript or ONNX (preprocessing included, so
a consumer feeds uint8 NHWC images at the model's size), each with a model card.

An artefact is built once, on its first request, and *verified*: on the held-out test set (or the
model's own stored images, when there is no test set) it is run outside this server's code path
(``torch.jit.load``, ONNX Runtime, a fresh model loaded from the safetensors file), and its logits
must match the server's own forward pass. The largest difference is in the card; a mismatch fails
the export. The artefact is stored beside the checkpoint with its sha256 and served from there.
"""

from __future__ import annotations

import io
import uuid
import warnings
from datetime import UTC, datetime

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from torch import nn

from lure_core.blobs import BlobStore
from lure_core.checkpoints import load_state
from lure_core.model_store import version_row
from lure_core.recipe import Recipe
from lure_core.records import (
    METRIC_FIELDS,
    ExportRow,
    MegaBatchRow,
    MetricsRow,
    ModelRow,
    VersionRow,
)
from lure_engine.models import build_model
from lure_engine.preprocess import Preprocessing
from lure_update.samples import SampleReader
from service.serving.engines import onnx_bytes, packaged

FORMATS = {"safetensors": "safetensors", "torchscript": "pt", "onnx": "onnx"}
TOLERANCE = 1e-3  # largest |Δ logit| accepted between an artefact and the server's forward pass
VERIFY_IMAGES = 256


class ExportFailed(RuntimeError):
    """The artefact does not reproduce the server's outputs (or could not be built)."""


def _verification_images(session: Session, blobs: BlobStore, model_id: int, pre: Preprocessing):
    """Up to 256 images to compare outputs on: the test set, else the model's stored images, else
    random pixels (a model imported before any data). Returns (images, what they are)."""
    reader = SampleReader(session, blobs, model_id)
    test = reader.test_set()
    if test is not None:
        return test.x[:VERIFY_IMAGES], "the held-out test set"
    if session.scalar(select(MegaBatchRow.id).where(MegaBatchRow.model_id == model_id).limit(1)):
        return reader.megabatch(1)[0][:VERIFY_IMAGES], "the model's first mega-batch"
    rng = np.random.default_rng(0)
    shape = (32, pre.size, pre.size, pre.channels)
    return rng.integers(0, 256, shape, dtype=np.uint8), "random images (the model has no data)"


def _build(fmt: str, model: nn.Module, pre: Preprocessing, checkpoint: bytes) -> bytes:
    if fmt == "safetensors":
        return checkpoint
    example = torch.zeros(1, pre.size, pre.size, pre.channels, dtype=torch.uint8)
    packaged_model = packaged(model, pre)
    if fmt == "onnx":
        return onnx_bytes(packaged_model, example, input_name="images")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notices, not faults
        torch.jit.save(torch.jit.trace(packaged_model, (example,)), buffer)
    return buffer.getvalue()


@torch.inference_mode()
def _outputs(fmt: str, artefact: bytes, recipe: Recipe, images: np.ndarray) -> np.ndarray:
    """Run an artefact the way a consumer would, outside the server's own model objects."""
    pre = recipe.preprocessing
    if fmt == "safetensors":
        model = build_model(recipe.model_spec)
        model.load_state_dict(load_safetensors(artefact))
        return model.eval()(pre.to_tensor(images)).numpy()
    if fmt == "torchscript":
        return torch.jit.load(io.BytesIO(artefact))(torch.from_numpy(images)).numpy()
    import onnxruntime

    session = onnxruntime.InferenceSession(artefact, providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images})[0]


def _lineage(session: Session, model_id: int, version: VersionRow) -> list[dict]:
    chain, row = [], version
    while row is not None:
        chain.append(
            {
                "version": row.number,
                "origin": row.origin,
                "strategy": row.strategy,
                "sha256": row.checkpoint_sha256,
            }
        )
        row = (
            version_row(session, model_id, row.parent_number)
            if row.parent_number is not None
            else None
        )
    return chain


def _card(
    session: Session, model: ModelRow, version: VersionRow, fmt: str, sha: str, verification: dict
) -> dict:
    recipe = model.recipe
    metrics = session.get(MetricsRow, version.id)
    return {
        "model": model.name,
        "version": version.number,
        "format": fmt,
        "sha256": sha,
        "architecture": recipe.architecture,
        "num_classes": recipe.num_classes,
        "class_names": list(recipe.class_names) if recipe.class_names else None,
        "preprocessing": recipe.preprocessing.as_dict(),
        "output": "logits (N, num_classes); softmax gives the probabilities /predict returns",
        "metrics": {name: getattr(metrics, name) for name in METRIC_FIELDS} if metrics else {},
        "lineage": _lineage(session, model.id, version),
        "training": version.config,  # the resolved update configuration (None: imported)
        "checkpoint_sha256": version.checkpoint_sha256,
        "verification": verification,
        "created_at": datetime.now(UTC).isoformat(),
    }


def build_export(sessions: sessionmaker, blobs: BlobStore, model_id: int, number: int, fmt: str):
    """Build, verify and store the artefact; returns its ExportRow (or a concurrent build's)."""
    with sessions() as session:
        model, version = session.get(ModelRow, model_id), version_row(session, model_id, number)
        recipe = model.recipe
        images, source = _verification_images(session, blobs, model_id, recipe.preprocessing)
        checkpoint = blobs.read(version.checkpoint_key, version.checkpoint_sha256)
        net = build_model(recipe.model_spec)
        net.load_state_dict(load_state(blobs, version.checkpoint_key, version.checkpoint_sha256))
        with torch.inference_mode():
            reference = net.eval()(recipe.preprocessing.to_tensor(images)).numpy()
        artefact = _build(fmt, net, recipe.preprocessing, checkpoint)
        difference = float(np.abs(_outputs(fmt, artefact, recipe, images) - reference).max())
        if not difference <= TOLERANCE:
            raise ExportFailed(
                f"the {fmt} export of version {number} differs from the server's "
                f"outputs by up to {difference:.3g} (tolerance {TOLERANCE})"
            )
        # a unique name: a concurrent build of the same export never overwrites the recorded one
        key = f"models/{model_id}/exports/v{number}/{uuid.uuid4().hex[:12]}.{FORMATS[fmt]}"
        sha = blobs.write(key, artefact)
        verification = {
            "images": len(images),
            "on": source,
            "max_abs_logit_diff": difference,
            "tolerance": TOLERANCE,
        }
        card = _card(session, model, version, fmt, sha, verification)
    try:
        with sessions.begin() as session:
            row = ExportRow(version_id=version.id, format=fmt, blob_key=key, sha256=sha, card=card)
            session.add(row)
        return row
    except IntegrityError:  # a concurrent request built it too: serve the one that was recorded
        return find_export(sessions, version.id, fmt)


def find_export(sessions: sessionmaker, version_id: int, fmt: str) -> ExportRow | None:
    with sessions() as session:
        return session.scalar(
            select(ExportRow).where(ExportRow.version_id == version_id, ExportRow.format == fmt)
        )
