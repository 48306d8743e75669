"""Keep-alive, pre-warming and the idle memory budget, with real runtime processes.

No assertion depends on how fast the machine is: the tests poll for states with generous
deadlines and only require that they occur in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from lambdalite.invocation.model import FunctionSpec

from .conftest import Harness, make_spec, run_async

SLEEPER = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return "ok"
"""


def live(h: Harness, function: str) -> list[str]:
    """States of the environments of ``function`` that are not dead."""
    return [
        e.state
        for e in h.manager.environments()
        if e.function_name == function and e.state != "dead"
    ]


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def spec_of(code_dir: Path, name: str, memory_mb: int = 128) -> FunctionSpec:
    return make_spec(
        code_dir,
        function_name=name,
        function_arn=f"arn:aws:lambda:us-east-1:000000000000:function:{name}",
        memory_mb=memory_mb,
    )


def test_budget_evicts_the_second_environment_of_a_function_first(
    code: Callable[[str], Path],
) -> None:
    """Three idle 128 MB environments under a 300 MB budget: the one that goes is the second
    environment of the function with two (needed only when two invocations overlap)."""

    @run_async
    async def scenario() -> None:
        async with Harness(idle_memory_mb=300, keep_alive=60) as h:
            directory = code(SLEEPER)
            pair, solo = spec_of(directory, "pair"), spec_of(directory, "solo")
            sleep = json.dumps({"sleep": 0.5}).encode()
            await asyncio.gather(h.invoke(pair, sleep), h.invoke(pair, sleep))
            assert live(h, "pair") == ["idle", "idle"]
            await h.invoke(solo)
            await until(lambda: len(live(h, "pair")) == 1)
            assert live(h, "solo") == ["idle"]
            assert h.manager.keeper.idle_mb == 256 <= h.manager.keeper.limit_mb
            assert h.manager.keeper.stats.evicted == 1
            # Both functions still start warm.
            assert (await h.invoke(pair)).init_duration_ms is None
            assert (await h.invoke(solo)).init_duration_ms is None

    scenario()


def test_budget_evicts_by_value_per_megabyte(code: Callable[[str], Path]) -> None:
    """A 256 MB environment holds twice the memory of a 128 MB one for the same chance of
    reuse: it goes first, even though it was used last."""

    @run_async
    async def scenario() -> None:
        async with Harness(idle_memory_mb=300, keep_alive=60) as h:
            directory = code(SLEEPER)
            small, big = spec_of(directory, "small", 128), spec_of(directory, "big", 256)
            await h.invoke(small)
            await h.invoke(big)
            await until(lambda: not live(h, "big"))
            assert live(h, "small") == ["idle"]
            assert h.manager.keeper.idle_mb == 128
            big_again = await h.invoke(big)
            assert big_again.init_duration_ms is not None  # it had to start again

    scenario()


def test_hybrid_policy_stops_the_environment_and_prewarms_it(
    code: Callable[[str], Path],
) -> None:
    """A function invoked every 1-1.5 s (0.1 s bins): once three idle times are known, its
    environment is stopped after a bin of idleness and started again (INIT without an
    invocation) before the next predicted invocation, which then runs warm."""

    @run_async
    async def scenario() -> None:
        async with Harness(
            keep_alive_policy="hybrid-histogram", keep_alive_bin=0.1, keep_alive=1.0
        ) as h:
            spec = spec_of(code(SLEEPER), "periodic")
            await h.invoke(spec)
            for gap in (1.0, 1.5, 1.0):
                await asyncio.sleep(gap)
                await h.invoke(spec)
            inits = sum(m.startswith("INIT_START") for m in h.sink.messages())
            # Stopped first (the pre-warm window starts at 0.9 s of idleness) ...
            await until(lambda: not live(h, "periodic"))
            # ... then started again ahead of the invocation, INIT logged on its own.
            await until(lambda: live(h, "periodic") == ["idle"])
            messages = h.sink.messages()
            assert sum(m.startswith("INIT_START") for m in messages) == inits + 1
            assert messages[-1].startswith("INIT_REPORT")
            warm = await h.invoke(spec)
            assert warm.init_duration_ms is None
            assert h.manager.keeper.stats.prewarmed >= 1
            assert h.manager.keeper.stats.unloaded >= 1

    scenario()


def test_prewarmed_environment_unused_is_stopped_after_its_window(
    code: Callable[[str], Path],
) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(
            keep_alive_policy="hybrid-histogram", keep_alive_bin=0.1, keep_alive=1.0
        ) as h:
            spec = spec_of(code(SLEEPER), "skipped")
            await h.invoke(spec)
            for gap in (1.0, 1.5, 1.0):
                await asyncio.sleep(gap)
                await h.invoke(spec)
            await until(lambda: h.manager.keeper.stats.prewarmed == 1)
            # Never invoked: gone after the keep-alive window (1.76 s after going idle), and not
            # started again until the function is invoked again.
            await until(lambda: not live(h, "skipped"))
            await asyncio.sleep(2.0)
            assert not live(h, "skipped")
            assert h.manager.keeper.stats.prewarmed == 1

    scenario()


def test_fixed_policy_stops_idle_environments_after_keep_alive(
    code: Callable[[str], Path],
) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(keep_alive=0.5) as h:
            spec = spec_of(code(SLEEPER), "fixed")
            await h.invoke(spec)
            assert live(h, "fixed") == ["idle"]
            await until(lambda: not live(h, "fixed"))
            assert h.manager.keeper.stats.expired == 1
            assert h.manager.keeper.idle_mb == 0

    scenario()


def test_no_prewarm_after_the_function_is_deleted(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(
            keep_alive_policy="hybrid-histogram", keep_alive_bin=0.1, keep_alive=1.0
        ) as h:
            spec = spec_of(code(SLEEPER), "deleted")
            await h.invoke(spec)
            for gap in (1.0, 1.5, 1.0):
                await asyncio.sleep(gap)
                await h.invoke(spec)
            await h.manager.retire("deleted")
            await asyncio.sleep(3.0)  # past the pre-warm window and the keep-alive window
            assert not live(h, "deleted")
            assert h.manager.keeper.stats.prewarmed == 0

    scenario()
