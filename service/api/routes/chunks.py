"""Labelled data in: JSON (base64 images), a bulk ``.npz`` body, multipart file uploads or one raw
image; and where a chunk went."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
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
    content_type_of,
    is_upload,
    read_upload,
)
from service.ingest.chunk_bodies import parse_body, parse_upload
from service.ingest.chunks import find_by_idempotency_key
from service.ingest.npz import ChunkLimits

router = APIRouter(prefix="/v1/models/{name}/chunks", tags=["chunks"])

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


def _limits(res: Resources) -> ChunkLimits:
    settings = res.settings
    return ChunkLimits(
        settings.max_samples_per_chunk, settings.max_image_side, settings.max_decoded_chunk_bytes
    )


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
    content_type, recipe, limits = content_type_of(request), model.recipe, _limits(res)
    if is_upload(content_type):
        upload = await read_upload(request, content_type, res.settings.max_samples_per_chunk)
        parsed = await run_in_threadpool(parse_upload, upload, split, label, recipe, limits)
    else:
        body = await request.body()  # size limited by the request guard (service/api/guard.py)
        parsed = await run_in_threadpool(parse_body, body, content_type, split, recipe, limits)
    chunk_split, x, y = parsed
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
