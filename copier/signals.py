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
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable
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
from copier.outbox import append_events
from tradosphere.db import drop_broken_connection

log = logging.getLogger("copier.signals")

DEAD_STREAM = "signals:dead"
MAX_DELIVERIES = 3

Records = list[tuple[int, dict[str, str]]]


def _received_at(fields: dict[str, str]) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(fields["received_ms"]) / 1000, tz=dt.UTC)


def _latency_ms(fields: dict[str, str]) -> Decimal:
    return Decimal(time.time_ns() // 1000 - int(fields["received_ms"]) * 1000) / 1000


def _apply(source: SignalSource, drafts: list[EventDraft]) -> None:
    """The source's own book follows its events."""
    for d in drafts:
        if d.kind in (EventKind.POSITION_OPENED, EventKind.ORDER_PLACED):
            SignalPosition.objects.create(
                source=source,
                ref=d.master_ref,
                symbol=d.symbol,
                side=d.side.value,
                volume=d.volume,
                price=d.price,
                is_order=d.kind is EventKind.ORDER_PLACED,
            )
        elif d.kind is EventKind.POSITION_PARTIALLY_CLOSED:
            SignalPosition.objects.filter(source=source, ref=d.master_ref).update(
                volume=d.remaining_volume
            )
        elif d.kind in (EventKind.POSITION_CLOSED, EventKind.ORDER_CANCELLED):
            SignalPosition.objects.filter(source=source, ref=d.master_ref).delete()


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


@drop_broken_connection
def handle_signal(fields: dict[str, str]) -> Records:
    """One signal, exactly once: its events in the outbox and its log line, atomically."""
    signal_id = fields["sid"]
    with transaction.atomic():
        source = (
            SignalSource.objects.select_for_update()
            .filter(account_id=int(fields["source"]))
            .first()
        )
        if source is None or SignalLog.objects.filter(signal_id=signal_id).exists():
            return []  # the source was deleted, or the signal was handled already
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
        positions = [
            SourcePosition(p.ref, p.symbol, Side(p.side), p.volume, p.price)
            for p in source.positions.filter(is_order=False)
        ]
        result = events_for(
            signal,
            positions,
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
            line.latency_ms = _latency_ms(fields)
            line.save()
            return []
        _apply(source, result)
        records = append_events(
            source.account_id,
            result,
            master_balance=source.equity,
            master_equity=source.equity,
        )
        line.outcome, line.reason = SignalLog.Outcome.EXECUTED, _summary(result)
        line.latency_ms = _latency_ms(fields)
        line.save()
    return records


@drop_broken_connection
def handle_signals(batch: list[dict[str, str]]) -> Records:
    """Several signals in one transaction (one commit instead of one each); if any
    fails, none is kept and the caller handles them one by one."""
    records: Records = []
    with transaction.atomic():
        for fields in batch:
            records += handle_signal(fields)
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
        if not self.backlog and len(entries) > 1 and all(f for _, _, f in entries):
            try:
                records = await self.db(handle_signals)([f for _, _, f in entries])
            except Exception:
                log.exception("a batch of %d signals failed; one by one now", len(entries))
            else:
                if records:
                    await self.publish(records)
                acks: dict[str, list[str]] = {}
                for stream, msg_id, _ in entries:
                    acks.setdefault(stream, []).append(msg_id)
                for stream, ids in acks.items():
                    await self.client.xack(stream, GROUP, *ids)
                return len(entries)
        for stream, msg_id, fields in entries:
            await self.process(stream, msg_id, fields)
        return len(entries)

    async def process(self, stream: str, msg_id: str, fields: dict[str, str]) -> None:
        if not fields:  # trimmed away while pending
            await self.client.xack(stream, GROUP, msg_id)
            return
        try:
            records = await self.db(handle_signal)(fields)
        except Exception as e:
            log.exception("signal %s failed", fields.get("sid"))
            pending = await self.client.xpending_range(stream, GROUP, msg_id, msg_id, 1)
            deliveries = pending[0]["times_delivered"] if pending else MAX_DELIVERIES
            if deliveries >= MAX_DELIVERIES:
                await self.client.xadd(DEAD_STREAM, {**fields, "error": repr(e)[:500]})
                await self.db(record_failure)(fields, f"could not be carried out: {e!r}")
                await self.client.xack(stream, GROUP, msg_id)
            else:
                self.backlog = True  # read it again
                await asyncio.sleep(0.5)
            return
        if records:
            await self.publish(records)
        await self.client.xack(stream, GROUP, msg_id)
