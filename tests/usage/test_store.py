"""Usage rows in the store: round trip, idempotent insert, listing and spend sums, on both backends."""

from __future__ import annotations

import attrs

from omnigate.store.database import Database
from omnigate.store.usage import count_usage, insert_usage, list_usage, spend_since
from omnigate.usage.records import STATUS_CACHE_HIT, STATUS_TRUNCATED
from tests.usage.conftest import make_record


async def test_round_trip_keeps_every_column(db: Database) -> None:
    full = make_record(
        key_id=None,
        status=STATUS_TRUNCATED,
        http_status=200,
        input_tokens=1_000,
        output_tokens=300,
        cache_read_tokens=400,
        cache_write_tokens=100,
        reasoning_tokens=120,
        cost_micros=None,
        latency_ms=987,
        stream=True,
        cached=False,
        fallback_used=True,
        attempts=3,
        error_code="upstream_cut",
        created_at=1_700_000_000_123,
    )
    hit = make_record(status=STATUS_CACHE_HIT, cached=True, cost_micros=0, created_at=1_700_000_000_124)
    await insert_usage(db, [full, hit])
    assert await list_usage(db, "proj_a") == [full, hit]
    back = (await list_usage(db, "proj_a"))[0]
    assert back.stream is True and back.fallback_used is True and back.cached is False
    assert back.cost_micros is None and back.key_id is None


async def test_text_and_extreme_numbers_round_trip_exactly(db: Database) -> None:
    # On PostgreSQL a batch travels as JSON: quotes, backslashes, control characters and non-ASCII text
    # must come back unchanged, and 64-bit counts exactly (not through a float).
    odd = make_record(
        model='gpt-4o "mini" \\ path/\t\u00e9\u4e2d\U0001f680',
        error_code='{"not": "json"}\n[1]',
        input_tokens=2**63 - 1,
        cost_micros=-(2**63),
        created_at=2**53 + 1,
    )
    blank = make_record(model="", error_code="")
    await insert_usage(db, [odd, blank])
    assert await list_usage(db, "proj_a") == [blank, odd]


async def test_insert_is_idempotent_on_request_id(db: Database) -> None:
    batch = [make_record() for _ in range(50)]
    await insert_usage(db, batch)
    await insert_usage(db, batch)  # a replayed batch (commit acknowledged but the ack was lost)
    changed = [attrs.evolve(batch[0], cost_micros=999_999), make_record()]
    await insert_usage(db, changed)  # overlap: the existing row is kept, the new one added
    assert await count_usage(db) == 51
    rows = {r.request_id: r for r in await list_usage(db, "proj_a")}
    assert rows[batch[0].request_id] == batch[0]
    await insert_usage(db, [])
    assert await count_usage(db) == 51


async def test_insert_inside_a_transaction_rolls_back(db: Database) -> None:
    class Boom(Exception):
        pass

    try:
        async with db.transaction() as tx:
            await insert_usage(tx, [make_record(), make_record()])
            raise Boom
    except Boom:
        pass
    assert await count_usage(db) == 0


async def test_list_since_and_spend_sums(db: Database) -> None:
    records = [
        make_record(created_at=1_000, cost_micros=100),
        make_record(created_at=2_000, cost_micros=250),
        make_record(created_at=3_000, cost_micros=None),  # unknown price: not $0, not counted
        make_record(created_at=3_000, cost_micros=5_000_000_000_000, project_id="proj_b"),
        make_record(created_at=4_000, cost_micros=7, org_id="org_b", project_id="proj_c"),
    ]
    await insert_usage(db, records)
    assert [r.created_at for r in await list_usage(db, "proj_a", since_ms=2_000)] == [2_000, 3_000]
    assert await list_usage(db, "nope") == []
    assert await spend_since(db, project_id="proj_a", since_ms=0) == 350
    assert await spend_since(db, project_id="proj_a", since_ms=1_001) == 250
    assert await spend_since(db, org_id="org_a", since_ms=0) == 5_000_000_000_350
    assert await spend_since(db, org_id="org_a", project_id="proj_b", since_ms=0) == 5_000_000_000_000
    assert await spend_since(db, since_ms=3_500) == 7
    assert await spend_since(db, project_id="proj_a", since_ms=10_000) == 0
    assert isinstance(await spend_since(db, org_id="org_a", since_ms=0), int)
