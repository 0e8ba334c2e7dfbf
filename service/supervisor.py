"""``lure up``'s worker, kept alive: restarted when it dies, with the reason logged.

A worker that exits while the server runs (a crash, the OOM killer, ``kill``) would otherwise leave
the API accepting data that no one trains on. Restarts back off (1 s, 2 s, 4 s … 60 s) so a worker
that cannot start does not spin; a worker that stayed up for a minute resets the back-off.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time

log = logging.getLogger("lure.supervisor")


def exit_reason(code: int) -> str:
    if code < 0:
        return (
            f"killed by {signal.Signals(-code).name}"
            if -code in signal.valid_signals()
            else f"signal {-code}"
        )
    return f"exited with status {code}"


class WorkerSupervisor:
    def __init__(self, command: list[str], env: dict[str, str], max_backoff: float = 60.0) -> None:
        self.command, self.env, self.max_backoff = command, env, max_backoff
        self.restarts = 0
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a restart and a stop never interleave
        self._thread = threading.Thread(
            target=self._watch, name="lure-worker-supervisor", daemon=True
        )

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env)
        self._thread.start()

    def stop(self, timeout: float = 20) -> None:
        with self._lock:
            self._stopping.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            started = time.monotonic()
            code = self.process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 60:
                backoff = 1.0
            log.error(
                "worker %s (pid %d); restarting it in %.0f s",
                exit_reason(code),
                self.process.pid,
                backoff,
            )
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff)
            with self._lock:
                if self._stopping.is_set():
                    return
                self.process = subprocess.Popen(self.command, env=self.env)
                self.restarts += 1
            log.warning("worker restarted (pid %d, restart %d)", self.process.pid, self.restarts)
