"""Garbage-collector settings for a server process: the start-up heap frozen, young collections rarer."""

from __future__ import annotations

import gc


def settle_heap(gen0_threshold: int) -> None:
    """Call once start-up has built its long-lived objects; ``gen0_threshold`` 0 leaves the collector alone.

    Start-up leaves ~150k long-lived objects (mostly price data) that every full collection would walk
    (~100 ms each, a pause every couple of seconds under load); frozen, collections skip them. With
    Python's default young threshold (700) the objects of 50 in-flight requests alone trigger a young
    collection every ~20 requests, each promoting request objects that die right after; requests
    leave almost no cyclic garbage, so collecting young objects rarely costs no memory.
    """
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
