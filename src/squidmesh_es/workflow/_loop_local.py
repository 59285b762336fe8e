"""One value per event loop, for async steps: a client kept across attempts, closed with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

__all__ = ["LoopLocal"]

_T = TypeVar("_T")


class LoopLocal(Generic[_T]):
    """A value made once per running event loop by ``factory``, entered as a context manager.

    A worker runs async steps on one long-lived loop, so a step that asks for the value on
    every attempt gets the same client, with its connection pool, each time::

        clients = LoopLocal(lambda: httpx.AsyncClient(timeout=5))

        class Fetch(Step):
            async def run(self, input, ctx):
                client = await clients.get()
                ...

    The value is entered (``async with factory()``) inside an async generator that the loop
    tracks; when the loop is closed (the worker stops, or ``asyncio.run`` ends) the loop
    closes its async generators, which leaves the context: the client is closed on the loop
    that opened it. Outside a worker (``run_step``, one fresh loop per attempt) each attempt
    gets its own value, closed when the attempt ends.
    """

    def __init__(self, factory: Callable[[], AbstractAsyncContextManager[_T]]) -> None:
        """Keep ``factory``; nothing is made until a step awaits `get`."""
        self._factory = factory
        self._values: dict[asyncio.AbstractEventLoop, asyncio.Future[_T]] = {}
        """Each loop's value (a future while it is being made), until that loop closes it."""
        self._holders: dict[asyncio.AbstractEventLoop, AsyncIterator[_T]] = {}

    async def get(self) -> _T:
        """The running loop's value, made on first use; concurrent first calls share it.

        A factory that raises makes this call raise, and the next call tries again.
        """
        loop = asyncio.get_running_loop()
        made = self._values.get(loop)
        if made is None:
            made = loop.create_future()
            self._values[loop] = made
            holder = self._hold()
            try:
                made.set_result(await anext(holder))
            except BaseException as exc:
                self._values.pop(loop, None)  # (the holder may have forgotten it already)
                if isinstance(exc, asyncio.CancelledError):
                    made.cancel()
                else:
                    made.set_exception(exc)
                    made.exception()  # retrieved: the callers waiting on it re-raise it
                raise
            self._holders[loop] = holder
        return await asyncio.shield(made)

    async def _hold(self) -> AsyncIterator[_T]:
        try:
            async with self._factory() as value:
                yield value
        finally:
            # Closed by its loop's shutdown: forget the loop, so a closed loop is not kept.
            loop = asyncio.get_running_loop()
            self._values.pop(loop, None)
            self._holders.pop(loop, None)
