"""Closing the loop from ``/predict`` (issue 28 §2-3): labels by prediction id, the live accuracy
they measure, what to label next, and a logged image to look at."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lure_core.records import PredictionRow
from service.api.auth import READ, require
from service.api.deps import Resources, model_or_404, resources
from service.ingest.feedback import label_queue, live_accuracy, record_feedback

router = APIRouter(prefix="/v1/models/{name}", tags=["feedback"])
PREDICTION_ID = r"^[0-9a-f]{32}$"


class FeedbackItem(BaseModel):
    prediction_id: str = Field(pattern=PREDICTION_ID, description="from a /predict answer")
    label: int = Field(ge=-(2**31), le=2**31 - 1, description="the true label")


class FeedbackItemOut(BaseModel):
    prediction_id: str
    status: int = Field(description="201 stored, 200 already so, 404 unknown, 409, 422")
    detail: str


class FeedbackOut(BaseModel):
    accepted: int = Field(description="new training samples stored")
    chunk: int | None = Field(None, description="the chunk holding them")
    megabatch: int | None = None
    sealed: list[int] = Field(default_factory=list)
    jobs: list[int] = Field(default_factory=list)
    items: list[FeedbackItemOut]


@router.post("/feedback", response_model=FeedbackOut, dependencies=[require("ingest")])
async def post_feedback(
    name: str,
    body: list[FeedbackItem],
    res: Resources = Depends(resources),
) -> FeedbackOut:
    """Label logged predictions: the accepted ones become one training chunk of the open
    mega-batch; every item gets its own status (the request answers 200 whatever they are)."""
    if not body:
        raise HTTPException(422, "no feedback items: send [{prediction_id, label}, ...]")
    if len(body) > res.settings.max_samples_per_chunk:
        raise HTTPException(413, f"{len(body)} items exceed the chunk limit")
    with res.sessions() as session:
        model = model_or_404(session, name)
        model_id, classes = model.id, model.recipe.num_classes
    pairs = [(item.prediction_id, item.label) for item in body]
    result = await run_in_threadpool(
        record_feedback, res.sessions, res.blobs, res.ingestor, model_id, classes, pairs
    )
    out = FeedbackOut(
        accepted=len(result.accepted),
        items=[FeedbackItemOut(**vars(item)) for item in result.items],
    )
    if result.ingested is not None and not result.ingested.replayed:
        res.metrics.samples.labels(name, "train").inc(len(result.accepted))
    if result.ingested is not None:
        ingested = result.ingested
        out.chunk = ingested.chunk.id
        out.megabatch = ingested.megabatch.index if ingested.megabatch else None
        out.sealed = [m.index for m in ingested.sealed]
        out.jobs = [j.id for j in ingested.jobs]
    return out


@router.get("/live-accuracy", dependencies=[require(READ)])
def get_live_accuracy(name: str, res: Resources = Depends(resources)) -> dict:
    """Per version: how many of its logged answers got a label, and how many were right."""
    with res.sessions() as session:
        model = model_or_404(session, name)
        return {"model": name, "versions": live_accuracy(session, model.id)}


def _queue_item(name: str, row: PredictionRow) -> dict:
    return {
        "prediction_id": row.id,
        "version": row.version_number,
        "predicted": row.predicted,
        "top_k": row.top_k,
        "confidence": row.confidence,
        "margin": row.margin,
        "entropy": row.entropy,
        "created_at": row.created_at.isoformat(),
        "image_url": f"/v1/models/{name}/predictions/{row.id}/image",
    }


@router.get("/label-queue", dependencies=[require("ingest")])
def get_label_queue(
    name: str,
    by: Literal["margin", "entropy", "least_confidence"] = Query("margin"),
    limit: int = Query(50, ge=1, le=10_000),
    version: int | None = Query(None, ge=0, description="only this version's answers"),
    res: Resources = Depends(resources),
) -> list[dict]:
    """Logged predictions not yet labelled, most uncertain first by ``by``, one per image."""
    with res.sessions() as session:
        model = model_or_404(session, name)
        queue = label_queue(session, model.id, by, limit, version)
        return [_queue_item(name, row) for row in queue]


@router.get("/predictions/{prediction_id}/image", dependencies=[require("ingest")])
def get_prediction_image(
    name: str,
    prediction_id: str,
    res: Resources = Depends(resources),
) -> Response:
    """The logged image as the model saw it, as PNG."""
    with res.sessions() as session:
        model = model_or_404(session, name)
        row = session.get(PredictionRow, prediction_id)
        if row is None or row.model_id != model.id:
            raise HTTPException(404, f"prediction {prediction_id!r} is not in the log")
        key, sha = row.image_key, row.image_sha256
    image = res.blobs.read_arrays(key, sha)["x"][0]
    array = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")
