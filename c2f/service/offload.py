"""A small, bounded thread pool for the job queue's blocking calls (Redis, dataset URI checks).

Serving never waits on Redis: job-queue work runs here, not on the event loop and not in the thread pool that
FastAPI uses for plain ``def`` routes, so a Redis that stops answering can occupy at most ``threads`` threads and
``queue`` waiting calls; the call after that is refused at once (:class:`Busy`, a 503), and a caller stops
waiting after ``timeout`` seconds (:class:`TimeoutError`, a 503) while the call itself ends on its socket timeout.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Busy(RuntimeError):
    """Every thread is busy and the wait queue is full."""


class BoundedExecutor:
    """``threads`` worker threads and at most ``queue`` calls waiting for one."""

    def __init__(self, threads: int, queue: int, name: str = "c2f-offload") -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(threads + queue)

    def submit(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        if not self._slots.acquire(blocking=False):
            raise Busy("too many job-queue calls in progress; try again shortly")
        try:
            future = self._pool.submit(fn, *args, **kwargs)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    async def run(self, timeout: float, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` on this pool, awaited for at most ``timeout`` seconds (TimeoutError)."""
        future = self.submit(fn, *args, **kwargs)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
