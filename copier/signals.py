"""Signals from webhooks, inside the copier daemon: stream → source positions → master events.

The intake (`brokers/hooks.py`) appends each accepted signal to one of the
`signals:<n>` streams (sharded by user, so one user's flood queues behind
itself). `SignalConsumer` reads them through the ``copier`` consumer group
and, for each signal, in one transaction: skips it if its id was handled
before (a redelivery after a crash), turns it into master events against the
source's open positions (`copier.core.signals.events_for`), updates those
positions, stores the events in the outbox and writes the signal's log line
with its outcome. Then it publishes the events and acknowledges the entry.

A signal that keeps failing (three deliveries) goes to the ``signals:dead``
stream and its log line says so, so every accepted signal ends executed,
rejected with a reason, or failed with a reason: none is lost silently.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import redis
import redis.asyncio as aredis
from django.db import transaction

from brokers.hooks import GROUP, all_streams
from brokers.models import SignalLog, SignalPosition, SignalSource
from copier.core import EventKind, Side
from copier.core.signals import EventDraft, Rejection, SourcePosition, events_for, parse_signal
from copier.core.sizing import fmt
from copier.outbox import Append, append_events_many
from tradosphere.db import drop_broken_connection

log = logging.getLogger("copier.signals")

DEAD_STREAM = "signals:dead"
MAX_DELIVERIES = 3
DEAD_MAXLEN = 100_000

Records = list[tuple[int, dict[str, str]]]


def _received_at(fields: dict[str, str]) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(fields["received_ms"]) / 1000, tz=dt.UTC)


def _latency_ms(fields: dict[str, str]) -> Decimal:
    return Decimal(time.time_ns() // 1000 - int(fields["received_ms"]) * 1000) / 1000


@dataclass
class _Book:
    """One source's positions while a batch of its signals is handled, and what
    must be written back: the signals of a batch see each other's effects."""

    source: SignalSource
    open: list[SourcePosition]  # open positions, oldest first (not pending orders)
    stored: dict[str, SignalPosition]  # rows as read, positions and orders, by ref
    new: dict[str, SignalPosition] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    drafts: list[EventDraft] = field(default_factory=list)

    def apply(self, drafts: list[EventDraft]) -> None:
        """The source's own book follows its events."""
        for d in drafts:
            if d.kind in (EventKind.POSITION_OPENED, EventKind.ORDER_PLACED):
                is_order = d.kind is EventKind.ORDER_PLACED
                self.new[d.master_ref] = SignalPosition(
                    source=self.source,
                    ref=d.master_ref,
                    symbol=d.symbol,
                    side=d.side.value,
                    volume=d.volume,
                    price=d.price,
                    is_order=is_order,
                )
                if not is_order:
                    self.open.append(
                        SourcePosition(d.master_ref, d.symbol, d.side, d.volume, d.price)
                    )
            elif d.kind is EventKind.POSITION_PARTIALLY_CLOSED:
                assert d.remaining_volume is not None
                self._set_volume(d.master_ref, d.remaining_volume)
            elif d.kind in (EventKind.POSITION_CLOSED, EventKind.ORDER_CANCELLED):
                self.open = [p for p in self.open if p.ref != d.master_ref]
                if self.new.pop(d.master_ref, None) is None and d.master_ref in self.stored:
                    self.gone.add(d.master_ref)
                    self.changed.discard(d.master_ref)
        self.drafts += drafts

    def _set_volume(self, ref: str, volume: Decimal) -> None:
        self.open = [
            dataclasses.replace(p, volume=volume) if p.ref == ref else p for p in self.open
        ]
        if ref in self.new:
            self.new[ref].volume = volume
        elif ref in self.stored:
            self.stored[ref].volume = volume
            self.changed.add(ref)


def _summary(drafts: list[EventDraft]) -> str:
    words = {
        EventKind.POSITION_OPENED: "opened",
        EventKind.POSITION_CLOSED: "closed",
        EventKind.POSITION_PARTIALLY_CLOSED: "partly closed",
        EventKind.ORDER_PLACED: "placed",
        EventKind.ORDER_CANCELLED: "cancelled",
    }
    return "; ".join(
        f"{words.get(d.kind, d.kind.value)} {d.side.value} {fmt(d.volume)} {d.symbol}"
        for d in drafts
    )[:500]


def _books(source_ids: set[int]) -> dict[int, _Book]:
    """The sources, locked (in one order, so two daemons never deadlock), with their positions."""
    sources = SignalSource.objects.select_for_update().filter(account_id__in=source_ids)
    books = {s.account_id: _Book(s, [], {}) for s in sources.order_by("account_id")}
    for row in SignalPosition.objects.filter(source_id__in=books).order_by("opened_at", "id"):
        book = books[row.source_id]
        book.stored[row.ref] = row
        if not row.is_order:
            book.open.append(
                SourcePosition(row.ref, row.symbol, Side(row.side), row.volume, row.price)
            )
    return books


def _outcome(fields: dict[str, str], book: _Book) -> tuple[SignalLog, list[EventDraft]]:
    """One signal against its source's book as it stands: its log line and its events."""
    signal_id = fields["sid"]
    source = book.source
    data = json.loads(fields["body"])
    signal = parse_signal(data)  # the intake checked it: this cannot fail
    line = SignalLog(
        source=source,
        signal_id=signal_id,
        alert_id=signal.alert_id or "",
        action=signal.action.value,
        symbol=signal.symbol or "",
        payload=data,
        received_at=_received_at(fields),
    )
    result = events_for(
        signal,
        book.open,
        equity=source.equity,
        contract_size=Decimal(1),
        allow_pyramiding=source.allow_pyramiding,
        position_aware=source.position_aware,
        new_ref=f"S{signal_id[:16]}",
        ts_ms=int(fields["received_ms"]),
        price=None,
    )
    if isinstance(result, Rejection):
        line.outcome, line.reason = SignalLog.Outcome.REJECTED, result.reason[:500]
        return line, []
    line.outcome, line.reason = SignalLog.Outcome.EXECUTED, _summary(result)
    return line, result


