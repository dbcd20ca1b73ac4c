"""The copier daemon: master events in, follower orders out.

It reads master events from a Redis stream through a consumer group, plans
each follower's order with the pure core, sends the orders of one event
concurrently, and only then writes what happened to the database, so no
database write sits between "planned" and "sent". An event is acknowledged
on the stream after its executions are recorded; an event whose daemon died
first is delivered again, and the venue is asked about each client order id
before anything is sent for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import redis
import redis.asyncio as aredis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from brokers.models import BrokerAccount, Venue
from brokers.venues.base import FillReport, VenueError
from brokers.venues.base import Venue as VenueConnector
from brokers.venues.paper import PaperVenue
from copier.core import (
    CopyRules,
    FollowerOrder,
    FollowerPosition,
    FollowerState,
    MasterEvent,
    OrderAction,
    Side,
    Skip,
    client_order_id,
    plan,
)
from copier.core.events import EventFormatError, EventKind
from copier.models import CopyLink, Execution, MasterEventRecord, PositionLink
from copier.notify import user_group
from copier.outbox import STREAM_MAXLEN
from tradosphere.bus import COPIER_HEARTBEAT_KEY, LINKS_VERSION_KEY, async_redis
from tradosphere.db import drop_broken_connection

log = logging.getLogger("copier")

DEAD_LETTER_STREAM = "copier:dead"
LINKS_MAX_AGE_S = 5.0
TEMPORARY_RETRIES = 3


@dataclass(frozen=True, slots=True)
class LinkInfo:
    id: int
    owner_id: int
    follower_id: int
    rules: CopyRules


@dataclass(slots=True)
class Outcome:
    link: LinkInfo
    coid: str
    event: MasterEvent
    t_detected_ns: int
    t_planned_ns: int
    status: str
    reason: str = ""
    order: FollowerOrder | None = None
    report: FillReport | None = None
    t_sent_ns: int | None = None
    t_acked_ns: int | None = None
    # From the master's fill (venue wall clock) to the copier reading it.
    signal_age_ms: int | None = None


def venue_for(account: BrokerAccount) -> VenueConnector:
    if account.venue == Venue.PAPER:
        return PaperVenue(account.pk)
    raise VenueError(f"{account.get_venue_display()} accounts cannot follow yet")


@dataclass
class LinkCache:
    by_master: dict[int, list[LinkInfo]] = field(default_factory=dict)
    venues: dict[int, VenueConnector] = field(default_factory=dict)
    version: str | None = None
    loaded_at: float = 0.0


@drop_broken_connection
def _load_links() -> LinkCache:
    cache = LinkCache()
    links = CopyLink.objects.filter(is_active=True).select_related("follower")
    for link in links:
        cache.by_master.setdefault(link.master_id, []).append(
            LinkInfo(link.pk, link.owner_id, link.follower_id, link.rules())
        )
        if link.follower_id not in cache.venues:
            try:
                cache.venues[link.follower_id] = venue_for(link.follower)
            except VenueError as e:
                log.warning("link %s: %s", link.pk, e.message)
    return cache


@drop_broken_connection
def _follower_states(link_ids: list[int], master_ref: str) -> dict[int, FollowerState]:
    states: dict[int, FollowerState] = {}
    for pl in PositionLink.objects.filter(link_id__in=link_ids, master_ref=master_ref):
        if pl.closed_at is not None:
            states[pl.link_id] = FollowerState(copy_closed=True)
        else:
            states[pl.link_id] = FollowerState(
                linked_position=FollowerPosition(
                    ref=pl.follower_ref,
                    symbol=pl.symbol,
                    side=Side(pl.side),
                    volume=Decimal(pl.volume),
                )
            )
    return states


@drop_broken_connection
def _record(outcomes: list[Outcome]) -> list[Execution]:
    """Write the executions and position links of one event; return the new executions."""
    rows = []
    for o in outcomes:
        order, report = o.order, o.report
        rows.append(
            Execution(
                owner_id=o.link.owner_id,
                link_id=o.link.id,
                client_order_id=o.coid,
                master_ref=o.event.master_ref,
                seq=o.event.seq,
                kind=o.event.kind.value,
                status=o.status,
                reason=o.reason[:300],
                symbol=order.symbol if order else o.event.symbol,
                side=order.side.value if order else "",
                volume=report.volume if report else (order.volume if order else None),
                price=report.price if report else None,
                follower_ref=report.position_ref if report else "",
                signal_age_ms=None,
                t_detected_ns=o.t_detected_ns,
                t_planned_ns=o.t_planned_ns,
                t_sent_ns=o.t_sent_ns,
                t_acked_ns=o.t_acked_ns,
            )
        )
    with transaction.atomic():
        existing = set(
            Execution.objects.filter(
                client_order_id__in=[r.client_order_id for r in rows]
            ).values_list("client_order_id", flat=True)
        )
        new = [r for r in rows if r.client_order_id not in existing]
        Execution.objects.bulk_create(new, ignore_conflicts=True)
        for o in outcomes:
            if o.status != Execution.Status.FILLED or o.report is None or o.order is None:
                continue
            if o.order.action is OrderAction.OPEN:
                PositionLink.objects.get_or_create(
                    link_id=o.link.id,
                    master_ref=o.event.master_ref,
                    defaults={
                        "follower_ref": o.report.position_ref,
                        "symbol": o.report.symbol,
                        "side": o.report.side.value,
                        "volume": o.report.volume,
                    },
                )
            else:
                PositionLink.objects.filter(
                    link_id=o.link.id, master_ref=o.event.master_ref, closed_at=None
                ).update(closed_at=timezone.now())
    return new


@drop_broken_connection
def _mark_published(record_ids: list[int]) -> None:
    MasterEventRecord.objects.filter(pk__in=record_ids).update(published_at=timezone.now())


@drop_broken_connection
def _publish_unpublished() -> int:
    from copier.outbox import publish_pending

    return publish_pending(older_than_s=2)


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

    # -- lifecycle -----------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.redis = async_redis()
        await self.ensure_group()
        log.info("copier %s started (pid %d) on stream %s", self.consumer, os.getpid(), self.stream)
        await self.heartbeat()
        # Unfinished work from before a restart comes first, before any new event.
        await self.recover()
        tasks = [
            asyncio.create_task(self.every(1.0, self.heartbeat)),
            asyncio.create_task(self.every(2.0, self.sweep_outbox)),
        ]
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
        published = await sync_to_async(_publish_unpublished, thread_sensitive=True)()
        if published:
            log.info("published %d event(s) from the outbox", published)

    # -- consuming -------------------------------------------------------------

    async def recover(self) -> int:
        """Process this consumer's unacknowledged entries, then claim abandoned ones."""
        assert self.redis is not None
        handled = 0
        while True:
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: "0"}, count=100
            )
            entries = reply[0][1] if reply else []
            if not entries:
                break
            for msg_id, fields in entries:
                await self.handle(msg_id, fields, redelivered=True)
                handled += 1
        _next, claimed, *_ = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_time=30_000, count=100
        )
        for msg_id, fields in claimed:
            await self.handle(msg_id, fields, redelivered=True)
            handled += 1
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
        count = 0
        for _stream, entries in reply or []:
            for msg_id, fields in entries:
                await self.handle(msg_id, fields, redelivered=False)
                count += 1
        return count

    async def handle(self, msg_id: str, fields: dict[str, str], redelivered: bool) -> None:
        assert self.redis is not None
        t_detected = time.monotonic_ns()
        received_ms = time.time_ns() // 1_000_000
        try:
            event = MasterEvent.from_wire(fields)
            account_id = int(event.source.removeprefix("acct:"))
        except (EventFormatError, ValueError) as e:
            log.error("dead-lettering malformed event %s: %s", msg_id, e)
            await self.redis.xadd(DEAD_LETTER_STREAM, {**fields, "error": str(e)}, maxlen=10_000)
            await self.redis.xack(self.stream, self.group, msg_id)
            return
        key = (event.source, event.seq)
        if key in self.recent:
            await self.redis.xack(self.stream, self.group, msg_id)
            return
        await self.refresh_links()
        links = self.links.by_master.get(account_id, [])
        if links:
            outcomes = await self.copy_event(event, links, t_detected, redelivered)
            for o in outcomes:
                o.signal_age_ms = received_ms - event.ts_event_ms
            await self.finish(outcomes)
        await self.redis.xack(self.stream, self.group, msg_id)
        self.recent[key] = None
        if len(self.recent) > 10_000:
            self.recent.popitem(last=False)

    async def refresh_links(self) -> None:
        assert self.redis is not None
        try:
            version = await self.redis.get(LINKS_VERSION_KEY)
        except redis.RedisError:
            version = self.links.version
        stale = time.monotonic() - self.links.loaded_at > LINKS_MAX_AGE_S
        if version != self.links.version or stale or not self.links.loaded_at:
            cache = await sync_to_async(_load_links, thread_sensitive=True)()
            cache.version, cache.loaded_at = version, time.monotonic()
            self.links = cache

    # -- one event -------------------------------------------------------------

    async def copy_event(
        self, event: MasterEvent, links: list[LinkInfo], t_detected: int, redelivered: bool
    ) -> list[Outcome]:
        states = await sync_to_async(_follower_states, thread_sensitive=True)(
            [link.id for link in links], event.master_ref
        )
        return list(
            await asyncio.gather(
                *(
                    self.copy_one(
                        event, link, states.get(link.id, FollowerState()), t_detected, redelivered
                    )
                    for link in links
                )
            )
        )

    async def copy_one(
        self,
        event: MasterEvent,
        link: LinkInfo,
        state: FollowerState,
        t_detected: int,
        redelivered: bool,
    ) -> Outcome:
        coid = client_order_id(link.id, event.master_ref, event.seq)
        venue = self.links.venues.get(link.follower_id)
        if venue is None:
            return Outcome(
                link,
                coid,
                event,
                t_detected,
                time.monotonic_ns(),
                "failed",
                "the follower's venue is not available",
            )
        decision = plan(event, link.rules, state, venue.instrument(event.symbol))
        t_planned = time.monotonic_ns()
        if isinstance(decision, Skip):
            return Outcome(link, coid, event, t_detected, t_planned, "skipped", decision.reason)
        outcome = Outcome(
            link, coid, event, t_detected, t_planned, "filled", decision.note, order=decision
        )
        if redelivered:
            # The daemon may have sent this order before it stopped: ask first.
            known = await venue.find_fill(coid)
            if known is not None:
                outcome.report = known
                outcome.t_sent_ns = outcome.t_acked_ns = time.monotonic_ns()
                return outcome
        for attempt in range(TEMPORARY_RETRIES + 1):
            outcome.t_sent_ns = time.monotonic_ns()
            try:
                outcome.report = await self.send(venue, decision, coid)
                outcome.t_acked_ns = time.monotonic_ns()
                return outcome
            except VenueError as e:
                outcome.t_acked_ns = time.monotonic_ns()
                # Only temporary errors are retried, and always with the same
                # client order id, so the venue can refuse a second fill.
                if e.permanent or attempt == TEMPORARY_RETRIES:
                    outcome.status, outcome.reason = "failed", e.message
                    return outcome
                await asyncio.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    async def send(venue: VenueConnector, order: FollowerOrder, coid: str) -> FillReport:
        if order.action is OrderAction.OPEN:
            return await venue.open_position(
                order.symbol, order.side, order.volume, order.reference_price, coid
            )
        assert order.position_ref is not None
        return await venue.close_position(order.position_ref, order.reference_price, coid)

    async def finish(self, outcomes: list[Outcome]) -> None:
        new = await sync_to_async(_record, thread_sensitive=True)(outcomes)
        # Fills on accounts that lead others are master events in their turn.
        chained = [o.report for o in outcomes if o.report and o.report.event is not None]
        if chained:
            await self.publish_chained(chained)
        if new:
            await self.notify(new)

    async def publish_chained(self, reports: list[FillReport]) -> None:
        assert self.redis is not None
        published = []
        for report in reports:
            assert report.event is not None and report.event_record_id is not None
            try:
                await self.redis.xadd(
                    self.stream, report.event.to_wire(), maxlen=STREAM_MAXLEN, approximate=True
                )
            except redis.RedisError as e:
                log.warning("chained event waits in the outbox: %s", e)
                break
            published.append(report.event_record_id)
        if published:
            await sync_to_async(_mark_published, thread_sensitive=True)(published)

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


def run() -> None:
    import uvloop

    close_old_connections()
    uvloop.run(CopierDaemon().run())


__all__ = ["CopierDaemon", "EventKind", "run"]
