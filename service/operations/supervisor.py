"""A child process kept alive: restarted when it dies, with the reason logged.

``lure up``'s worker: one that exits while the server runs (a crash, the OOM killer, ``kill``)
would otherwise leave the API accepting data that no one trains on. ``lure api --workers N``'s
API processes: one that died would leave its share of the port's connections unanswered.
Restarts back off (1 s, 2 s, 4 s … 60 s) so a child that cannot start does not spin; one that
stayed up for a minute resets the back-off.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time

from lure_core.process_tree import child_environment

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
    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        max_backoff: float = 60.0,
        name: str = "worker",
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.command, self.max_backoff, self.name = command, max_backoff, name
        self.env = child_environment(env)  # the child dies with this process, even by SIGKILL
        self.pass_fds = pass_fds  # e.g. the data folder's lock: held until the child exits too
        self.restarts = 0
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a restart and a stop never interleave
        self._thread = threading.Thread(
            target=self._watch, name=f"lure-{name.replace(' ', '-')}-supervisor", daemon=True
        )

    def start(self) -> None:
        self.process = self._spawn()
        self._thread.start()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(self.command, env=self.env, pass_fds=self.pass_fds)

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
                "%s %s (pid %d); restarting it in %.0f s",
                self.name,
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
                self.process = self._spawn()
                self.restarts += 1
            log.warning(
                "%s restarted (pid %d, restart %d)", self.name, self.process.pid, self.restarts
            )
