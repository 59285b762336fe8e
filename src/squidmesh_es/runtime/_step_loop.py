"""The event loop async steps run on: one per worker (and one per runtime), on its own thread.

A fresh loop per attempt (``asyncio.run``) would close every client a step opened, and a
loop per worker thread would make as many loops (and clients) as threads. One long-lived
loop lets a worker run many I/O-bound steps at once on far fewer threads, and lets a step keep
a client across attempts (see `LoopLocal`). The loop starts with the first async step and
is closed, with the async generators and the clients they hold, when its owner stops.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["Running", "StepLoop"]

_T = TypeVar("_T")

CLOSE_TIMEOUT = 10.0
"""Seconds `StepLoop.close` waits for cancelled steps and closing clients."""


class Running(Generic[_T]):
    """A coroutine submitted to a `StepLoop`: its result as a future, and a way to stop it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.future: Future[_T] = Future()
        """Done when the coroutine ends; cancelled when it was cancelled."""
        self._loop = loop
        self._task: asyncio.Task[_T] | None = None

    def cancel(self) -> None:
        """Ask the coroutine to stop (`asyncio.CancelledError` inside it); returns at once."""
        try:
            self._loop.call_soon_threadsafe(self._cancel)
        except RuntimeError:  # the loop is closed: nothing runs on it any more
            pass

    def _begin(self, coroutine: Coroutine[object, object, _T]) -> None:
        self._task = self._loop.create_task(coroutine)
        self._task.add_done_callback(self._done)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _done(self, task: asyncio.Task[_T]) -> None:
        if task.cancelled():
            self.future.cancel()
        elif (error := task.exception()) is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(task.result())


class StepLoop:
    """An asyncio loop on a daemon thread, started on first use; thread-safe."""

    def __init__(self, name: str = "squidmesh-steps") -> None:
        """Name the loop's thread; nothing starts until the first `submit`."""
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def started(self) -> bool:
        """Whether the loop's thread runs (it starts with the first coroutine)."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, coroutine: Coroutine[object, object, _T]) -> Running[_T]:
        """Run ``coroutine`` on the loop; returns at once.

        Raises:
            RuntimeError: the loop was closed (the coroutine is closed unrun).
        """
        try:
            loop = self._ensure()
        except RuntimeError:
            coroutine.close()
            raise
        running: Running[_T] = Running(loop)
        loop.call_soon_threadsafe(running._begin, coroutine)
        return running

    def run(self, coroutine: Coroutine[object, object, _T]) -> _T:
        """Run ``coroutine`` on the loop and wait for its result.

        Called from the loop's own thread (a step making a blocking call that runs another
        step), it runs on a fresh loop on a helper thread instead of waiting for itself.
        """
        if threading.current_thread() is self._thread:
            with ThreadPoolExecutor(1, thread_name_prefix=self.name) as helper:
                return helper.submit(asyncio.run, coroutine).result()
        return self.submit(coroutine).future.result()

    def close(self) -> None:
        """Cancel what still runs, close async generators (and the clients they hold), stop.

        Idempotent; later `submit` calls raise.
        """
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            done = asyncio.run_coroutine_threadsafe(_shutdown(loop), loop)
            done.result(CLOSE_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CLOSE_TIMEOUT)
        if not thread.is_alive():
            loop.close()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: the step loop is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_serve, args=(loop,), name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


async def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks(loop) if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()
