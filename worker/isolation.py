"""Run each update in a child process, so a crash in it (a segfault in native code, the OOM killer,
``kill -9``) is an attempt that failed, not a worker that vanished.

The Celery worker process only supervises: it starts the child, heartbeats the job while the child
lives, and when the child dies by a signal or an unexpected exit it records the failed attempt on
the job (signal name, the child's last Python stack from ``faulthandler``) and lets the task retry.
A shutdown is not a crash: SIGTERM or Ctrl-C (to the worker, which forwards it, or to the child)
makes the child hand its attempt back uncounted and exit; the job is queued again.
Children fork from a ``forkserver`` that has imported torch once, so starting one costs
milliseconds, and the supervisor itself never runs torch code (no OpenMP state is forked).
"""

from __future__ import annotations

import faulthandler
import logging
import multiprocessing
import multiprocessing.forkserver
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lure_core.infrastructure import ride_out
from lure_core.job_store import (
    Outcome,
    heartbeat,
    record_failure,
    release_interrupted,
    retry_delay,
)
from lure_core.settings import SharedSettings
from lure_update.context import UpdateContext, runner_name

log = logging.getLogger("lure.worker")

# The child's exit status says what happened; anything else is a crash.
_EXIT_CODES = {
    Outcome.PUBLISHED: 0,
    Outcome.ALREADY_DONE: 20,
    Outcome.WAIT: 21,
    Outcome.RETRY: 22,
    Outcome.FAILED: 23,
    Outcome.MISSING: 24,
    Outcome.INTERRUPTED: 25,
    Outcome.UNREACHABLE: 26,
    Outcome.QUARANTINED: 27,
}
_OUTCOMES = {code: outcome for outcome, code in _EXIT_CODES.items()}
# preloaded once by the fork server, so no update pays for them: torch and the engine with the
# job, and what the engine imports only where it is used (so that an API process never does):
# torchvision's ResNet blocks, scipy's tests (the gates) and torchmetrics' ECE
_CHILD_MODULES = [
    "lure_update.job",
    "lure_engine.models.resnet",
    "scipy.stats",
    "torchmetrics.functional.classification",
]


@dataclass(frozen=True)
class JobResult:
    outcome: Outcome
    retry_in: float | None = None  # seconds until the next attempt, for Outcome.RETRY


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_CHILD_MODULES)
    return context


def start_fork_server() -> None:
    """Start the fork server now (it imports torch: seconds), not on the first job."""
    _context()
    multiprocessing.forkserver.ensure_running()


class UpdateInterrupted(BaseException):
    """Raised in the update process by SIGTERM or SIGINT; a BaseException, so the job's own
    ``except Exception`` does not record it as a failed attempt."""


def _raise_interrupted(number: int, _frame) -> None:
    raise UpdateInterrupted(signal.Signals(number).name)


# Update processes running under this worker, so a shutdown can stop them (threads pool: several).
_running: dict[int, multiprocessing.process.BaseProcess] = {}
_shutting_down = threading.Event()


def interrupt_running_updates() -> None:
    """The worker is shutting down: every running update process hands its attempt back, and no
    new one starts (a warm shutdown may still be handed a message)."""
    _shutting_down.set()
    for child in list(_running.values()):
        if child.is_alive():
            child.terminate()


def _child_main(settings: SharedSettings, job_id: int, fault_path: str) -> None:
    """Entry point of the update process: configure it like a worker, run the job, exit with its
    outcome.
    """
    import torch

    from lure_core.blob_backend import open_blob_store
    from lure_core.database import make_engine, make_session_factory
    from lure_core.logs import configure_logging
    from lure_core.process_tree import die_with_parent
    from lure_update.job import execute_job  # preloaded by the fork server

    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    # the fork server exits when its worker dies: this update then hands its attempt back
    die_with_parent()
    fault_file = open(fault_path, "w")  # noqa: SIM115 - must stay open until the process dies
    faulthandler.enable(file=fault_file, all_threads=True)
    configure_logging("worker")
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    engine = make_engine(settings.resolved_database_url)
    context = UpdateContext(settings, make_session_factory(engine), open_blob_store(settings))
    try:
        outcome = execute_job(context, job_id, runner_name())
    except UpdateInterrupted as stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the release
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        outcome = release_interrupted(context.jobs, job_id, runner_name(), str(stop))
    engine.dispose()
    sys.exit(_EXIT_CODES[outcome])


