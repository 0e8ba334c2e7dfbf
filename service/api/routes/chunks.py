"""Labelled data in: JSON (base64 images), a bulk ``.npz`` body, multipart file uploads or one raw
image; and where a chunk went."""

from __future__ import annotations

from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from lure_core.megabatch_store import open_megabatch
from lure_core.records import ChunkRow, JobRow, MegaBatchRow, ModelRow
from service.api.auth import READ, require
from service.api.deps import RecordId, Resources, db_session, model_or_404, resources
from service.api.presenters import megabatch_out
from service.api.schemas import ChunkCreate, ChunkOut
from service.api.uploads import (
    UPLOAD_DOC,
    Upload,
    content_type_of,
    integer_labels,
    is_upload,
    read_upload,
)
from service.ingest.chunks import find_by_idempotency_key
from service.ingest.images import ImageError, decode_base64_images, decode_images, fit_array_images
from service.ingest.npz import ChunkLimits, NpzError, read_npz_chunk

router = APIRouter(prefix="/v1/models/{name}/chunks", tags=["chunks"])
NPZ_TYPES = ("application/octet-stream", "application/x-npz", "application/npz")

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": ChunkCreate.model_json_schema()},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": ".npz with uint8 x (N,H,W,C) and int y (N,); pass ?split=train|test",
            },
            **UPLOAD_DOC,  # multipart: 'image' files and one 'label' field each; raw: ?label=
        },
    }
}


def _parse_json(body: bytes, model: ModelRow, res: Resources) -> tuple[str, np.ndarray, np.ndarray]:
    try:
        chunk = ChunkCreate.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            error.errors(include_url=False, include_context=False, include_input=False)
        ) from None
    recipe = model.recipe
    _check_count(len(chunk.images), res)
    _check_labels(np.asarray(chunk.labels), recipe.num_classes)
    x = decode_base64_images(
        chunk.images,
        recipe.preprocessing,
        res.settings.max_image_side,
        res.settings.max_decoded_chunk_bytes,
    )
    return chunk.split, x, np.asarray(chunk.labels, dtype=np.int64)


def _parse_npz(body: bytes, split: str | None, model: ModelRow, res: Resources):
    if split is None:
        raise HTTPException(422, "an .npz body needs the query parameter split=train or split=test")
    limits = ChunkLimits(
        res.settings.max_samples_per_chunk,
        res.settings.max_image_side,
        res.settings.max_decoded_chunk_bytes,
    )
    try:
        x, y = read_npz_chunk(body, limits)
    except NpzError as error:
        raise HTTPException(error.status, str(error)) from None
    recipe = model.recipe
    _check_labels(y, recipe.num_classes)
    return (
        split,
        fit_array_images(x, recipe.preprocessing, res.settings.max_image_side),
        y,
    )


def _parse_upload(
    upload: Upload, split: str | None, label: int | None, model: ModelRow, res: Resources
):
    """Multipart files with a ``label`` field each, or one raw image with ``?label=``."""
    _check_count(len(upload.images), res)
    texts = upload.values("label") or ([] if label is None else [str(label)])
    labels = np.asarray(integer_labels(texts, len(upload.images)), dtype=np.int64)
    _check_labels(labels, model.recipe.num_classes)
    chosen = split or (upload.values("split") or ["train"])[0]
    if chosen not in ("train", "test"):
        raise HTTPException(422, f"split {chosen!r}: use train or test")
    try:
        x = decode_images(
            upload.images,
            model.recipe.preprocessing,
            res.settings.max_image_side,
            res.settings.max_decoded_chunk_bytes,
        )
    except ImageError as error:
        raise HTTPException(422, str(error)) from None
    return chosen, x, labels


def sniff_content_type(body: bytes) -> str:
    """What a body without a content type is: an .npz (a zip archive) or JSON, by its first
    bytes; '' when neither."""
    if body.startswith(b"PK\x03\x04"):
        return "application/octet-stream"
    if body.lstrip()[:1] == b"{":
        return "application/json"
    return ""


def _parse(body: bytes, content_type: str, split: str | None, model: ModelRow, res: Resources):
    """Validate and decode a body (CPU work: runs off the event loop)."""
    content_type = content_type or sniff_content_type(body)
    try:
        if content_type == "application/json":
            return _parse_json(body, model, res)
        if content_type in NPZ_TYPES:
            return _parse_npz(body, split, model, res)
    except ImageError as error:
        raise HTTPException(422, str(error)) from None
    raise HTTPException(
        415,
        f"content type {content_type or 'missing'!r}: send application/json, "
        "application/octet-stream (.npz), multipart/form-data or image/png|jpeg",
    )


