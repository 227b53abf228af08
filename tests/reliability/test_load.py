"""Point 7, load on the embedded default: a sustained run of adds over many cubes against a real
`memcube serve` (the local MiniLM embedder off: hash, so the figure is the service's, not the
model's); every task completes, item counts are exact, per-cube order holds. Throughput and
p50/p99 of add latency and time-to-completed are reported, never asserted. The real-server tier's
run: tests/realserver/test_reliability.py."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import Figures, Scale, Serve
from tests.reliability.load import check_load, run_load

pytestmark = pytest.mark.e2e


def test_a_sustained_run_of_adds_over_many_cubes_completes_every_task_exactly(
    serve: Serve, scale: Scale, figures: Figures
) -> None:
    server = serve(workers=2)  # the default
    cubes = [f"kb-load-{n}" for n in range(scale.load_cubes)]
    result = run_load(
        server.url, cubes=cubes, per_cube=scale.load_adds_per_cube, clients=scale.load_clients, timeout=600
    )
    check_load(result, server.url)
    figures.record("7 load (embedded)", clients=scale.load_clients, workers=2, **result.figures())
