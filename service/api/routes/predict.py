"""Predictions from the live version (or a pinned one), named in the body and X-Model-Version."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from starlette.concurrency import run_in_threadpool

from service.api.auth import require
from service.api.deps import MAX_ID, Resources, model_or_404, resources, version_or_404
from service.api.schemas import Prediction, PredictRequest, PredictResponse
from service.images import ImageError, decode_base64_images
from service.inference import predict_probabilities
from worker.storage.blobs import IntegrityError
from worker.storage.lineage import record_damage, retreat_live

router = APIRouter(tags=["predict"])


@router.post("/v1/models/{name}/predict", response_model=PredictResponse, dependencies=[require("predict")])
async def predict(
    name: str, body: PredictRequest, response: Response,
    version: int | None = Query(None, ge=1, le=MAX_ID, description="pin a version; default: the live one"),
    res: Resources = Depends(resources),
) -> PredictResponse:
    if len(body.images) > res.settings.max_predict_batch:
        raise HTTPException(413, f"{len(body.images)} images exceed the predict batch limit of "
                                 f"{res.settings.max_predict_batch}")
    with res.sessions() as session:
        model = model_or_404(session, name)
        number = version if version is not None else model.live_version
        if number is None:
            raise HTTPException(409, f"model {name!r} has no published version yet")
        row = version_or_404(session, model, number)
    config = model.config
    try:
        images = decode_base64_images(body.images, config["channels"], config["image_size"],
                                      res.settings.max_image_side)
    except ImageError as error:
        raise HTTPException(422, str(error)) from None
    net, refused = None, []
    while net is None:
        try:
            net = await run_in_threadpool(res.models.get, config, row)
        except IntegrityError as error:
            refused.append(f"version {row.number}: {error}")
            await run_in_threadpool(record_damage, res.sessions, row, str(error))
            if version is not None or row.parent_number is None:  # pinned, or no ancestor left to answer
                raise HTTPException(503, f"no servable checkpoint: {'; '.join(refused)}") from None
            with res.sessions() as session:  # ancestors are read only once a newer one is refused
                row = version_or_404(session, model, row.parent_number)
    if refused:  # the live checkpoint failed its integrity check: an ancestor answers, and is live from now on
        await run_in_threadpool(retreat_live, res.sessions, model.id, number, row.number)
        response.headers["X-Model-Fallback"] = f"version {number} refused: {refused[0]}"
    number = row.number
    if res.settings.predict_batching:
        key = (row.model_id, row.number, row.checkpoint_sha256)
        probabilities = await res.batcher.run(key, lambda batch: predict_probabilities(net, batch), images)
    else:
        probabilities = await run_in_threadpool(predict_probabilities, net, images)
    response.headers["X-Model-Version"] = str(number)
    res.metrics.predictions.labels(name, str(number)).inc(len(images))
    return PredictResponse(model=name, version=number, predictions=[
        Prediction(label=int(p.argmax()), probabilities=[round(float(v), 6) for v in p]) for p in probabilities])
