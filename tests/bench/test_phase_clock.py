"""The search benchmark's phase clock (bench/search.py): a phase run on several threads at once
(the vector product, one slice of a large cube per thread) is timed first start to last end, so
its figure is the wall time the search waited, not the slices' sum."""

from __future__ import annotations

from collections.abc import Iterator

from bench.search import PhaseClock


class Work:
    def step(self) -> None:
        """Does nothing: the fake clock says how long it took."""


def _ticks(*values: float) -> Iterator[float]:
    return iter(values)


def test_a_span_phase_is_timed_from_the_first_start_to_the_last_end_not_summed() -> None:
    # the clock as two overlapping slices on two threads would read it: 0.000-0.010, 0.002-0.012
    ticks = _ticks(0.0, 0.010, 0.002, 0.012, 1.0, 1.004, 1.001, 1.006)
    clock = PhaseClock(clock=lambda: next(ticks))
    work = Work()
    clock.wrap(work, "step", "vector product", span=True)
    work.step()
    work.step()
    assert round(clock.now["vector product"], 6) == 0.012  # not their sum, 0.020
    clock.clear()
    assert clock.now == {}
    work.step()
    work.step()
    assert round(clock.now["vector product"], 6) == 0.006


def test_a_plain_phase_sums_its_calls() -> None:
    ticks = _ticks(0.0, 0.002, 0.010, 0.013)
    clock = PhaseClock(clock=lambda: next(ticks))
    work = Work()
    clock.wrap(work, "step", "store read")
    work.step()
    work.step()
    assert round(clock.now["store read"], 6) == 0.005
