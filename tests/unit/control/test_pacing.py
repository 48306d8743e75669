"""The streaming bandwidth rule: 6 MB unpaced, then at most 2 MB/s."""

from __future__ import annotations

import pytest

from lambdalite.control.streaming import BURST_BYTES, MB, PACED_RATE, Pacer


class Clock:
    """Time that moves only when told to (the pacer's waits are added to it)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def send(pacer: Pacer, clock: Clock, data: bytes) -> list[int]:
    sizes = []
    for piece in pacer.pieces(data):
        clock.now += pacer.delay(len(piece))
        sizes.append(len(piece))
    return sizes


def test_the_burst_is_not_paced() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    assert send(pacer, clock, b"x" * BURST_BYTES) == [BURST_BYTES]
    assert clock.now == 100.0 and pacer.waited == 0.0


def test_bytes_past_the_burst_go_at_the_rate_in_small_pieces() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    sizes = send(pacer, clock, b"x" * (8 * MB))
    assert sizes[0] == BURST_BYTES and sum(sizes) == 8 * MB
    assert max(sizes[1:]) <= 128 * 1024
    # 2 MB past the burst at 2 MB/s: one second.
    assert abs(clock.now - 101.0) < 1e-6
    assert PACED_RATE == 2 * MB


def test_a_pause_earns_no_credit() -> None:
    clock = Clock()
    pacer = Pacer(burst=10, rate=10.0, clock=clock)
    assert pacer.delay(4) == 0.0
    assert pacer.delay(8) == pytest.approx(0.2)  # 2 of its bytes are past the burst, at 10 B/s
    clock.now += 0.2
    clock.now += 10.0  # the function paused
    assert pacer.delay(5) == pytest.approx(0.5)  # still 10 B/s: nothing was saved up
