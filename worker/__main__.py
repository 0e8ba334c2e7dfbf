"""``python -m worker [--concurrency N]``: a Celery worker for update jobs, the process ``lure up``
and ``lure worker`` start. Updates run in child processes of their own (``worker/isolation.py``),
so the pool only supervises: one job at a time in-process, threads for more.
"""

from __future__ import annotations

import argparse
import warnings

from lure_core.process_tree import die_with_supervisor
from lure_core.queue import UPDATE_QUEUE


def _quiet_celery_start() -> None:
    """Celery's start-up banner and its 9-line root warning flood a console (the worker logs a
    one-line root warning itself once logging is set up)."""
    warnings.filterwarnings("ignore", message=r"You're running the worker with superuser")


def main() -> None:
    die_with_supervisor()  # started by `lure up`: never outlive it
    from worker.celery_app import app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--concurrency", type=int, default=1, help="updates of different models at once"
    )
    concurrency = parser.parse_args().concurrency
    _quiet_celery_start()
    pool = (
        ["--pool=solo"] if concurrency == 1 else ["--pool=threads", f"--concurrency={concurrency}"]
    )
    app.worker_main(
        [
            "--quiet",  # no start-up banner
            "worker",
            *pool,
            "--loglevel=INFO",
            "-Q",
            UPDATE_QUEUE,
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
