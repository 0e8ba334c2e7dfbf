"""Predictions from the live version (or a pinned one), named in the body and X-Model-Version.

Images come as JSON (base64), as multipart file uploads (``curl -F image=@cat.jpg``) or as one raw
``image/png|jpeg`` body.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from lure_core.live_pointer import retreat as retreat_live
from lure_core.model_store import is_live
from lure_core.recipe import Recipe
from lure_core.records import ModelRow, VersionRow
from lure_update.damaged_versions import newest_intact
from service.api.auth import require
from service.api.deps import (
    MAX_ID,
    Resources,
    pruned_message,
    resources,
)
from service.api.schemas import PredictRequest, PredictResponse
from service.api.uploads import UPLOAD_DOC, content_type_of, is_upload, read_upload
from service.ingest.images import ImageError, decode_base64_images, decode_images
from service.serving.engines import Engine
from service.serving.prediction_log import LoggedPrediction, new_prediction_ids

router = APIRouter(tags=["predict"])
_SAMPLER = np.random.default_rng()  # which images the prediction log keeps
# decode on the event loop below this many encoded bytes: a 32x32 PNG decodes in less time than a
# thread hop takes (about 0.1 ms), and large requests still go to a thread
INLINE_DECODE_BYTES = 16 * 1024
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictRequest.model_json_schema()},
            **UPLOAD_DOC,
        },
    }
}


async def _images(request: Request, res: Resources, recipe: Recipe) -> np.ndarray:
    """The request's images in the model's layout; the count limit is checked before decoding."""
    content_type = content_type_of(request)
    limit, side = res.settings.max_predict_batch, res.settings.max_image_side
    if is_upload(content_type):
        upload = await read_upload(request, content_type, limit)
        decode, items = decode_images, upload.images
    elif content_type == "application/json":
        try:
            items = PredictRequest.model_validate_json(await request.body()).images
        except ValidationError as error:
            raise RequestValidationError(
                error.errors(include_url=False, include_context=False, include_input=False)
            ) from None
        decode = decode_base64_images
    else:
        raise HTTPException(
            415,
            f"content type {content_type or 'missing'!r}: send application/json, "
            "multipart/form-data or image/png|jpeg",
        )
    if len(items) > limit:
        raise HTTPException(413, f"{len(items)} images exceed the predict batch limit of {limit}")
    try:  # decoding is CPU work: off the event loop, unless a thread hop would cost more
        if sum(len(item) for item in items) <= INLINE_DECODE_BYTES:
            return decode(items, recipe.preprocessing, side)
        return await run_in_threadpool(decode, items, recipe.preprocessing, side)
    except ImageError as error:
        raise HTTPException(422, str(error)) from None


def _resolve(res: Resources, name: str, version: int | None) -> tuple[ModelRow, VersionRow]:
    """The model and the version to answer with, the pinned one or the live one, in one query
    (this runs on every prediction)."""
    chosen = (
        is_live()
        if version is None
        else (VersionRow.model_id == ModelRow.id) & (VersionRow.number == version)
    )
    with res.sessions() as session:
        found = session.execute(
            select(ModelRow, VersionRow).outerjoin(VersionRow, chosen).where(ModelRow.name == name)
        ).first()
        if found is None:
            raise HTTPException(404, f"model {name!r} not found")
        model, row = found
        wanted = version if version is not None else model.live_version
        if wanted is None:
            raise HTTPException(409, f"model {name!r} has no published version yet")
        if row is None:
            raise HTTPException(404, f"model {name!r} has no version {wanted}")
        if row.pruned_at is not None:
            raise HTTPException(410, pruned_message(row, model))
        return model, row


async def _model_and_version(
    res: Resources, name: str, version: int | None
) -> tuple[ModelRow, VersionRow, Recipe]:
    """``_resolve`` and the model's recipe, the live version trusted for
    ``LURE_LIVE_CACHE_SECONDS``: in a profile at 32 clients the lookup and its thread hop took as
    much API CPU as a small model's forward. Pinned versions and errors are always read afresh."""

    async def load() -> tuple[ModelRow, VersionRow, Recipe]:
        model, row = await run_in_threadpool(_resolve, res, name, version)
        return model, row, model.recipe  # parsed once per lookup, not per request

    if version is not None:
        return await load()
    return await res.live.fetch(name, load)


