"""The update queue: its names and the Celery configuration both sides use.

The API only *sends* update tasks (by name, through :func:`make_producer`); the worker builds its
own app from the same :func:`celery_config` in ``worker/celery_app.py``. Nothing here touches the
disk: the filesystem transport's folders are created by the processes that use them.
"""

from __future__ import annotations

from celery import Celery

from lure_core.filesystem_queue import TRANSPORT as ATOMIC_FILESYSTEM_TRANSPORT
from lure_core.settings import SharedSettings

UPDATE_TASK = "lure.update"
UPDATE_QUEUE = "lure-updates"


def celery_config(settings: SharedSettings) -> dict:
    config = {
        "broker_url": settings.resolved_broker_url,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,  # results live in our database, not a result backend
        "task_default_queue": UPDATE_QUEUE,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }
    if settings.resolved_broker_url.startswith("filesystem://"):
        folder = str(settings.queue_dir / "in")
        config["broker_transport"] = ATOMIC_FILESYSTEM_TRANSPORT  # kombu's writes in place
        config["broker_transport_options"] = {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "processed_folder": str(settings.queue_dir / "processed"),
            "store_processed": False,
            "control_folder": str(settings.queue_dir / "control"),  # kombu's default is ./control
        }
    return config


def make_producer(settings: SharedSettings) -> Celery:
    """A Celery app that only sends update tasks (the API's dispatcher); it defines no task."""
    app = Celery("lure-producer")
    app.conf.update(celery_config(settings))
    return app


def send_update(app: Celery, job_id: int) -> None:
    app.send_task(UPDATE_TASK, args=[job_id], queue=UPDATE_QUEUE)