@drop_broken_connection
def handle_signals(batch: list[dict[str, str]]) -> Records:
    """Signals read together, each exactly once, in one transaction.

    A signal whose id has a log line already was handled before (a redelivery
    after a crash) and is skipped; one whose source was deleted is dropped.
    The rest are handled in stream order against their source's book, so a
    close sees the buy before it in the same batch. The statements are per
    batch, not per signal: the log lines, the sources, their positions, the
    outbox. Returns the stored events, for publishing after the commit.
    """
    with transaction.atomic():
        ids = [f["sid"] for f in batch]
        seen = set(SignalLog.objects.filter(signal_id__in=ids).values_list("signal_id", flat=True))
        books = _books({int(f["source"]) for f in batch if f["sid"] not in seen})
        lines = []
        for fields in batch:
            book = books.get(int(fields["source"]))
            if fields["sid"] in seen or book is None:
                continue
            seen.add(fields["sid"])
            line, drafts = _outcome(fields, book)
            book.apply(drafts)
            lines.append((line, fields))
        records = append_events_many(
            [
                Append(book.source.account_id, book.drafts, book.source.equity, book.source.equity)
                for book in books.values()
                if book.drafts
            ]
        )
        SignalPosition.objects.bulk_create([r for b in books.values() for r in b.new.values()])
        gone = [b.stored[ref].pk for b in books.values() for ref in b.gone]
        if gone:
            SignalPosition.objects.filter(pk__in=gone).delete()
        changed = [b.stored[ref] for b in books.values() for ref in b.changed]
        if changed:
            SignalPosition.objects.bulk_update(changed, ["volume"])
        for line, fields in lines:
            line.latency_ms = _latency_ms(fields)
        SignalLog.objects.bulk_create([line for line, _ in lines])
    return records


@drop_broken_connection
def record_failure(fields: dict[str, str], reason: str) -> None:
    source = SignalSource.objects.filter(account_id=int(fields.get("source", 0))).first()
    if source is None:
        return
    SignalLog.objects.get_or_create(
        signal_id=fields["sid"],
        defaults={
            "source": source,
            "payload": {"body": fields.get("body", "")[:16384]},
            "outcome": SignalLog.Outcome.FAILED,
            "reason": reason[:500],
            "received_at": _received_at(fields),
        },
    )


Publish = Callable[[Records], Awaitable[None]]
Db = Callable[..., Callable[..., Awaitable[Any]]]


class SignalConsumer:
    def __init__(self, client: aredis.Redis, publish: Publish, db: Db, consumer: str) -> None:
        self.client = client
        self.publish = publish
        self.db = db
        self.consumer = consumer
        self.backlog = True

    async def run(self) -> None:
        for stream in all_streams():
            try:
                await self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
        while True:
            try:
                await self.step()
            except (redis.RedisError, OSError) as e:
                log.warning("signal streams unavailable: %s", e)
                await asyncio.sleep(1.0)

    async def step(self) -> int:
        streams = {s: "0" if self.backlog else ">" for s in all_streams()}
        reply = await self.client.xreadgroup(
            GROUP, self.consumer, streams, count=100, block=None if self.backlog else 500
        )
        entries = [(s, m, f) for s, batch in reply or [] for m, f in batch]
        if self.backlog and not entries:
            self.backlog = False
        live = [(s, m, f) for s, m, f in entries if f]  # no fields: trimmed while pending
        if live:
            try:
                records = await self.db(handle_signals)([f for _, _, f in live])
            except Exception:
                log.exception("a batch of %d signals failed; one by one now", len(live))
                for stream, msg_id, fields in live:
                    await self.process(stream, msg_id, fields)
                live = []
            else:
                if records:
                    await self.publish(records)
        await self.done([(s, m) for s, m, f in entries if not f] + [(s, m) for s, m, _ in live])
        return len(entries)

    async def done(self, entries: list[tuple[str, str]]) -> None:
        """Acknowledge handled entries and delete them: their outcome is in the database
        now, and what stays on a stream is the backlog the intake measures."""
        by_stream: dict[str, list[str]] = {}
        for stream, msg_id in entries:
            by_stream.setdefault(stream, []).append(msg_id)
        if not by_stream:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, GROUP, *ids)
                pipe.xdel(stream, *ids)
            await pipe.execute()

    async def process(self, stream: str, msg_id: str, fields: dict[str, str]) -> None:
        try:
            records = await self.db(handle_signals)([fields])
        except Exception as e:
            log.exception("signal %s failed", fields.get("sid"))
            pending = await self.client.xpending_range(stream, GROUP, msg_id, msg_id, 1)
            deliveries = pending[0]["times_delivered"] if pending else MAX_DELIVERIES
            if deliveries >= MAX_DELIVERIES:
                await self.client.xadd(
                    DEAD_STREAM, {**fields, "error": repr(e)[:500]}, maxlen=DEAD_MAXLEN
                )
                await self.db(record_failure)(fields, f"could not be carried out: {e!r}")
                await self.done([(stream, msg_id)])
            else:
                self.backlog = True  # read it again
                await asyncio.sleep(0.5)
            return
        if records:
            await self.publish(records)
        await self.done([(stream, msg_id)])