def describe_exit(code: int) -> tuple[str, str]:
    """(kind, text) for a child's exit status that is not one of ours."""
    if code < 0:
        number = -code
        name = (
            signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        )
        text = f"update process killed by {name} ({signal.strsignal(number) or 'unknown signal'})"
        if number == signal.SIGKILL:
            text += ": out of memory (the kernel's OOM killer), or killed by an operator"
        return "signal", text
    return "exit", f"update process exited with status {code} without finishing the job"


def _fault_stack(path: Path, frames: int = 20) -> str:
    """The innermost frames faulthandler wrote when the child died (its module list left out)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = [
        line for line in text.split("\nExtension modules:")[0].strip().splitlines() if line.strip()
    ]
    head = [line for line in lines if not line.startswith("  File ")]
    stack = [line for line in lines if line.startswith("  File ")]
    return "\n".join(head[:3] + stack[:frames])


def _supervise(ctx: UpdateContext, job_id: int, child) -> bool:
    """Heartbeat the job while ``child`` lives; kill it past the update timeout. True if
    timed out.
    """
    runner, started = runner_name(child.pid), time.monotonic()
    timeout = ctx.settings.update_timeout_seconds
    interval = min(ctx.settings.heartbeat_seconds, ctx.settings.stale_job_seconds / 3)
    while child.is_alive():
        child.join(interval)
        if not child.is_alive():
            break
        if timeout is not None and time.monotonic() - started > timeout:
            log.error(
                "job %s: update process %s ran past %.0f s; killing it",
                job_id,
                child.pid,
                timeout,
                extra={"job_id": job_id},
            )
            child.kill()
            child.join()
            return True
        try:
            heartbeat(ctx.jobs, job_id, runner)
        except Exception:  # the database is briefly unreachable: the next beat tries again
            log.warning("job %s: heartbeat failed", job_id, exc_info=True, extra={"job_id": job_id})
    return False


def _retry_delay(ctx: UpdateContext, job_id: int) -> float:
    return ride_out(lambda: retry_delay(ctx.jobs, job_id), f"job {job_id}: reading its attempts")


def run_isolated(ctx: UpdateContext, job_id: int) -> JobResult:
    """Run one job in a child process and account for however it ended."""
    if _shutting_down.is_set():
        return JobResult(
            ride_out(
                lambda: release_interrupted(ctx.jobs, job_id, None, "a shutdown"),
                f"job {job_id}: handing it back",
            )
        )
    with tempfile.NamedTemporaryFile(
        "w", prefix=f"lure-job{job_id}-", suffix=".fault", delete=False
    ) as handle:
        fault_path = Path(handle.name)
    try:
        child = _context().Process(
            target=_child_main,
            args=(ctx.settings, job_id, str(fault_path)),
            name=f"lure-update-{job_id}",
        )
        child.start()
        _running[child.pid] = child
        if _shutting_down.is_set():  # the shutdown came while it started
            child.terminate()
        try:
            timed_out = _supervise(ctx, job_id, child)
        finally:
            _running.pop(child.pid, None)
        code = child.exitcode
        if code in _OUTCOMES and not timed_out:
            outcome = _OUTCOMES[code]
            return JobResult(
                outcome, _retry_delay(ctx, job_id) if outcome is Outcome.RETRY else None
            )
        kind, text = describe_exit(code)
        if timed_out:
            kind, text = (
                "timeout",
                f"update ran past update_timeout_seconds={ctx.settings.update_timeout_seconds}",
            )
        stack = _fault_stack(fault_path)
        error = text + (f"\nlast Python stack of the update process:\n{stack}" if stack else "")
        log.error("job %s: %s", job_id, error, extra={"job_id": job_id})
        runner = runner_name(child.pid)
        outcome = ride_out(
            lambda: record_failure(ctx.jobs, job_id, runner, kind, error),
            f"job {job_id}: recording how its update process ended",
        )
        if outcome is Outcome.WAIT:  # it died before claiming the job: just try again
            outcome = Outcome.RETRY
        return JobResult(outcome, _retry_delay(ctx, job_id) if outcome is Outcome.RETRY else None)
    finally:
        fault_path.unlink(missing_ok=True)