async def _servable(res: Resources, model: ModelRow, recipe: Recipe, row: VersionRow, pinned: bool):
    """The loaded network of ``row``, or of its newest intact ancestor when ``row`` is damaged
    (``lineage.newest_intact``). Returns (network, answering version, refusals); a pinned
    damaged version, or one without an intact ancestor, is a 503.
    """
    if (loaded := res.models.loaded(row)) is not None:  # the usual case: no thread hop
        return loaded, row, []
    found = await run_in_threadpool(
        newest_intact,
        res.sessions,
        row,
        partial(res.models.get, recipe, model_name=model.name),
        not pinned,
    )
    if found.version is None or found.value is None:
        reasons = "; ".join(found.refused) or f"version {row.number} has no checkpoint file"
        raise HTTPException(503, f"no servable checkpoint: {reasons}")
    return found.value, found.version, found.refused


async def _forward(res: Resources, row: VersionRow, net: Engine, images: np.ndarray) -> np.ndarray:
    if not res.settings.predict_batching:
        return await run_in_threadpool(net.probabilities, images)
    key = (row.model_id, row.number, row.checkpoint_sha256)
    return await res.batcher.run(key, net.probabilities, images, parallel=net.parallel)


def _prediction(probabilities: np.ndarray, recipe: Recipe, k: int, prediction_id: str) -> dict:
    """One image's answer, shaped as :class:`Prediction` (plain data: see ``_answer``)."""
    rounded = np.round(probabilities.astype(np.float64), 6).tolist()
    ranked = np.argsort(-probabilities, kind="stable")[:k].tolist()
    top = [
        {"label": i, "class_name": recipe.class_name(i), "probability": rounded[i]} for i in ranked
    ]
    return {**top[0], "top_k": top, "probabilities": rounded, "prediction_id": prediction_id}


def _answer(name: str, version: int, predictions: list[dict], headers: dict) -> Response:
    """The :class:`PredictResponse` as JSON bytes, built without pydantic: validating and
    serialising the models FastAPI builds took a tenth of the API's CPU per small request, for
    data this module has just made in that shape."""
    body = json.dumps(
        {"model": name, "version": version, "predictions": predictions}, separators=(",", ":")
    )
    return Response(body, media_type="application/json", headers=headers)


@router.post(
    "/v1/models/{name}/predict",
    response_model=PredictResponse,
    dependencies=[require("predict")],
    openapi_extra=_BODY_DOC,
)
async def predict(
    name: str,
    request: Request,
    version: int | None = Query(
        None, ge=0, le=MAX_ID, description="pin a version; default: the live one"
    ),
    top_k: int = Query(5, ge=1, le=1000, description="how many ranked labels to return"),
    res: Resources = Depends(resources),
) -> Response:
    model, row, recipe = await _model_and_version(res, name, version)
    images = await _images(request, res, recipe)
    net, answering, refused = await _servable(res, model, recipe, row, pinned=version is not None)
    headers = {"X-Model-Version": str(answering.number), "X-Inference-Engine": net.name}
    # a damaged live checkpoint: an intact ancestor answered, and it is live from now on
    if refused:
        await run_in_threadpool(retreat_live, res.sessions, model.id, row.number, answering.number)
        res.live.forget(name)
        headers["X-Model-Fallback"] = f"version {row.number} refused: {refused[0]}"
    probabilities = await _forward(res, answering, net, images)
    if not np.isfinite(probabilities).all():  # JSON has no NaN: say what happened instead
        raise HTTPException(
            500,
            f"version {answering.number} of {name!r} produced NaN or infinite probabilities for "
            "this input: its weights overflow; promote another version",
        )
    res.metrics.predictions.labels(name, str(answering.number)).inc(len(images))
    ids = new_prediction_ids(len(images))
    if recipe.log_predictions:
        _log(res, name, model.id, answering.number, images, probabilities, ids, recipe)
    headers["X-Prediction-Ids"] = ",".join(ids)
    k = min(top_k, recipe.num_classes)
    predictions = [_prediction(p, recipe, k, i) for p, i in zip(probabilities, ids, strict=True)]
    return _answer(name, answering.number, predictions, headers)


def _log(
    res: Resources, name: str, model_id: int, version: int, images, probabilities, ids, recipe
):
    """The sampled images onto the log's queue (never blocks: see
    service/serving/prediction_log.py)."""
    rate = float(recipe.log_predictions.get("sample_rate", 1.0))
    now = datetime.now(UTC)
    chosen = np.flatnonzero(_SAMPLER.random(len(images)) < rate)
    res.prediction_log.offer(
        name,
        [
            LoggedPrediction(ids[i], model_id, version, images[i], probabilities[i], now)
            for i in chosen
        ],
    )
