"""`LoopLocal`: one value per event loop, shared by concurrent callers, closed with the loop."""

from __future__ import annotations

import asyncio
import gc
import weakref
from types import TracebackType

import pytest

from squidmesh_es.workflow import LoopLocal

EVENTS: list[str] = []


class Resource:
    def __init__(self) -> None:
        EVENTS.append("made")

    async def __aenter__(self) -> Resource:
        await asyncio.sleep(0)  # a first caller yields here; the others must wait for it
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        EVENTS.append("closed")


@pytest.fixture(autouse=True)
def _fresh() -> None:
    EVENTS.clear()


def test_concurrent_callers_on_one_loop_share_one_value_closed_with_the_loop() -> None:
    local = LoopLocal(Resource)

    async def main() -> set[int]:
        values = await asyncio.gather(*(local.get() for _ in range(5)))
        assert EVENTS == ["made"]
        return {id(v) for v in values}

    assert len(asyncio.run(main())) == 1
    assert EVENTS == ["made", "closed"]


def test_a_closed_loop_is_not_kept_alive() -> None:
    local = LoopLocal(Resource)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await local.get()

    asyncio.run(main())
    gc.collect()

    assert loops[0]() is None


def test_each_loop_gets_its_own_value() -> None:
    local = LoopLocal(Resource)

    first = asyncio.run(local.get())
    second = asyncio.run(local.get())

    assert first is not second
    assert EVENTS == ["made", "closed", "made", "closed"]


def test_a_failing_factory_raises_and_the_next_call_tries_again() -> None:
    calls = []

    def flaky() -> Resource:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("not yet")
        return Resource()

    local = LoopLocal(flaky)

    async def main() -> Resource:
        with pytest.raises(ConnectionError):
            await local.get()
        return await local.get()

    assert isinstance(asyncio.run(main()), Resource)
    assert len(calls) == 2
