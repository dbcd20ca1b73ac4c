"""Handled master events leave the copier stream; events nobody has read or
acknowledged never do, however far behind the copier is."""

from __future__ import annotations

import asyncio

from tradosphere.bus import async_redis, trim_acknowledged

STREAM = "test:trim"


def trim() -> int:
    async def go() -> int:
        client = async_redis()
        try:
            return await trim_acknowledged(client, STREAM)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_only_entries_every_group_acknowledged_are_trimmed(redis_client):
    redis_client.delete(STREAM)
    ids = [redis_client.xadd(STREAM, {"n": str(i)}) for i in range(10)]
    assert trim() == 0  # no group reads it yet: everything stays
    redis_client.xgroup_create(STREAM, "a", id="0")
    redis_client.xgroup_create(STREAM, "b", id="0")
    [(_, read_a)] = redis_client.xreadgroup("a", "a1", {STREAM: ">"}, count=6)
    redis_client.xack(STREAM, "a", *[m for m, _ in read_a[:2]], read_a[3][0])
    [(_, read_b)] = redis_client.xreadgroup("b", "b1", {STREAM: ">"}, count=8)
    redis_client.xack(STREAM, "b", *[m for m, _ in read_b])
    # Group a still holds entry 2 pending (3 is acknowledged after it): 0 and 1 go.
    assert trim() == 2
    assert [m for m, _ in redis_client.xrange(STREAM)] == ids[2:]
    redis_client.xack(STREAM, "a", *[m for m, _ in read_a])
    # Now a has read 6 and acknowledged them all; b has read 8: 6 to 9 stay unread by a.
    assert trim() == 4
    assert [m for m, _ in redis_client.xrange(STREAM)] == ids[6:]
    assert redis_client.xreadgroup("a", "a1", {STREAM: ">"}) == [
        [STREAM, list(zip(ids[6:], [{"n": str(i)} for i in range(6, 10)], strict=True))]
    ]
