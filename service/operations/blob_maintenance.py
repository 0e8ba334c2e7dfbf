"""Removing blobs nothing names, in the background, waiting out a store that is down.

Two kinds are left behind: the blob folders of deleted models (a delete removes its rows first,
then its folder, so a crash or an object-store outage between the two leaves the folder), and
blobs a write stored before a crash stopped it from committing the row naming them
(``lure_core.blob_sweep``). Both used to be removed during the API's start, which listed the
bucket there: with the object store down the API could not start at all, so a replica restarted
during an incident stayed down. Here the API starts and serves what it can; this thread removes
them once the store (and the database) answer, retrying with a growing pause.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from lure_core.blob_sweep import sweep_unnamed_blobs
from lure_core.blobs import BlobStore
from lure_core.model_removal import remove_orphan_blobs

log = logging.getLogger("lure.maintenance")


class BlobMaintenance:
    """``start()`` once; ``deleted()`` after a model delete that could not remove its blobs."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        grace_seconds: float,
        first_retry_seconds: float = 5.0,
        max_retry_seconds: float = 300.0,
    ) -> None:
        self.sessions, self.blobs, self.grace = sessions, blobs, grace_seconds
        self.first_retry, self.max_retry = first_retry_seconds, max_retry_seconds
        self._orphans = self._sweep = True  # what is left to do
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0  # finished passes (tests wait on it)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="blob-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def deleted(self) -> None:
        """A model's rows are gone but its blob folder is not: remove it when the store answers."""
        self._orphans = True
        self._wake.set()

    def _run(self) -> None:
        pause = self.first_retry
        while not self._stopping.is_set():
            try:
                self._one_pass()
            except Exception as error:  # the store or the database away: wait, then again
                log.warning(
                    "removing blobs no record names failed (%s); trying again in %.0f s",
                    str(error).splitlines()[0] if str(error) else type(error).__name__,
                    pause,
                )
                self._wake.wait(pause)
                pause = min(pause * 2, self.max_retry)
                continue
            pause = self.first_retry
            self._wake.wait()
            self._wake.clear()

    def _one_pass(self) -> None:
        if self._orphans:
            self._orphans = False
            try:
                remove_orphan_blobs(self.sessions, self.blobs)
            except BaseException:
                self._orphans = True
                raise
        if self._sweep:  # the whole store is listed: once per start
            sweep_unnamed_blobs(self.sessions, self.blobs, self.grace)
            self._sweep = False
        self.passes += 1
