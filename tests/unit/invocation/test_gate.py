"""The init gate: bounded concurrent INITs, arrival order, hand-over of warm environments."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from lambdalite.invocation.gate import InitGate, derive_capacity

from .conftest import Harness, decoded, make_spec, run_async

SLOW_INIT = """
import os, time
time.sleep(float(os.environ.get("INIT_SECONDS", "0")))
def handler(event, context):
    time.sleep(event.get("seconds", 0))
    return {"pid": os.getpid()}
"""


def test_capacity_is_configured_or_derived_from_cpus() -> None:
    assert derive_capacity(3) == 3
    assert derive_capacity(0, cpus=2) == derive_capacity(0, cpus=1) * 2 >= 2
    assert derive_capacity(0) >= 1


def test_waiters_get_slots_in_arrival_order() -> None:
    @run_async
    async def scenario() -> None:
        returned: list[str] = []
        gate: InitGate[str] = InitGate(2, returned.append)
        order: list[int] = []

        async def worker(i: int) -> None:
            assert await gate.enter() is None
            order.append(i)
            await asyncio.sleep(0.01)
            gate.leave()

        workers = []
        for i in range(8):
            workers.append(asyncio.create_task(worker(i)))
            await asyncio.sleep(0)  # arrive one after the other
        await asyncio.gather(*workers)
        assert order == list(range(8))
        assert gate.active == 0 and gate.waiting == 0

    scenario()


def test_hand_over_serves_the_oldest_waiter_of_that_key() -> None:
    @run_async
    async def scenario() -> None:
        returned: list[str] = []
        gate: InitGate[str] = InitGate(1, returned.append)
        assert await gate.enter() is None  # the only slot is taken
        other = asyncio.create_task(gate.enter("b"))
        first = asyncio.create_task(gate.enter("a", "live"))
        second = asyncio.create_task(gate.enter("a"))
        await asyncio.sleep(0)
        assert gate.waiting == 3 and gate.waiting_for("a")
        assert not gate.hand_over("a", "env-x", tag="other")  # no waiter of that qualifier
        assert gate.hand_over("a", "env-1", tag="live")
        assert gate.hand_over("a", "env-2")
        assert not gate.hand_over("a", "env-3")
        assert (await first, await second) == ("env-1", "env-2")
        gate.leave()  # the slot passes to the remaining waiter
        assert await other is None
        assert gate.active == 1 and gate.handed_over == 2
        # A waiter cancelled after it was handed something gives it back.
        late = asyncio.create_task(gate.enter("a"))
        await asyncio.sleep(0)
        assert gate.hand_over("a", "env-4")
        late.cancel()
        await asyncio.gather(late, return_exceptions=True)
        assert returned == ["env-4"]
        # A waiter cancelled while waiting leaves no trace.
        gone = asyncio.create_task(gate.enter("a"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        assert gate.waiting == 0 and not gate.waiting_for("a")
        gate.leave()
        assert gate.active == 0

    scenario()


def test_burst_beyond_the_gate_all_initialize(code: Callable[[str], Path]) -> None:
    """Five environments must initialize, one at a time, each INIT well within the INIT
    timeout but the last one only let through after more than the timeout has passed: the
    INIT clock starts at the slot, not on arrival, so none of them times out."""

    @run_async
    async def scenario() -> None:
        async with Harness(concurrent_inits=1, init_timeout=2.0) as h:
            spec = make_spec(code(SLOW_INIT), environment={"INIT_SECONDS": "0.6"}, timeout_s=20)
            # Each handler holds its environment until after every INIT has started, so no
            # waiter can be handed a warm environment instead.
            results = await asyncio.gather(*(h.invoke(spec, b'{"seconds": 4}') for _ in range(5)))
            assert [r.error_type for r in results] == [None] * 5
            assert all(r.init_duration_ms is not None for r in results)
            assert len({decoded(r)["pid"] for r in results}) == 5
            assert h.manager.gate.active == 0

    scenario()


def test_waiting_invocations_take_environments_that_became_idle(
    code: Callable[[str], Path],
) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(concurrent_inits=1) as h:
            spec = make_spec(code(SLOW_INIT), environment={"INIT_SECONDS": "0.5"})
            results = await asyncio.gather(*(h.invoke(spec) for _ in range(8)))
            assert [r.error_type for r in results] == [None] * 8
            warm = [r for r in results if r.init_duration_ms is None]
            assert warm and h.manager.gate.handed_over == len(warm)
            assert len({decoded(r)["pid"] for r in results}) == 8 - len(warm)

    scenario()
