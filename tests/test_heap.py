"""A server process freezes its start-up heap and collects young objects less often; embedded apps do not."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnigate.app import create_app
from omnigate.heap import settle_heap
from tests.conftest import make_settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def start_and_stop(tmp_path: Path, server_process: bool, **env: str) -> tuple[int, int]:
    app = create_app(
        make_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'omnigate.db'}"}, **env),
        server_process=server_process,
    )
    async with app.router.lifespan_context(app):
        return gc.get_threshold()[0], gc.get_freeze_count()


@pytest.mark.usefixtures("restored_gc")
async def test_server_process_freezes_start_up_heap_and_raises_young_threshold(tmp_path: Path) -> None:
    default_young = gc.get_threshold()[0]
    assert await start_and_stop(tmp_path, server_process=False) == (default_young, 0)
    young, frozen = await start_and_stop(tmp_path, server_process=True)
    assert young == 10_000
    assert frozen > 50_000  # price data, plugins, modules: what every full collection would walk


@pytest.mark.usefixtures("restored_gc")
async def test_threshold_zero_leaves_the_collector_alone(tmp_path: Path) -> None:
    default_young = gc.get_threshold()[0]
    assert await start_and_stop(tmp_path, server_process=True, GC_GEN0_THRESHOLD="0") == (default_young, 0)


@pytest.mark.usefixtures("restored_gc")
def test_settle_heap_keeps_older_generation_thresholds() -> None:
    gc.set_threshold(700, 11, 12)
    settle_heap(2_000)
    assert gc.get_threshold() == (2_000, 11, 12)
    assert gc.get_freeze_count() > 0
