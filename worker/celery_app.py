"""The Celery app and its one task: a thin shell around :func:`worker.isolation.run_isolated`.

``acks_late`` + ``reject_on_worker_lost``: a worker killed mid-update leaves its message
unacknowledged, so the broker delivers it again; ``execute_job`` makes that redelivery harmless.
Each update runs in a child process; a failed attempt is retried with back-off up to
``max_update_attempts`` times, then the job is failed and reported.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache

from celery import Celery
from celery.signals import (
    setup_logging,
    worker_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from lure_core.blob_backend import open_blob_store
from lure_core.database import make_engine, make_session_factory
from lure_core.infrastructure import is_infrastructure_fault
from lure_core.job_store import Outcome
from lure_core.logs import configure_logging
from lure_core.queue import UPDATE_TASK, celery_config
from lure_core.settings import SharedSettings
from lure_update.context import UpdateContext, runner_name
from worker.heartbeat import WorkerHeartbeat
from worker.isolation import interrupt_running_updates, run_isolated, start_fork_server

log = logging.getLogger("lure.worker")


def make_celery(settings: SharedSettings) -> Celery:
    app = Celery("lure")
    app.conf.update(celery_config(settings))
    return app


settings = SharedSettings()
app = make_celery(settings)


@worker_init.connect
def _create_folders(**_) -> None:
    """The queue and blob folders, when the worker starts (importing this module creates none)."""
    settings.ensure_dirs()


@setup_logging.connect
def _lure_logs(**_) -> None:
    """Celery calls this instead of installing its own handlers: the worker logs like the API."""
    configure_logging("worker")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        log.warning("the worker runs as root; run it as an unprivileged user in production")


@lru_cache(maxsize=1)
def worker_context() -> UpdateContext:
    """Built once per worker process; updates themselves run in child processes."""
    return UpdateContext(
        settings,
        make_session_factory(make_engine(settings.resolved_database_url)),
        open_blob_store(settings),
    )


_heartbeats: list[WorkerHeartbeat] = []


@worker_ready.connect
def _start_heartbeat(**_) -> None:
    context = worker_context()
    beat = WorkerHeartbeat(context.sessions, runner_name(), settings.heartbeat_seconds)
    beat.start()
    _heartbeats.append(beat)
    start_fork_server()
    log.info("worker %s ready", beat.name)


@worker_shutting_down.connect
def _interrupt_updates(**_) -> None:
    """SIGTERM or Ctrl-C: running updates hand their attempts back now instead of training on (a
    warm shutdown would wait for them, and whoever sent the signal would not)."""
    interrupt_running_updates()


@worker_shutdown.connect
def _stop_heartbeat(**_) -> None:
    while _heartbeats:
        _heartbeats.pop().stop()


@app.task(name=UPDATE_TASK, bind=True, max_retries=None)
def update_task(self, job_id: int) -> str:
    """Run the job; the message survives (sent again) while it waits, retries or while the
    database or broker is unreachable, which never costs the job an attempt."""
    try:
        result = run_isolated(worker_context(), job_id)
    except Exception as error:
        if not is_infrastructure_fault(error):
            raise
        log.warning("job %s: database or broker unreachable; trying again in 5 s", job_id)
        raise self.retry(countdown=5) from error
    if result.outcome in (Outcome.WAIT, Outcome.UNREACHABLE):
        raise self.retry(countdown=2)
    if result.outcome is Outcome.RETRY:
        log.warning(
            "job %s: next attempt in %.0f s", job_id, result.retry_in, extra={"job_id": job_id}
        )
        raise self.retry(countdown=result.retry_in)
    return result.outcome.value
