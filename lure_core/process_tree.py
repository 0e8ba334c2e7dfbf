"""Child processes die with the process that supervises them.

``lure up`` starts a worker, ``lure api --workers N`` starts API processes, a worker's fork server
starts update processes. Killed with SIGKILL, a supervisor runs no cleanup: before, its children
went on (a worker taking jobs nobody watched; API processes on the port), and each restart added
more. A child asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``; a
watcher thread elsewhere), so it shuts down as it would on ``kill``: a worker hands its running
update back, an API process closes its socket.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

PARENT_ENV = "LURE_PARENT_PID"  # set by a supervisor in its child's environment
_PR_SET_PDEATHSIG = 1


def child_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a child that must not outlive this process."""
    return {**env, PARENT_ENV: str(os.getpid())}


def _prctl_death_signal(number: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, number, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, number: int) -> None:
    """Where the kernel cannot be asked: notice the parent's death within a second."""

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        os.kill(os.getpid(), number)

    threading.Thread(target=watch, name="lure-parent-watch", daemon=True).start()


def die_with_parent(parent: int | None = None, number: int = signal.SIGTERM) -> None:
    """Receive ``number`` when the parent process ``parent`` (default: the current one) dies; at
    once if it already has (it died before this process asked)."""
    parent = os.getppid() if parent is None else parent
    if not _prctl_death_signal(number):
        _watch_parent(parent, number)
    if os.getppid() != parent:
        os.kill(os.getpid(), number)


def die_with_supervisor() -> None:
    """In a child a supervisor started with :func:`child_environment`: tie its life to it."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent and parent.isdigit():
        die_with_parent(int(parent))
