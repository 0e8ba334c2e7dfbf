"""The FastAPI application factory: migrations on start, resources on app.state, routers mounted."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lure_core.blob_backend import open_blob_store
from lure_core.blobs import BlobStore
from lure_core.database import make_engine, make_session_factory, upgrade_database
from lure_core.queue import make_producer
from lure_engine.devices import choose_device
from service.api.auth import READ, reaches_every_model, require
from service.api.deps import Resources
from service.api.docs import install_api_docs
from service.api.errors import install_error_handlers
from service.api.guard import RequestGuard
from service.api.key_cache import KeyCache
from service.api.routes import (
    chunks,
    drift,
    feedback,
    health,
    jobs,
    keys,
    megabatches,
    models,
    predict,
    shadow,
    versions,
)
from service.dashboard import routes as dashboard
from service.ingest.chunks import Ingestor
from service.observability.metrics import ApiMetrics, MetricsMiddleware
from service.operations.blob_maintenance import BlobMaintenance
from service.operations.disk_use import DiskUse
from service.operations.dispatcher import Dispatcher
from service.operations.health import FileVerifier
from service.operations.instance_lock import hold_data_dir
from service.operations.readiness import Readiness
from service.serving.batching import MicroBatcher
from service.serving.drift_monitor import DriftMonitor
from service.serving.engines import warm_up_onnx_export
from service.serving.inference import ModelCache
from service.serving.live_warmer import LiveWarmer
from service.serving.prediction_log import PredictionLog
from service.serving.shadow import ShadowRunner
from service.serving.ttl_cache import SingleFlightCache
from service.settings import ServerSettings

log = logging.getLogger("lure.api")


def _model_cache(settings: ServerSettings, blobs: BlobStore, metrics: ApiMetrics) -> ModelCache:
    return ModelCache(
        blobs,
        settings.model_cache_size,
        on_refused=lambda v, _: metrics.refused_checkpoints.labels(
            str(v.model_id), str(v.number)
        ).inc(),
        device=choose_device(settings.serve_device),
        engine=settings.serve_engine,
    )


def build_resources(settings: ServerSettings, metrics: ApiMetrics) -> Resources:
    settings.ensure_dirs()
    if settings.torch_threads:  # LURE_TORCH_THREADS: the cores /predict's forward passes may use
        torch.set_num_threads(settings.torch_threads)
    if settings.resolved_database_url.startswith("sqlite"):
        hold_data_dir(settings.data_dir)
    upgrade_database(settings.resolved_database_url)
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    blobs = open_blob_store(settings)  # nothing is read from it here: it may be down
    if settings.serve_engine != "eager":
        warm_up_onnx_export()  # before serving: its one-time cost holds the GIL for a second
    celery = make_producer(settings)
    dispatcher = Dispatcher(
        sessions,
        celery,
        settings.dispatch_interval_seconds,
        stale_after=settings.stale_job_seconds,
        resend_after=settings.resend_queued_after_seconds,
    )
    models = _model_cache(settings, blobs, metrics)
    ingestor = Ingestor(sessions, blobs, on_sealed=dispatcher.wake)
    drift = DriftMonitor(sessions, ingestor)

    def logged(model: str, count: int) -> None:
        metrics.predictions_logged.labels(model).inc(count)
        drift.logged(model, count)

    resources = Resources(
        settings,
        sessions,
        blobs,
        celery,
        dispatcher,
        ingestor,
        models,
        metrics,
        MicroBatcher(settings.predict_max_batch_images, settings.predict_max_wait_ms / 1000),
        FileVerifier(blobs.for_checks()),
        KeyCache(settings.key_cache_seconds),
        SingleFlightCache(settings.live_cache_seconds),
        DiskUse(blobs),
        LiveWarmer(sessions, models, settings.warm_live_seconds),
        PredictionLog(
            sessions,
            blobs,
            on_dropped=lambda model, n: metrics.prediction_log_dropped.labels(model).inc(n),
            on_logged=logged,
            on_stored=ShadowRunner(sessions, models).answer,
        ),
        readiness=None,  # type: ignore[arg-type]  # it reads the resources: set just below
        maintenance=BlobMaintenance(sessions, blobs, settings.orphan_blob_grace_seconds),
    )
    resources.readiness = Readiness(resources, settings.readiness_timeout_seconds)
    return resources


# /predict first: routes are matched in order, and it is the one called per image
ROUTERS = (predict, health, models, chunks, feedback, drift, shadow, megabatches, jobs, versions)
ROUTERS += (keys, dashboard)


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        resources = build_resources(settings, metrics)
        metrics.watch_database(resources.sessions, resources.verifier, resources.disk, settings)
        app.state.resources = resources
        resources.dispatcher.start()
        resources.maintenance.start()
        resources.warmer.start()
        resources.prediction_log.start()
        if not settings.auth:
            log.warning(
                "AUTHENTICATION IS OFF (LURE_AUTH=false): anyone who can reach this port can read, "
                "write and promote models"
            )
        log.info(
            "LURE API ready: database %s, broker %s, /predict on %s",
            _without_password(settings.resolved_database_url),
            settings.resolved_broker_url,
            resources.models.device,
        )
        yield
        resources.warmer.stop()
        resources.prediction_log.stop()
        resources.dispatcher.stop()
        resources.maintenance.stop()

    app = FastAPI(
        title="LURE update server",
        version="0.1.0",
        lifespan=lifespan,
        description="Online model updates with Learn, Unlearn, Relearn.",
        docs_url=None,  # served from the package's own assets, below
        redoc_url=None,
    )
    install_api_docs(app)
    install_error_handlers(app)
    for module in ROUTERS:
        app.include_router(module.router)
    app.mount("/dashboard/static", dashboard.static_files(), name="dashboard-static")
    app.add_middleware(
        RequestGuard
    )  # inside the metrics middleware: refused requests are counted too
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False, dependencies=[require(READ)])
    def prometheus_metrics(request: Request) -> Response:
        if not reaches_every_model(request):  # the series name every model
            raise HTTPException(403, "/metrics covers every model: use a key for all models")
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
