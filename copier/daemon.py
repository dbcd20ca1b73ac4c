"""The copier daemon: master events in, follower orders out.

It reads master events from a Redis stream through a consumer group, plans
each follower's order with the pure core, records the intents in Redis, sends
the orders of one event concurrently, and only then writes what happened to
the database, so no database write sits between "planned" and "sent". An
event is acknowledged on the stream after its executions are recorded. On
start, before anything else, the daemon asks the venues about every intent
left from before, then handles the events it had not acknowledged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import os
import signal
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import redis
import redis.asyncio as aredis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from brokers.venues.base import DuplicateOrder, Report, Venue, VenueError
from brokers.venues.paper import PaperVenue
from brokers.venues.paper_batch import execute_batch
from copier import ledger
from copier.core import (
    FollowerState,
    MasterEvent,
    Skip,
    client_order_id,
    plan,
)
from copier.core.events import EventFormatError
from copier.ledger import LinkCache, LinkInfo, Outcome
from copier.models import Execution
from copier.notify import user_group
from copier.signals import SignalConsumer
from copier.watchers import WatcherPool
from tradosphere.bus import (
    COPIER_HEARTBEAT_KEY,
    LINKS_VERSION_KEY,
    async_redis,
    trim_acknowledged,
)

log = logging.getLogger("copier")
P = ParamSpec("P")
R = TypeVar("R")

DEAD_LETTER_STREAM = "copier:dead"
INTENTS_KEY = "copier:intents"
LINKS_MAX_AGE_S = 5.0
TEMPORARY_RETRIES = 3
# Venue calls block in threads. Paper batches one event's orders, and on two
# cores 8 threads beat 32 for the rest (docs/performance.md).
VENUE_THREADS = 8


def db(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run a ledger function on the daemon's single database thread."""
    return sync_to_async(fn, thread_sensitive=True)


