"""Fan-out: one master event to every follower's order planned and handed to Paper.

In one process, with the real daemon code: a `CopierDaemon` whose links come
from `ledger.load_links()`, follower state from `ledger.load_states()`, the
plan from `daemon.plan_all()`, the intents from `daemon.record_intents()` and
the hand-off from `daemon.dispatch()`, which creates one asyncio task per order
calling `PaperVenue.execute`. The timed span ("fanout") is planning plus
hand-off, with the follower state already loaded; state loading, the intents'
Redis round trip and the fills themselves are timed and reported apart. The
fills really happen (awaited after the span) against PostgreSQL.

Run: .venv/bin/python bench/copier_fanout.py [--followers 10,100,1000] [--events 200,200,50]
Prints one JSON object per follower count on stdout; logs go to stderr.
`p50_us`/`p99_us` are plan + hand-off; `plan_*`, `dispatch_*`, `state_load_*`,
`intents_*`, `fills_*` are the steps; `gc_*` is garbage-collector pause time
inside the span. The untimed fills dominate the runtime (about 3 ms per
Paper fill: 4.5 minutes with the defaults, `--events 200,200,20` for 2.5).
Services come from tests/services.sh (PostgreSQL, Redis); the database
`tradosphere_bench_fanout` is created fresh and dropped at the end, Redis
database 12 is flushed. Whatever service the run started, it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from _common import (
    SYMBOLS,
    GcClock,
    Services,
    bench_env,
    drop_database,
    emit,
    load_average,
    log,
    make_master_and_followers,
    recreate_database,
    setup_django,
    summary,
)

DB_NAME = "tradosphere_bench_fanout"
REDIS_DB = 12


def warmup_events(followers: int) -> int:
    # The first events open the venue pool's database connections; at 1000
    # followers each event costs seconds of (untimed) fills, so fewer there.
    return 5 if followers < 1000 else 3


def us(ns: int) -> float:
    return ns / 1000


async def run_level(followers: int, events: int, gc_freeze: bool) -> dict[str, object]:
    from asgiref.sync import sync_to_async
    from django.utils import timezone

    from brokers.models import PaperPosition
    from copier import ledger
    from copier.core import EventKind, MasterEvent, Side
    from copier.daemon import INTENTS_KEY, CopierDaemon, db
    from tradosphere.bus import async_redis

    log(f"{followers} followers: creating the accounts and links")
    master, links_rows = await sync_to_async(make_master_and_followers)(
        f"fanout-{followers}", followers
    )
    follower_ids = [row.follower_id for row in links_rows]

    daemon = CopierDaemon(consumer=f"bench-fanout-{followers}")
    daemon.redis = async_redis()
    daemon.links = await db(ledger.load_links)()
    links = daemon.links.by_master[master.pk]
    assert len(links) == followers, (len(links), followers)
    warmup = warmup_events(followers)
    if gc_freeze:
        # What a daemon could do once its links are loaded: move every object
        # alive now out of the collector's sight (see docs/performance.md).
        gc.collect()
        gc.freeze()

    def close_follower_positions() -> None:
        # Between events, outside every timed span: the followers start each
        # event flat, so state loading does not grow with the run.
        PaperPosition.objects.filter(account_id__in=follower_ids, closed_at=None).update(
            closed_at=timezone.now()
        )

    state_us: list[float] = []
    plan_us: list[float] = []
    intents_us: list[float] = []
    dispatch_us: list[float] = []
    fanout_us: list[float] = []
    fills_ms: list[float] = []
    gc_us: list[float] = []
    gc_clock = GcClock()
    failed = 0
    log(f"{followers} followers: {warmup} warm-up events, then {events} timed")
    started = time.monotonic()
    for i in range(warmup + events):
        symbol, volume, price = SYMBOLS[i % len(SYMBOLS)]
        event = MasterEvent(
            source=f"acct:{master.pk}",
            seq=i + 1,
            kind=EventKind.POSITION_OPENED,
            master_ref=f"P{followers}x{i}",
            symbol=symbol,
            side=Side.BUY if i % 2 == 0 else Side.SELL,
            volume=Decimal(volume),
            price=Decimal(price),
            ts_event_ms=time.time_ns() // 1_000_000,
            master_balance=Decimal(1_000_000),
            master_equity=Decimal(1_000_000),
        )
        t_detected = time.monotonic_ns()
        states = await db(ledger.load_states)(links, event.master_ref)
        t_state = time.monotonic_ns()
        gc_at_state = gc_clock.total_ns
        # -- the defined span, part 1: plan every follower's order
        outcomes = daemon.plan_all(event, links, states, t_detected)
        to_send = [o for o in outcomes if o.order is not None]
        t_planned = time.monotonic_ns()
        gc_in_span = gc_clock.total_ns - gc_at_state
        # Outside the span: the daemon notes intents in Redis before sending.
        await daemon.record_intents(to_send)
        t_intents = time.monotonic_ns()
        gc_at_intents = gc_clock.total_ns
        # -- the defined span, part 2: hand every order to its connector
        tasks = daemon.dispatch(to_send, redelivered=False)
        t_dispatched = time.monotonic_ns()
        gc_in_span += gc_clock.total_ns - gc_at_intents
        # Outside the span: the fills happen (PaperVenue.execute in the pool).
        await asyncio.gather(*tasks)
        t_filled = time.monotonic_ns()

        not_filled = [o for o in outcomes if o.status != "filled" or o.report is None]
        if len(to_send) != followers or not_filled:
            failed += len(not_filled) + followers - len(to_send)
            for o in not_filled[:3]:
                log(f"not filled: {o.status} {o.reason}")
        await daemon.redis.hdel(INTENTS_KEY, *[o.coid for o in to_send])
        await db(close_follower_positions)()
        if i < warmup:
            continue
        state_us.append(us(t_state - t_detected))
        plan_us.append(us(t_planned - t_state))
        intents_us.append(us(t_intents - t_planned))
        dispatch_us.append(us(t_dispatched - t_intents))
        fanout_us.append(us((t_planned - t_state) + (t_dispatched - t_intents)))
        fills_ms.append((t_filled - t_dispatched) / 1e6)
        gc_us.append(us(gc_in_span))
    gc_clock.close()
    await daemon.redis.aclose()
    elapsed = time.monotonic() - started
    return {
        "bench": "fanout",
        "followers": followers,
        "events": events,
        **summary("", fanout_us),
        **summary("plan_", plan_us),
        **summary("dispatch_", dispatch_us),
        **summary("state_load_", state_us),
        **summary("intents_", intents_us),
        **summary("fills_", fills_ms, unit="_ms", digits=2),
        **summary("gc_", gc_us),
        "gc_freeze": gc_freeze,
        "not_filled": failed,
        "seconds": round(elapsed, 1),
    }


async def run_all(levels: list[tuple[int, int]], gc_freeze: bool) -> None:
    from copier.daemon import VENUE_THREADS

    loop = asyncio.get_running_loop()
    # As CopierDaemon.run() does: the venue calls run in a pool of this size.
    loop.set_default_executor(ThreadPoolExecutor(VENUE_THREADS, "venue"))
    for followers, events in levels:
        result = await run_level(followers, events, gc_freeze)
        emit(result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", default="10,100,1000")
    parser.add_argument("--events", default="200,200,50", help="timed events per level")
    parser.add_argument("--keep-db", action="store_true", help=f"keep {DB_NAME} afterwards")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.collect() + gc.freeze() once links are loaded (an experiment, not the daemon)",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.followers.split(",")]
    events = [int(n) for n in args.events.split(",")]
    if len(events) == 1:
        events *= len(counts)
    if len(events) != len(counts):
        parser.error("give one --events value, or one per --followers value")

    services = Services()
    services.start()
    try:
        database_url = recreate_database(DB_NAME)
        try:
            setup_django(bench_env(database_url, REDIS_DB))
            import uvloop
            from django.core.management import call_command
            from django.db import connections

            from tradosphere.bus import sync_redis

            log(f"migrating {DB_NAME}")
            call_command("migrate", verbosity=0, interactive=False)
            sync_redis().flushdb()
            connections.close_all()
            log(f"load average before: {load_average()}")
            started = time.monotonic()
            uvloop.run(run_all(list(zip(counts, events, strict=True)), args.gc_freeze))
            log(f"all levels done in {time.monotonic() - started:.0f} s")
            sync_redis().flushdb()
        finally:
            if not args.keep_db:
                drop_database(DB_NAME)
    finally:
        services.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
