"""The Celery app and its one task: a thin shell around :func:`worker.update_job.execute_job`.

``acks_late`` + ``reject_on_worker_lost``: a worker killed mid-update leaves its message
unacknowledged, so the broker delivers it again; ``execute_job`` makes that redelivery harmless.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import torch
from celery import Celery
from celery.signals import setup_logging

from worker.config import StorageSettings
from worker.logs import configure_json_logging
from worker.storage.blobs import BlobStore
from worker.storage.database import make_engine, make_session_factory
from worker.update_job import Outcome, WorkerContext, execute_job

UPDATE_TASK = "lure.update"
UPDATE_QUEUE = "lure-updates"
log = logging.getLogger("lure.worker")


def make_celery(settings: StorageSettings) -> Celery:
    app = Celery("lure", broker=settings.resolved_broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,  # results live in our database, not a result backend
        task_default_queue=UPDATE_QUEUE,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if settings.resolved_broker_url.startswith("filesystem://"):
        settings.ensure_dirs()
        folder = str(settings.queue_dir / "in")
        app.conf.broker_transport_options = {
            "data_folder_in": folder, "data_folder_out": folder,
            "processed_folder": str(settings.queue_dir / "processed"), "store_processed": False,
        }
    return app


settings = StorageSettings()
app = make_celery(settings)


@setup_logging.connect
def _json_logs(**_) -> None:
    """Celery calls this instead of installing its own handlers: the worker logs JSON too."""
    configure_json_logging("worker")


@lru_cache(maxsize=1)
def worker_context() -> WorkerContext:
    """Built once per worker process, on its first task (after any fork)."""
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    settings.ensure_dirs()
    return WorkerContext(settings, make_session_factory(make_engine(settings.resolved_database_url)),
                         BlobStore(settings.blob_dir))


@app.task(name=UPDATE_TASK, bind=True, max_retries=None)
def update_task(self, job_id: int) -> str:
    outcome = execute_job(worker_context(), job_id)
    if outcome is Outcome.WAIT:
        raise self.retry(countdown=2)
    return outcome.value
