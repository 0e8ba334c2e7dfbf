"""Dynamic micro-batching of concurrent /predict requests for the same model version.

Opportunistic: a request arriving while its model is idle runs at once (no added latency); requests
arriving while a forward pass runs are queued and run together in the next one, up to
``max_images`` images (and after an optional ``max_wait`` seconds). On two CPU cores this turns
many single-image forwards that fight over the cores into a few batched ones. An engine whose
passes use one thread each may run ``parallel`` batches side by side (each caller says how many
its engine allows), so a second core is not left idle while one batch runs.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Hashable

import numpy as np
from starlette.concurrency import run_in_threadpool

Forward = Callable[[np.ndarray], np.ndarray]


class MicroBatcher:
    def __init__(self, max_images: int = 64, max_wait: float = 0.0) -> None:
        self.max_images, self.max_wait = max_images, max_wait
        self._pending: dict[Hashable, list[tuple[np.ndarray, asyncio.Future]]] = defaultdict(list)
        self._draining: dict[Hashable, int] = defaultdict(int)  # key -> batches running or due
        self._tasks: set[asyncio.Task] = set()  # held: the loop keeps only weak references

    async def run(
        self, key: Hashable, forward: Forward, images: np.ndarray, parallel: int = 1
    ) -> np.ndarray:
        """``forward(images)`` for this request, possibly computed together with others for
        ``key``, with at most ``parallel`` forward passes of ``key`` running at once.
        """
        future = asyncio.get_running_loop().create_future()
        self._pending[key].append((images, future))
        if self._draining[key] < parallel:
            self._draining[key] += 1
            task = asyncio.create_task(self._drain(key, forward))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    def _take(self, key: Hashable) -> list[tuple[np.ndarray, asyncio.Future]]:
        queue, batch, count = self._pending[key], [], 0
        while queue and (not batch or count + len(queue[0][0]) <= self.max_images):
            item = queue.pop(0)
            batch.append(item)
            count += len(item[0])
        return batch

    async def _drain(self, key: Hashable, forward: Forward) -> None:
        try:
            while self._pending[key]:
                if self.max_wait > 0:
                    await asyncio.sleep(self.max_wait)
                batch = [
                    (images, future) for images, future in self._take(key) if not future.cancelled()
                ]
                if not batch:
                    continue
                try:
                    outputs = await run_in_threadpool(
                        forward, np.concatenate([images for images, _ in batch])
                    )
                except Exception as error:  # every waiting request gets the failure, none hangs
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                offset = 0
                for images, future in batch:
                    if not future.done():
                        future.set_result(outputs[offset : offset + len(images)])
                    offset += len(images)
        finally:
            self._draining[key] -= 1
            if not self._draining[key]:
                del self._draining[key]
                if not self._pending[key]:
                    del self._pending[key]
