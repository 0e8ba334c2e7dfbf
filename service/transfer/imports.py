"""A team's own trained weights become version 0 of a model: checked, measured, stored, live.

The body must be a safetensors file (the server never unpickles; ``lure import`` converts a
``.pt``/``.pth`` on the client). Its header is read first, as it streams in
(``service/transfer/import_stream.py``): tensor names, dtypes and shapes are matched strictly
against the model the recipe builds, and every missing, unexpected or misshapen tensor is named in
one 422 before the tensors are read. Nothing is stored unless all of it is right.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from lure_core.blobs import BlobStore
from lure_core.checkpoints import save_state
from lure_core.live_pointer import first_version
from lure_core.records import ModelRow, Origin, Release, VersionRow, metrics_row
from lure_engine.metrics import measure_model
from lure_engine.models import build_model
from lure_engine.replay import make_replay
from lure_update.samples import SampleReader
from service.transfer.safetensors_header import TensorEntry

SAFETENSORS_DTYPES = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


class ImportRefused(ValueError):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def mismatches(expected: dict[str, torch.Tensor], given: dict[str, TensorEntry]) -> list[str]:
    """Every way ``given`` differs from the model's state dict (names, shapes, dtypes matched
    strictly: a float16 or float64 file is converted by the team, not guessed at here)."""
    problems = [
        f"missing tensor {name} {tuple(t.shape)}"
        for name, t in expected.items()
        if name not in given
    ]
    problems += [f"unexpected tensor {name}" for name in given if name not in expected]
    for name, entry in given.items():
        if name not in expected:
            continue
        if tuple(expected[name].shape) != entry.shape:
            model_shape = list(expected[name].shape)
            problems.append(
                f"tensor {name} has shape {list(entry.shape)}, the model's is {model_shape}"
            )
        wanted = SAFETENSORS_DTYPES.get(expected[name].dtype, str(expected[name].dtype))
        if entry.dtype != wanted:
            problems.append(f"tensor {name} is {entry.dtype}, the model's is {wanted}")
    return problems


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Tensors holding NaN or infinity, one line each."""
    problems = []
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            problems.append(f"tensor {name} holds {bad} NaN or infinite values")
    return problems


def _check_outputs(model: torch.nn.Module, probe: torch.Tensor) -> None:
    """Finite weights can still overflow (3e38 everywhere): the model must answer finitely."""
    with torch.no_grad():
        outputs = model.eval()(probe)
    if not bool(torch.isfinite(outputs).all()):
        raise ImportRefused(
            "the weights give NaN or infinite outputs (overflowing values?); /predict could not "
            "answer with them"
        )


def refuse_if_versions(sessions: sessionmaker, model_id: int) -> None:
    """409 before a byte of the body is read: weights are imported into a new model only."""
    with sessions() as session:
        name = session.scalar(select(ModelRow.name).where(ModelRow.id == model_id))
        if session.scalar(
            select(func.count()).select_from(VersionRow).where(VersionRow.model_id == model_id)
        ):
            raise ImportRefused(
                f"model {name!r} already has versions; weights are imported into a new model, "
                "as its version 0",
                409,
            )


def fit_problems(recipe) -> Callable[[dict[str, TensorEntry]], list[str]]:
    """How an uploaded header differs from the recipe's model, read from a build on the meta
    device (shapes and dtypes, no weights)."""
    with torch.device("meta"):
        expected = build_model(recipe.model_spec).state_dict()
    return lambda given: mismatches(expected, given)


def not_fitting(architecture: str, problems: list[str]) -> ImportRefused:
    return ImportRefused(
        f"the weights do not fit {architecture}: "
        + "; ".join(problems[:20])
        + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
    )


def import_weights(sessions: sessionmaker, blobs: BlobStore, model_id: int, path: Path) -> int:
    """Check, measure and store the weights file at ``path`` (received and matched against the
    model by ``import_stream``) as version 0 of the model; returns 0."""
    refuse_if_versions(sessions, model_id)
    with sessions() as session:
        recipe = session.get(ModelRow, model_id).recipe
        test = SampleReader(session, blobs, model_id).test_set()
    model = build_model(recipe.model_spec)
    state = load_file(str(path))
    problems = non_finite(state)
    if problems:
        raise not_fitting(recipe.architecture, problems)
    model.load_state_dict(state, strict=True)
    del state
    tensors = None
    if test is not None:
        tensors = (recipe.preprocessing.to_tensor(test.x), torch.from_numpy(test.y))
    size = (recipe.channels, recipe.image_size, recipe.image_size)
    probe = tensors[0][:8] if tensors else torch.zeros(2, *size)
    _check_outputs(model, probe)
    metrics = measure_model(model, tensors)
    key = f"models/{model_id}/versions/import-v0/weights.safetensors"
    sha = save_state(blobs, key, model.state_dict())
    replay = make_replay(recipe.replay_spec, seed=recipe.replay_seed)
    try:
        _insert_version_zero(sessions, model_id, key, sha, replay.state_dict(), metrics)
    except IntegrityError:  # a concurrent import of the same model won the race
        raise ImportRefused(
            "another import into this model finished first; it already has its version 0", 409
        ) from None
    return 0


def _insert_version_zero(sessions, model_id, key, sha, replay_state, metrics) -> None:
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
            replay_state=replay_state,
            release=Release.LIVE,
        )
        session.add(version)
        session.flush()
        session.add(metrics_row(version.id, metrics))
        first_version(session, model_id)