def _check_count(n: int, res: Resources) -> None:
    if n == 0:
        raise HTTPException(422, "chunk is empty: send at least one image")
    if n > res.settings.max_samples_per_chunk:
        raise HTTPException(
            413, f"chunk has {n} samples; the limit is {res.settings.max_samples_per_chunk}"
        )


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        i = int(bad[0])
        raise HTTPException(422, f"labels[{i}] = {int(labels[i])} is outside 0..{num_classes - 1}")


@router.post(
    "",
    status_code=201,
    response_model=ChunkOut,
    openapi_extra=_BODY_DOC,
    dependencies=[require("ingest")],
)
async def post_chunk(
    name: str,
    request: Request,
    split: Literal["train", "test"] | None = Query(
        None, description="required for .npz bodies; uploads default to train"
    ),
    label: int | None = Query(
        None, ge=0, le=2**31 - 1, description="the label of a raw image/* body"
    ),
    idempotency_key: str | None = Header(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="a retry with the same key gets the first answer",
    ),
    res: Resources = Depends(resources),
) -> ChunkOut:
    """Store a chunk. 201 means its data and record are on disk; nothing is stored on a 4xx."""
    with res.sessions() as session:
        model = model_or_404(session, name)
        if idempotency_key and (
            first := find_by_idempotency_key(session, model.id, idempotency_key)
        ):
            return chunk_view(session, model, first).model_copy(update={"replayed": True})
    content_type = content_type_of(request)
    if is_upload(content_type):
        upload = await read_upload(request, content_type, res.settings.max_samples_per_chunk)
        chunk_split, x, y = await run_in_threadpool(_parse_upload, upload, split, label, model, res)
    else:
        body = await request.body()  # size limited by the request guard (service/api/guard.py)
        chunk_split, x, y = await run_in_threadpool(_parse, body, content_type, split, model, res)
    result = await run_in_threadpool(
        res.ingestor.add_chunk, model.id, chunk_split, x, y, idempotency_key
    )
    if result.replayed:
        with res.sessions() as session:
            return chunk_view(session, model, session.get(ChunkRow, result.chunk.id)).model_copy(
                update={"replayed": True}
            )
    res.metrics.samples.labels(name, chunk_split).inc(len(x))
    res.metrics.sealed.labels(name).inc(len(result.sealed))
    with res.sessions() as session:
        model = session.get(ModelRow, model.id)
        open_row = open_megabatch(session, model.id, create=False)
        holder = session.get(MegaBatchRow, result.megabatch.id) if result.megabatch else None
        return ChunkOut(
            id=result.chunk.id,
            model=name,
            split=chunk_split,
            accepted=len(x),
            megabatch=megabatch_out(session, model, holder) if holder else None,
            open_megabatch=megabatch_out(session, model, open_row) if open_row else None,
            sealed=[m.index for m in result.sealed],
            jobs=[j.id for j in result.jobs],
        )


@router.get("/{chunk_id}", response_model=ChunkOut, dependencies=[require(READ)])
def get_chunk(name: str, chunk_id: RecordId, session: Session = Depends(db_session)) -> ChunkOut:
    """Which mega-batch holds the chunk and which version first trained on it (read-your-writes)."""
    model = model_or_404(session, name)
    chunk = session.get(ChunkRow, chunk_id)
    if chunk is None or chunk.model_id != model.id:
        raise HTTPException(404, f"model {name!r} has no chunk {chunk_id}")
    return chunk_view(session, model, chunk)


def chunk_view(session: Session, model: ModelRow, chunk: ChunkRow) -> ChunkOut:
    holder = session.get(MegaBatchRow, chunk.megabatch_id) if chunk.megabatch_id else None
    trained = None
    if holder is not None:
        trained = session.scalar(  # the winning candidate, when the mega-batch had several
            select(JobRow.version).where(JobRow.megabatch_id == holder.id)
        )
    return ChunkOut(
        id=chunk.id,
        model=model.name,
        split=chunk.split,
        accepted=chunk.n_samples,
        megabatch=megabatch_out(session, model, holder) if holder else None,
        trained_in_version=trained,
        kept=chunk.kept_samples,
    )