def own_db_thread(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run a ledger function on a pool thread (with its own connection), off `db`'s thread."""
    return sync_to_async(fn, thread_sensitive=False)


class CopierDaemon:
    def __init__(self, consumer: str | None = None) -> None:
        self.stream = settings.COPIER_STREAM
        self.group = settings.COPIER_GROUP
        self.consumer = consumer or os.environ.get("COPIER_CONSUMER") or "copier-1"
        self.stopping = asyncio.Event()
        self.links = LinkCache()
        self.recent: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.redis: aredis.Redis | None = None
        self.needs_recovery = False
        # Fills found while reconciling intents, used instead of asking again.
        self.reconciled: dict[str, Report] = {}
        self.watchers: WatcherPool | None = None

    # -- lifecycle -------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(VENUE_THREADS, "venue"))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.redis = async_redis()
        self.watchers = WatcherPool(self.redis, self.publish_records, db)
        # Signals get their own database thread: a batch of them must never hold
        # up the thread that records followers' fills (docs/performance.md).
        self.signals = SignalConsumer(
            self.redis, self.publish_records, own_db_thread, self.consumer
        )
        await self.ensure_group()
        log.info("copier %s started (pid %d) on stream %s", self.consumer, os.getpid(), self.stream)
        await self.heartbeat()
        await self.recover()
        tasks = [
            asyncio.create_task(self.every(1.0, self.heartbeat)),
            asyncio.create_task(self.every(2.0, self.sweep_outbox)),
            asyncio.create_task(self.every(10.0, self.trim_stream)),
            asyncio.create_task(self.every(LINKS_MAX_AGE_S, self.reload_links)),
            asyncio.create_task(self.every(5.0, self.watchers.renew)),
            asyncio.create_task(self.signals.run()),
        ]
        await self.refresh_links(force=True)
        try:
            while not self.stopping.is_set():
                try:
                    if self.needs_recovery:
                        self.needs_recovery = False
                        await self.recover()
                    await self.consume_once(block_ms=500)
                except Exception:
                    # The entry stays pending on the stream; recovery retries it.
                    log.exception("event handling failed; retrying in 1 s")
                    self.needs_recovery = True
                    await asyncio.sleep(1.0)
        finally:
            for t in tasks:
                t.cancel()
            await self.watchers.close()
            for venue in self.links.venues.values():
                await venue.close()
            await self.redis.aclose()
            log.info("copier %s stopped", self.consumer)

    async def every(self, interval_s: float, step: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await step()
            except (redis.RedisError, OSError) as e:
                log.warning("%s failed: %s", getattr(step, "__name__", step), e)
            except Exception:
                log.exception("%s failed", getattr(step, "__name__", step))
            await asyncio.sleep(interval_s)

    async def ensure_group(self) -> None:
        assert self.redis is not None
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def heartbeat(self) -> None:
        assert self.redis is not None
        beat = f"{time.time():.3f} {self.consumer} {socket.gethostname()} {os.getpid()}"
        await self.redis.set(COPIER_HEARTBEAT_KEY, beat, ex=60)

    async def sweep_outbox(self) -> None:
        published = await db(ledger.publish_unpublished)()
        if published:
            log.info("published %d event(s) from the outbox", published)

    async def trim_stream(self) -> None:
        """Handled master events leave the stream; unread ones never do (no length cap)."""
        assert self.redis is not None
        trimmed = await trim_acknowledged(self.redis, self.stream)
        if trimmed:
            log.debug("trimmed %d handled event(s) from %s", trimmed, self.stream)

    # -- consuming ---------------------------------------------------------------

    async def recover(self) -> int:
        """Reconcile intents with the venues, then handle unacknowledged events."""
        assert self.redis is not None
        await self.refresh_links(force=True)
        intents = await self.redis.hgetall(INTENTS_KEY)
        for coid, raw in intents.items():
            intent = json.loads(raw)
            venue = self.links.venues.get(int(intent["follower_id"]))
            if venue is None:
                continue
            if (report := await venue.find(coid, intent.get("symbol"))) is not None:
                self.reconciled[coid] = report
        if intents:
            log.info(
                "reconciled %d intent(s): %d had reached the venue",
                len(intents),
                len(self.reconciled),
            )
        handled = 0
        while True:
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: "0"}, count=100
            )
            entries = reply[0][1] if reply else []
            if not entries:
                break
            await self.handle_entries(entries, redelivered=True)
            handled += len(entries)
        _next, claimed, *_ = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_time=30_000, count=100
        )
        await self.handle_entries(claimed, redelivered=True)
        handled += len(claimed)
        if intents:
            # Every intent's event has now been handled and recorded.
            await self.redis.hdel(INTENTS_KEY, *intents)
        self.reconciled.clear()
        if handled:
            log.info("recovered %d unacknowledged event(s)", handled)
        return handled

    async def consume_once(self, block_ms: int = 500) -> int:
        assert self.redis is not None
        try:
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=64, block=block_ms
            )
        except redis.ResponseError as e:
            if "NOGROUP" in str(e):  # the stream was deleted under us
                await self.ensure_group()
                return 0
            raise
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            log.warning("event bus unavailable: %s", e)
            await asyncio.sleep(1.0)
            return 0
        entries = [entry for _stream, batch in reply or [] for entry in batch]
        await self.handle_entries(entries, redelivered=False)
        return len(entries)

    async def handle_entries(
        self, entries: list[tuple[str, dict[str, str]]], redelivered: bool
    ) -> None:
        """Events read together, in waves of events that share no account.

        Within a wave the events go together: one state load, one Paper batch,
        one ledger write. An event waits for a later wave when an event before
        it in the read touches one of its accounts (its master, or a follower
        of its master), so each master's events, and what each follower sees,
        keep the stream's order.
        """
        assert self.redis is not None
        parsed: list[Parsed] = []
        for msg_id, fields in entries:
            try:
                event = MasterEvent.from_wire(fields)
                account_id = int(event.source.removeprefix("acct:"))
            except (EventFormatError, ValueError) as e:
                log.error("dead-lettering malformed event %s: %s", msg_id, e)
                await self.redis.xadd(
                    DEAD_LETTER_STREAM, {**fields, "error": str(e)}, maxlen=10_000
                )
                await self.redis.xack(self.stream, self.group, msg_id)
                continue
            parsed.append((msg_id, event, account_id))
        if not parsed:
            return
        await self.refresh_links()
        for wave in waves(parsed, self.links.by_master):
            await self.handle_wave(wave, redelivered)

    async def handle_wave(self, wave: list[Parsed], redelivered: bool) -> None:
        assert self.redis is not None
        t_detected = time.monotonic_ns()
        received_ms = time.time_ns() // 1_000_000
        todo = [
            (event, links)
            for _msg_id, event, account_id in wave
            if (event.source, event.seq) not in self.recent
            and (links := self.links.by_master.get(account_id, []))
        ]
        if todo:
            outcomes = await self.copy_events(todo, t_detected, redelivered)
            for o in outcomes:
                o.signal_age_ms = received_ms - o.event.ts_event_ms
            await self.finish(outcomes)
        await self.redis.xack(self.stream, self.group, *[msg_id for msg_id, _, _ in wave])
        for _msg_id, event, _account_id in wave:
            self.recent[(event.source, event.seq)] = None
        while len(self.recent) > 10_000:
            self.recent.popitem(last=False)

    async def refresh_links(self, force: bool = False) -> None:
        """Reload links when the site says they changed (checked before each event)."""
        assert self.redis is not None
        try:
            version = await self.redis.get(LINKS_VERSION_KEY)
        except redis.RedisError:
            version = self.links.version
        if force or version != self.links.version or not self.links.loaded_at:
            await self.load_links(version)

    @staticmethod
    async def connect_venue(cache: LinkCache, follower_id: int, venue: Venue) -> None:
        """Open a new connector; one that cannot connect serves no copies until the next load."""
        try:
            await venue.connect()
        except VenueError as e:
            log.warning("follower %s: cannot connect to its venue: %s", follower_id, e.message)
            await venue.close()
            del cache.venues[follower_id]
            cache.venue_keys.pop(follower_id, None)

    async def reload_links(self) -> None:
        """The periodic reload, off the hot path, in case an announcement was lost."""
        if time.monotonic() - self.links.loaded_at >= LINKS_MAX_AGE_S:
            await self.load_links(self.links.version)

    async def load_links(self, version: str | None) -> None:
        old = self.links
        cache = await db(ledger.load_links)(old)
        cache.version, cache.loaded_at = version, time.monotonic()
        kept = {id(v) for v in cache.venues.values()}
        known = {id(v) for v in old.venues.values()}
        for follower_id, venue in list(cache.venues.items()):
            if id(venue) not in known:
                await self.connect_venue(cache, follower_id, venue)
        self.links = cache
        for venue in old.venues.values():
            if id(venue) not in kept:
                await venue.close()
        if self.watchers is not None:
            await self.watchers.sync(cache.exchange_masters)
        # Long-lived objects (links, rules, venues) leave the collector's scans,
        # which otherwise pause every process-wide collection for tens of ms.
        gc.collect()
        gc.freeze()

    # -- one event ---------------------------------------------------------------

    async def copy_events(
        self,
        events: list[tuple[MasterEvent, list[LinkInfo]]],
        t_detected: int,
        redelivered: bool,
    ) -> list[Outcome]:
        states = await db(ledger.load_states_many)([(links, e.master_ref) for e, links in events])
        outcomes = [
            o
            for (event, links), st in zip(events, states, strict=True)
            for o in self.plan_all(event, links, st, t_detected)
        ]
        to_send = [o for o in outcomes if o.order is not None]
        if to_send:
            await self.record_intents(to_send)
            await asyncio.gather(*self.dispatch(to_send, redelivered))
        return outcomes

    def plan_all(
        self,
        event: MasterEvent,
        links: list[LinkInfo],
        states: dict[int, FollowerState],
        t_detected: int,
    ) -> list[Outcome]:
        now_ms = time.time_ns() // 1_000_000
        return [self.plan_one(event, li, states[li.id], t_detected, now_ms) for li in links]

    def dispatch(self, outcomes: list[Outcome], redelivered: bool) -> list[asyncio.Task[None]]:
        """Hand every planned order to its venue connector; the sends run concurrently.

        Paper orders of one event go to the venue as one batch. A redelivered
        event goes order by order, because each order asks the venue first.
        """
        venues = self.links.venues
        batch = (
            []
            if redelivered
            else [o for o in outcomes if isinstance(venues.get(o.link.follower_id), PaperVenue)]
        )
        if len(batch) < 2:
            batch = []
        batched = {id(o) for o in batch}
        tasks = [
            asyncio.create_task(self.send(o, redelivered)) for o in outcomes if id(o) not in batched
        ]
        if batch:
            tasks.append(asyncio.create_task(self.send_paper_batch(batch)))
        return tasks

    async def send_paper_batch(self, outcomes: list[Outcome]) -> None:
        items = []
        for o in outcomes:
            venue = self.links.venues[o.link.follower_id]
            assert isinstance(venue, PaperVenue) and o.order is not None
            items.append((venue.account_id, o.order, o.coid))
        t_sent = time.monotonic_ns()
        for o in outcomes:
            o.t_sent_ns = t_sent
        try:
            results = await sync_to_async(execute_batch, thread_sensitive=False)(items)
        except Exception:
            # Nothing is known about this batch: ask the venue order by order.
            log.exception("Paper batch failed; sending its orders one by one")
            await asyncio.gather(*(self.send(o, redelivered=True) for o in outcomes))
            return
        t_acked = time.monotonic_ns()
        retry = []
        for o, result in zip(outcomes, results, strict=True):
            o.t_acked_ns = t_acked
            if isinstance(result, Report):
                o.report = result
            elif result.permanent:
                o.status, o.reason = "failed", result.message
            else:
                retry.append(o)
        if retry:
            await asyncio.gather(*(self.send(o, redelivered=True) for o in retry))

    def plan_one(
        self,
        event: MasterEvent,
        link: LinkInfo,
        state: FollowerState,
        t_detected: int,
        now_ms: int,
    ) -> Outcome:
        coid = client_order_id(link.id, event.master_ref, event.seq)

        def failed(reason: str) -> Outcome:
            return Outcome(link, coid, event, t_detected, time.monotonic_ns(), "failed", reason)

        venue = self.links.venues.get(link.follower_id)
        if venue is None:
            return failed("the follower's venue is not available")
        symbol = link.rules.map_symbol(event.symbol)
        try:
            decision = plan(event, link.rules, state, venue.instrument(symbol), now_ms)
        except Exception as e:
            # One event the planner cannot handle must not block the stream behind it.
            log.exception("planning %s for link %s failed", event.master_ref, link.id)
            return failed(f"internal error while planning ({e.__class__.__name__})")
        t_planned = time.monotonic_ns()
        if isinstance(decision, Skip):
            return Outcome(link, coid, event, t_detected, t_planned, "skipped", decision.reason)
        return Outcome(
            link, coid, event, t_detected, t_planned, "filled", decision.note, order=decision
        )

    async def record_intents(self, outcomes: list[Outcome]) -> None:
        """Note each order in Redis before it is sent, for reconciliation after a crash."""
        assert self.redis is not None
        payload = {
            o.coid: json.dumps(
                {
                    "symbol": o.order.symbol if o.order else None,
                    "follower_id": o.link.follower_id,
                    "link_id": o.link.id,
                    "source": o.event.source,
                    "seq": o.event.seq,
                }
            )
            for o in outcomes
        }
        await self.redis.hset(INTENTS_KEY, mapping=payload)

    async def send(self, outcome: Outcome, redelivered: bool) -> None:
        order = outcome.order
        assert order is not None
        venue = self.links.venues[outcome.link.follower_id]
        coid = outcome.coid
        if redelivered:
            # The daemon may have sent this order before it stopped: ask first.
            known = self.reconciled.get(coid) or await venue.find(coid, order.symbol)
            if known is not None:
                outcome.report = known
                outcome.t_sent_ns = outcome.t_acked_ns = time.monotonic_ns()
                return
        for attempt in range(TEMPORARY_RETRIES + 1):
            outcome.t_sent_ns = time.monotonic_ns()
            try:
                outcome.report = await venue.execute(order, coid)
                outcome.t_acked_ns = time.monotonic_ns()
                return
            except VenueError as e:
                outcome.t_acked_ns = time.monotonic_ns()
                if isinstance(e, DuplicateOrder) or not e.permanent:
                    # The order may exist already: never send it again blind.
                    # (Binance, for one, takes a filled order's client id again.)
                    known = await self.find_quietly(venue, coid, order.symbol)
                    if known is not None:
                        outcome.report = known
                        return
                # Only temporary errors are retried, and always with the same
                # client order id, so the venue can refuse a second fill.
                if e.permanent or attempt == TEMPORARY_RETRIES:
                    outcome.status, outcome.reason = "failed", e.message
                    return
                await asyncio.sleep(0.05 * 2**attempt)

    @staticmethod
    async def find_quietly(venue: Venue, coid: str, symbol: str) -> Report | None:
        try:
            return await venue.find(coid, symbol)
        except VenueError as e:
            log.warning("could not look up %s after an unclear answer: %s", coid, e.message)
            return None

    async def finish(self, outcomes: list[Outcome]) -> None:
        assert self.redis is not None
        new = await db(ledger.record)(outcomes)
        sent = [o.coid for o in outcomes if o.order is not None]
        if sent:
            await self.redis.hdel(INTENTS_KEY, *sent)
        touched = [o for o in outcomes if o.report is not None and o.report.created]
        if touched:
            new += await self.enforce_risk_stops(touched)
        # Fills on accounts that lead others are master events in their turn.
        chained = [o.report for o in outcomes if o.report and o.report.event is not None]
        if chained:
            await self.publish_chained(chained)
        if new:
            await self.notify(new)

    async def enforce_risk_stops(self, touched: list[Outcome]) -> list[Execution]:
        """Risk stops of the links that just filled; a tripped one may close its copies."""
        event_of = {o.link.id: o.event for o in touched}
        links = list({o.link.id: o.link for o in touched}.values())
        tripped = await db(ledger.check_risk_stops)(links)
        recorded: list[Execution] = []
        for trip in tripped:
            log.warning("link %s risk stop: %s", trip.link.id, trip.breach.reason)
            if not trip.to_close:
                continue
            venue = self.links.venues.get(trip.link.follower_id)
            if venue is None:
                continue
            event = event_of[trip.link.id]
            outcomes = []
            for order in trip.to_close:
                price = (
                    event.price
                    if order.symbol == trip.link.rules.map_symbol(event.symbol)
                    else await db(ledger.last_price)(trip.link.follower_id, order.symbol)
                )
                order = dataclasses.replace(order, reference_price=price or order.reference_price)
                now = time.monotonic_ns()
                coid = client_order_id(trip.link.id, f"risk:{order.link_ref}", 0)
                outcomes.append(
                    Outcome(
                        trip.link,
                        coid,
                        event,
                        now,
                        now,
                        "filled",
                        f"closed by the risk stop: {trip.breach.reason}",
                        order=order,
                        kind="risk_stop",
                    )
                )
            await asyncio.gather(*self.dispatch(outcomes, redelivered=True))
            recorded += await db(ledger.record)(outcomes)
        return recorded

    async def publish_chained(self, reports: list[Report]) -> None:
        records = []
        for report in reports:
            assert report.event is not None and report.event_record_id is not None
            records.append((report.event_record_id, report.event.to_wire()))
        await self.publish_records(records)

    async def publish_records(self, records: list[tuple[int, dict[str, str]]]) -> None:
        """Put outbox events on the stream, in order; the outbox sweep retries the rest."""
        assert self.redis is not None
        published = []
        for record_id, wire in records:
            try:
                await self.redis.xadd(self.stream, wire)
            except redis.RedisError as e:
                log.warning("master event waits in the outbox: %s", e)
                break
            published.append(record_id)
        if published:
            await db(ledger.mark_published)(published)

    async def notify(self, executions: list[Execution]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        by_owner: dict[int, list[dict[str, object]]] = {}
        for ex in executions:
            by_owner.setdefault(ex.owner_id, []).append(
                {
                    "client_order_id": ex.client_order_id,
                    "status": ex.status,
                    "symbol": ex.symbol,
                    "kind": ex.kind,
                    "reason": ex.reason,
                    "total_us": ex.total_us,
                }
            )
        for owner_id, rows in by_owner.items():
            try:
                await layer.group_send(
                    user_group(owner_id), {"type": "copier.update", "executions": rows}
                )
            except (redis.RedisError, OSError) as e:
                log.warning("could not push an update to the site: %s", e)


Parsed = tuple[str, MasterEvent, int]  # stream id, event, master account id


def waves(parsed: list[Parsed], by_master: dict[int, list[LinkInfo]]) -> list[list[Parsed]]:
    """Split a read into waves in which no two events touch the same account.

    An event joins the first wave only if no event before it in the read
    (taken or deferred) touches its master or its followers, so per account
    the order of the stream is kept.
    """
    rest, out = parsed, []
    while rest:
        wave, later = [], []
        busy: set[int] = set()
        for item in rest:
            accounts = {item[2], *(li.follower_id for li in by_master.get(item[2], []))}
            (later if accounts & busy else wave).append(item)
            busy |= accounts
        out.append(wave)
        rest = later
    return out


def run() -> None:
    import uvloop

    close_old_connections()
    uvloop.run(CopierDaemon().run())


__all__ = ["CopierDaemon", "Venue", "run"]
