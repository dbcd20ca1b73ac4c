"""Watching exchange masters inside the copier daemon.

For every exchange account that leads at least one active copy link, the
daemon runs one `MasterWatcher`:

1. On the very first start it takes a snapshot: the exchange's clock becomes
   the start of watching (older fills are history), and derivative positions
   already held become the lot book's baseline (never copied).
2. It subscribes to the websocket (`watch_my_trades`) where ccxt.pro has one,
   and resyncs through REST right after subscribing and again a second later,
   so that a fill made while it was disconnected, or between the resync and
   the subscription, is found. It resyncs every minute after that as well.
   Without a websocket it polls REST every `EXCHANGE_POLL_S` seconds (ccxt
   keeps the calls within the exchange's rate limit).
3. Fills go through the lot book (`copier.core.lots`), which ignores a trade
   id it has seen, so the websocket and the resyncs can overlap freely.
4. The events and the new book are saved in one transaction, the same outbox
   as Paper masters, then published to the copier stream.
5. On a network error it reconnects with exponential backoff (0.5 s to 30 s)
   and resyncs; on a refused key it says so on the account page and retries
   every few minutes.

Several daemons can run: a watcher holds a Redis lease on its account,
renewed while it runs, so each master is watched by exactly one daemon and
another takes over within `LEASE_MS` when one dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import redis
import redis.asyncio as aredis
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from brokers.models import BrokerAccount, MasterWatch
from brokers.venues.base import TemporaryVenueError, VenueError
from brokers.venues.ccxt.venue import CcxtVenue
from brokers.venues.ccxt.watch import FillSource
from copier.core import EventKind
from copier.core.events import EventDraft
from copier.core.lots import Book, Fill
from copier.core.sizing import plain
from copier.outbox import append_events
from tradosphere.db import drop_broken_connection

log = logging.getLogger("copier.watch")

LEASE_MS = 15_000
RESYNC_EVERY_S = 60.0
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 30.0
REFUSED_RETRY_S = 300.0
BALANCE_MAX_AGE_S = 30.0
# After the websocket failed twice in a row, poll REST this long before trying it again.
WEBSOCKET_RETRY_S = 60.0
WEBSOCKET_QUIET_S = 600.0

# Renew a lease only while we still hold it.
RENEW_LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


def lease_key(account_id: int) -> str:
    return f"copier:watch:lease:{account_id}"


@dataclass(frozen=True, slots=True)
class WatchTarget:
    account_id: int
    source: str
    exchange: str
    market_type: str
    sandbox: bool
    credentials: dict[str, str]
    watch_symbols: tuple[str, ...]
    book: dict[str, object] | None


# -- the database side (run on the daemon's database thread) ------------------------


@drop_broken_connection
def load_target(account_id: int) -> WatchTarget:
    account = BrokerAccount.objects.get(pk=account_id)
    watch = MasterWatch.objects.filter(account_id=account_id).first()
    return WatchTarget(
        account_id=account.pk,
        source=account.event_source,
        exchange=account.exchange,
        market_type=account.market_type or "spot",
        sandbox=account.sandbox,
        credentials=json.loads(account.credentials or "{}"),
        watch_symbols=tuple(account.watch_symbols.split()),
        book=watch.book if watch is not None and watch.book else None,
    )


@drop_broken_connection
def set_status(account_id: int, status: str, detail: str = "") -> None:
    MasterWatch.objects.update_or_create(
        account_id=account_id, defaults={"status": status, "detail": detail[:300]}
    )


@drop_broken_connection
def save_book(account_id: int, book: dict[str, object]) -> None:
    MasterWatch.objects.update_or_create(account_id=account_id, defaults={"book": book})


@drop_broken_connection
def record_events(
    account_id: int,
    book: dict[str, object],
    events: list[EventDraft],
    contract_sizes: dict[str, Decimal],
    balance: Decimal | None,
    n_fills: int,
) -> list[tuple[int, dict[str, str]]]:
    """Number the events, store them in the outbox and save the book, atomically."""
    with transaction.atomic():
        drafts = [
            dataclasses.replace(
                e,
                volume=plain(e.volume),
                price=plain(e.price),
                remaining_volume=(
                    plain(e.remaining_volume) if e.remaining_volume is not None else None
                ),
            )
            for e in events
        ]
        records = append_events(
            account_id,
            drafts,
            master_balance=balance,
            master_equity=balance,
            contract_sizes=contract_sizes,
        )
        defaults: dict[str, object] = {"book": book}
        if n_fills:
            defaults["fills"] = F("fills") + n_fills
            defaults["last_fill_at"] = timezone.now()
        updated = MasterWatch.objects.filter(account_id=account_id).update(**defaults)
        if not updated:
            MasterWatch.objects.create(
                account_id=account_id, book=book, fills=n_fills, last_fill_at=timezone.now()
            )
    return records


# -- one master ---------------------------------------------------------------------------

Publish = Callable[[list[tuple[int, dict[str, str]]]], Awaitable[None]]
Db = Callable[..., Awaitable[object]]


class MasterWatcher:
    def __init__(
        self, account_id: int, publish: Publish, db: Db, poll_s: float, use_websocket: bool = True
    ) -> None:
        self.account_id = account_id
        self.use_websocket = use_websocket
        self.watch_symbols: tuple[str, ...] = ()
        self.publish = publish
        self.db = db
        self.poll_s = poll_s
        self.book: Book | None = None
        self.source: FillSource | None = None
        self.live_since: float | None = None
        self._balance: tuple[float, Decimal | None] = (0.0, None)

    async def run(self) -> None:
        target: WatchTarget = await self.db(load_target)(self.account_id)  # type: ignore[assignment]
        self.watch_symbols = target.watch_symbols
        backoff = BACKOFF_MIN_S
        failures = 0
        websocket_after = 0.0  # monotonic time from which the websocket is tried again
        while True:
            # A fresh connector for every (re)connect: after some websocket
            # failures ccxt's exchange object is left unusable (see docs/ccxt.md).
            venue = self._connector(target)
            self.live_since = None
            try:
                await self._watch(venue, polling_until=websocket_after)
            except TemporaryVenueError as e:
                if self.live_since is not None and time.monotonic() - self.live_since > 30:
                    backoff, failures = BACKOFF_MIN_S, 0  # it had been working
                failures += 1
                if failures >= 2 and time.monotonic() >= websocket_after:
                    # The websocket keeps failing: poll REST for a while.
                    websocket_after = time.monotonic() + WEBSOCKET_RETRY_S
                await self.status("reconnecting", f"{e.message}; retrying in {backoff:.1f} s")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except VenueError as e:
                await self.status("error", e.message)
                await asyncio.sleep(REFUSED_RETRY_S)
            else:
                backoff, failures = BACKOFF_MIN_S, 0
            finally:
                self.source = None
                await venue.close()

    def _connector(self, target: WatchTarget) -> CcxtVenue:
        return CcxtVenue(
            target.exchange,
            target.credentials,
            target.market_type,
            target.sandbox,
            api_host=settings.CCXT_API_HOSTS.get(target.exchange),
            websocket=True,
        )

    async def status(self, status: str, detail: str = "") -> None:
        log.info("master %s: %s %s", self.account_id, status, detail)
        await self.db(set_status)(self.account_id, status, detail)

    async def _watch(self, venue: CcxtVenue, polling_until: float) -> None:
        """Watch until an error; return (to try the websocket again) after a polling spell."""
        if not venue.exchange.markets:
            await venue.connect()
        self.source = source = FillSource(venue, self.watch_symbols, websocket=self.use_websocket)
        if self.book is None:
            self.book = await self._start_book(source)
        if not source.websocket or time.monotonic() < polling_until:
            why = "no websocket" if not source.websocket else "the websocket failed"
            await self.status("polling", f"REST every {self.poll_s:g} s ({why})")
            while not source.websocket or time.monotonic() < polling_until:
                await self.resync()
                await asyncio.sleep(self.poll_s)
            return
        stream = asyncio.ensure_future(source.stream())
        try:
            await self.resync()
            await self.status("websocket", "live")
            self.live_since = heard = time.monotonic()
            next_resync = heard + 1.0
            while True:
                done, _ = await asyncio.wait(
                    {stream}, timeout=max(0.0, next_resync - time.monotonic())
                )
                if done:
                    fills = stream.result()
                    stream = asyncio.ensure_future(source.stream())
                    heard = time.monotonic()
                    await self.apply(fills)
                if time.monotonic() >= next_resync:
                    await self.resync()
                    next_resync = time.monotonic() + RESYNC_EVERY_S
                if time.monotonic() - heard > WEBSOCKET_QUIET_S:
                    # A stream the exchange ended without closing the socket
                    # never wakes up: subscribe again now and then.
                    raise TemporaryVenueError("the websocket was quiet for 10 minutes")
        finally:
            stream.cancel()
            with contextlib.suppress(BaseException):
                await stream

    async def _start_book(self, source: FillSource) -> Book:
        target: WatchTarget = await self.db(load_target)(self.account_id)  # type: ignore[assignment]
        if target.book is not None:
            return Book.from_dict(target.book)
        start = await source.server_time_ms()
        book = Book(spot=source.spot, start_ms=start, cursor_ms=start)
        for (symbol, position_side), held in (await source.baseline()).items():
            book.set_baseline(symbol, held, position_side)
        await self.db(save_book)(self.account_id, book.to_dict())
        log.info("master %s: watching from %d", self.account_id, start)
        return book

    async def resync(self) -> None:
        assert self.book is not None and self.source is not None
        await self.apply(await self.source.since(self.book.resync_since(), self.book.symbols()))

    async def apply(self, fills: list[Fill]) -> None:
        assert self.book is not None and self.source is not None
        before = len(self.book.seen)
        new = [f for f in fills if f.trade_id not in self.book.seen]
        if not new:
            return
        events = self.book.apply_all(new)
        contract_sizes = {}
        for e in events:
            market = (self.source.venue.exchange.markets or {}).get(e.symbol) or {}
            contract_sizes[e.symbol] = Decimal(str(market.get("contractSize") or 1))
        balance = await self._master_balance(events)
        try:
            records = await self.db(record_events)(
                self.account_id, self.book.to_dict(), events, contract_sizes, balance, len(new)
            )
        except BaseException:
            # The book ran ahead of the database: start again from what was saved.
            self.book = None
            raise
        log.debug("master %s: %d fill(s), %d seen before", self.account_id, len(new), before)
        if records:
            await self.publish(records)  # type: ignore[arg-type]

    async def _master_balance(self, events: list[EventDraft]) -> Decimal | None:
        """The master's balance in the events' settlement currency, for ratio sizing."""
        if not events or self.source is None:
            return None
        opened = [e for e in events if e.kind is EventKind.POSITION_OPENED]
        if not opened:
            return self._balance[1]
        if time.monotonic() - self._balance[0] > BALANCE_MAX_AGE_S:
            market = (self.source.venue.exchange.markets or {}).get(opened[0].symbol) or {}
            currency = market.get("settle") or market.get("quote")
            try:
                amount = await self.source.balance_of(currency) if currency else None
            except VenueError:
                amount = None
            self._balance = (time.monotonic(), amount)
        return self._balance[1]


# -- every master of this daemon ---------------------------------------------------------


class WatcherPool:
    """Runs one watcher per exchange master this daemon holds the lease of."""

    def __init__(self, redis_client: aredis.Redis, publish: Publish, db: Db) -> None:
        self.redis = redis_client
        self.publish = publish
        self.db = db
        self.owner = f"{os.uname().nodename}:{os.getpid()}"
        self.poll_s = float(os.environ.get("EXCHANGE_POLL_S", "1.0"))
        self.use_websocket = os.environ.get("EXCHANGE_WEBSOCKET", "1") != "0"
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.keys: dict[int, str] = {}

    async def sync(self, masters: dict[int, str]) -> None:
        """Watch these masters (id -> connector key); stop watching the others."""
        for account_id in list(self.tasks):
            if masters.get(account_id) != self.keys.get(account_id):
                await self.stop(account_id)
        for account_id, key in masters.items():
            if account_id in self.tasks and not self.tasks[account_id].done():
                continue
            try:
                won = (
                    await self.redis.set(lease_key(account_id), self.owner, nx=True, px=LEASE_MS)
                    or (await self.redis.get(lease_key(account_id))) == self.owner
                )
            except redis.RedisError as e:
                log.warning("cannot take the watch lease of master %s: %s", account_id, e)
                continue
            if won:
                self.keys[account_id] = key
                self.tasks[account_id] = asyncio.create_task(self._run(account_id))

    async def renew(self) -> None:
        """Keep our leases; give up a master whose lease another daemon took."""
        for account_id in list(self.tasks):
            held = await self.redis.eval(  # type: ignore[misc]
                RENEW_LEASE, 1, lease_key(account_id), self.owner, str(LEASE_MS)
            )
            if not held:
                log.warning("lost the watch lease of master %s", account_id)
                await self.stop(account_id, release=False)

    async def _run(self, account_id: int) -> None:
        watcher = MasterWatcher(
            account_id, self.publish, self.db, self.poll_s, use_websocket=self.use_websocket
        )
        while True:
            try:
                await watcher.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watcher of master %s failed; restarting in 5 s", account_id)
                await asyncio.sleep(5.0)

    async def stop(self, account_id: int, release: bool = True) -> None:
        task = self.tasks.pop(account_id, None)
        self.keys.pop(account_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if release:
            with contextlib.suppress(redis.RedisError):
                if await self.redis.get(lease_key(account_id)) == self.owner:
                    await self.redis.delete(lease_key(account_id))

    async def close(self) -> None:
        for account_id in list(self.tasks):
            await self.stop(account_id)
