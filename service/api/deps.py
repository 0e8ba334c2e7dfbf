"""Shared request dependencies: the app's resources, a DB session, and lookups that 404 clearly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lure_core.blobs import BlobStore
from lure_core.recipe import Recipe
from lure_core.records import ModelRow, VersionRow
from service.api.key_cache import KeyCache
from service.ingest.chunks import Ingestor
from service.observability.metrics import ApiMetrics
from service.operations.blob_maintenance import BlobMaintenance
from service.operations.disk_use import DiskUse
from service.operations.dispatcher import Dispatcher
from service.operations.health import FileVerifier
from service.operations.readiness import Readiness
from service.serving.batching import MicroBatcher
from service.serving.inference import ModelCache
from service.serving.live_warmer import LiveWarmer
from service.serving.prediction_log import PredictionLog
from service.serving.ttl_cache import SingleFlightCache
from service.settings import ServerSettings

MAX_ID = (
    2**31 - 1
)  # ids beyond what every database's INTEGER holds are refused with a 422, not a 500
RecordId = Annotated[int, Path(ge=1, le=MAX_ID, description="a positive record id")]
# version numbers start at 0: an imported model's weights are version 0
VersionNumber = Annotated[int, Path(ge=0, le=MAX_ID, description="a version number (0: imported)")]


@dataclass
class Resources:
    settings: ServerSettings
    sessions: sessionmaker[Session]
    blobs: BlobStore
    celery: Celery
    dispatcher: Dispatcher
    ingestor: Ingestor
    models: ModelCache
    metrics: ApiMetrics
    batcher: MicroBatcher
    verifier: FileVerifier
    keys: KeyCache
    # model name -> (model, live version, recipe), as /predict last read them
    live: SingleFlightCache[str, tuple[ModelRow, VersionRow, Recipe]]
    disk: DiskUse
    warmer: LiveWarmer
    prediction_log: PredictionLog
    readiness: Readiness
    maintenance: BlobMaintenance


async def resources(request: Request) -> Resources:
    """Async: a plain attribute read, which as a sync dependency would cost a thread hop."""
    return request.app.state.resources


def db_session(res: Resources = Depends(resources)) -> Iterator[Session]:
    with res.sessions() as session:
        yield session


def model_or_404(session: Session, name: str) -> ModelRow:
    model = session.scalar(select(ModelRow).where(ModelRow.name == name))
    if model is None:
        raise HTTPException(404, f"model {name!r} not found")
    return model


def version_or_404(session: Session, model: ModelRow, number: int) -> VersionRow:
    version = session.scalar(
        select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.number == number)
    )
    if version is None:
        raise HTTPException(404, f"model {model.name!r} has no version {number}")
    return version


def pruned_message(version: VersionRow, model: ModelRow) -> str:
    return (
        f"version {version.number} of {model.name!r} was pruned by retention "
        f"(keep_versions={model.recipe.keep_versions}): its row and metrics remain, its "
        "checkpoint does not"
    )
