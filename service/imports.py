"""A team's own trained weights become version 0 of a model: checked, measured, stored, live.

The body must be a safetensors file (the server never unpickles; ``lure import`` converts a
``.pt``/``.pth`` on the client). Its header is read first: tensor names, dtypes and shapes are
matched strictly against the model the recipe builds, and every missing, unexpected or misshapen
tensor is named in one 422. Nothing is stored unless all of it is right.
"""

from __future__ import annotations

import json
import struct

import torch
from safetensors.torch import load as load_safetensors
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from lure_core.blobs import BlobStore
from lure_core.checkpoints import save_state
from lure_core.records import ModelRow, Origin, Release, VersionRow, metrics_row
from lure_core.samples import SampleReader
from lure_engine.metrics import measure_model
from lure_engine.models import build_model
from lure_engine.replay import make_replay

HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


class ImportRefused(ValueError):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def read_header(body: bytes) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name → (dtype, shape) from a safetensors header, checked against the body's size."""
    if len(body) < 8:
        raise ImportRefused("body is not a safetensors file: too short to hold a header")
    length = struct.unpack("<Q", body[:8])[0]
    if length > min(HEADER_LIMIT, len(body) - 8):
        hint = (
            " (a .pt/.pth pickle? `lure import` converts one)"
            if body[:2] == b"\x80\x02" or body[:2] == b"PK"
            else ""
        )
        raise ImportRefused(f"body is not a safetensors file: its header length is not valid{hint}")
    try:
        header = json.loads(body[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ImportRefused("body is not a safetensors file: its header is not JSON") from None
    tensors, end = {}, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise ImportRefused(
                f"body is not a valid safetensors file: entry {name!r} is malformed"
            )
        tensors[name] = (info["dtype"], tuple(info["shape"]))
        end = max(end, info["data_offsets"][1])
    if 8 + length + end > len(body):
        raise ImportRefused(
            f"the file is truncated: its header promises {8 + length + end} bytes, "
            f"the body has {len(body)}"
        )
    return tensors


def mismatches(
    expected: dict[str, torch.Tensor], given: dict[str, tuple[str, tuple[int, ...]]]
) -> list[str]:
    """Every way ``given`` differs from the model's state dict, one line each."""
    problems = [
        f"missing tensor {name} {tuple(t.shape)}"
        for name, t in expected.items()
        if name not in given
    ]
    problems += [f"unexpected tensor {name}" for name in given if name not in expected]
    for name, (_, shape) in given.items():
        if name in expected and tuple(expected[name].shape) != shape:
            model_shape = list(expected[name].shape)
            problems.append(f"tensor {name} has shape {list(shape)}, the model's is {model_shape}")
    return problems


def import_weights(sessions: sessionmaker, blobs: BlobStore, model_id: int, body: bytes) -> int:
    """Check, measure and store ``body`` as version 0 of the model; returns 0."""
    with sessions() as session:
        model_row = session.get(ModelRow, model_id)
        if session.scalar(
            select(func.count()).select_from(VersionRow).where(VersionRow.model_id == model_id)
        ):
            raise ImportRefused(
                f"model {model_row.name!r} already has versions; weights are imported into a "
                "new model, as its version 0",
                409,
            )
        recipe = model_row.recipe
        test = SampleReader(session, blobs, model_id).test_set()
    model = build_model(recipe.model_spec)
    problems = mismatches(model.state_dict(), read_header(body))
    if problems:
        raise ImportRefused(
            f"the weights do not fit {recipe.architecture}: "
            + "; ".join(problems[:20])
            + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        )
    model.load_state_dict(load_safetensors(body), strict=True)
    tensors = None
    if test is not None:
        tensors = (recipe.preprocessing.to_tensor(test.x), torch.from_numpy(test.y))
    metrics = measure_model(model, tensors)
    key = f"models/{model_id}/versions/import-v0/weights.safetensors"
    sha = save_state(blobs, key, model.state_dict())
    replay = make_replay(recipe.replay_spec, seed=recipe.replay_seed)
    with sessions.begin() as session:
        version = VersionRow(
            model_id=model_id,
            number=0,
            megabatch_id=None,
            parent_number=None,
            origin=Origin.IMPORT,
            strategy="import",
            seeds={},
            checkpoint_key=key,
            checkpoint_sha256=sha,
            replay_state=replay.state_dict(),
            release=Release.LIVE,
        )
        session.add(version)
        session.flush()
        session.add(metrics_row(version.id, metrics))
        session.get(ModelRow, model_id).live_version = 0
    return 0
