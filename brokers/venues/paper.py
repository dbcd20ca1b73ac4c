"""Paper: our own persistent demo venue.

It fills market orders at the reference price (the master's fill, or the
price the trader gave) moved by the account's slippage, and keeps balance,
positions and fills in the database. Like a real venue it refuses a second
order with a client order id it has already filled, and answers with the
first fill instead, so a resent order can never fill twice.

When the account leads others, the fill and its master event are written in
one transaction (the outbox), so the event can be late but never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from brokers.instruments import paper_instrument
from brokers.models import BrokerAccount, PaperAccount, PaperFill, PaperPosition
from brokers.venues.base import FillReport, OrderRejected, Venue
from copier.core import EventKind, Instrument, MasterEvent, Side
from copier.core.plan import fmt
from copier.models import MasterEventRecord
from tradosphere.db import drop_broken_connection


def position_ref(position: PaperPosition) -> str:
    return f"P{position.pk}"


def _position_id(ref: str) -> int | None:
    if ref.startswith("P") and ref[1:].isdigit():
        return int(ref[1:])
    return None


def _slipped(
    instrument: Instrument, price: Decimal, side: Side, slippage_points: Decimal
) -> Decimal:
    point = Decimal(1).scaleb(-instrument.price_digits)
    worse = slippage_points * point
    return price + worse if side is Side.BUY else price - worse


def _check_volume(instrument: Instrument, volume: Decimal) -> None:
    if volume <= 0:
        raise OrderRejected(f"volume must be greater than 0, not {fmt(volume)}")
    if volume < instrument.volume_min:
        raise OrderRejected(
            f"{fmt(volume)} lots is under {instrument.symbol}'s minimum of "
            f"{fmt(instrument.volume_min)}"
        )
    if volume > instrument.volume_max:
        raise OrderRejected(
            f"{fmt(volume)} lots is over {instrument.symbol}'s maximum of "
            f"{fmt(instrument.volume_max)}"
        )
    if not instrument.is_on_step(volume):
        raise OrderRejected(
            f"{fmt(volume)} lots is not a multiple of {instrument.symbol}'s volume step "
            f"{fmt(instrument.volume_step)}"
        )


def _report(fill: PaperFill, created: bool, record: MasterEventRecord | None) -> FillReport:
    return FillReport(
        client_order_id=fill.client_order_id,
        position_ref=f"P{fill.position_id}",
        symbol=fill.symbol,
        side=Side(fill.side),
        volume=Decimal(fill.volume).normalize(),
        price=Decimal(fill.price).normalize(),
        created=created,
        event_record_id=record.pk if record else None,
        event=MasterEvent.from_wire(record.payload) if record else None,
    )


def _emit(
    account: BrokerAccount,
    kind: EventKind,
    position: PaperPosition,
    volume: Decimal,
    price: Decimal,
) -> MasterEventRecord | None:
    """Append the master event for a fill, inside the fill's transaction."""
    if not account.can_lead:
        return None
    BrokerAccount.objects.filter(pk=account.pk).update(event_seq=F("event_seq") + 1)
    seq = BrokerAccount.objects.values_list("event_seq", flat=True).get(pk=account.pk)
    event = MasterEvent(
        source=account.event_source,
        seq=seq,
        kind=kind,
        master_ref=position_ref(position),
        symbol=position.symbol,
        side=Side(position.side),
        volume=volume.normalize(),
        price=price.normalize(),
        ts_event_ms=time.time_ns() // 1_000_000,
    )
    return MasterEventRecord.objects.create(
        account=account,
        seq=seq,
        kind=kind.value,
        master_ref=event.master_ref,
        payload=event.to_wire(),
    )


def _existing(account_id: int, client_order_id: str) -> FillReport | None:
    fill = PaperFill.objects.filter(account_id=account_id, client_order_id=client_order_id).first()
    return _report(fill, created=False, record=None) if fill else None


def _fill_once(
    account_id: int,
    client_order_id: str,
    fill: Callable[[PaperAccount], tuple[PaperFill, MasterEventRecord | None]],
) -> FillReport:
    """Run `fill` under the account's lock, unless the client order id has filled already."""
    try:
        with transaction.atomic():
            ledger = (
                PaperAccount.objects.select_for_update()
                .select_related("account")
                .get(account_id=account_id)
            )
            if (done := _existing(account_id, client_order_id)) is not None:
                return done
            new_fill, record = fill(ledger)
    except IntegrityError:
        # Another process filled the same client order id first.
        if (done := _existing(account_id, client_order_id)) is not None:
            return done
        raise
    return _report(new_fill, created=True, record=record)


@drop_broken_connection
def open_position(
    account_id: int,
    symbol: str,
    side: Side,
    volume: Decimal,
    reference_price: Decimal,
    client_order_id: str,
) -> FillReport:
    instrument = paper_instrument(symbol)
    if instrument is None:
        raise OrderRejected(f"{symbol} is not a Paper instrument")
    _check_volume(instrument, volume)
    if reference_price <= 0:
        raise OrderRejected(f"price must be greater than 0, not {fmt(reference_price)}")

    def fill(ledger: PaperAccount) -> tuple[PaperFill, MasterEventRecord | None]:
        assert instrument is not None
        account = ledger.account
        price = _slipped(instrument, reference_price, side, ledger.slippage_points)
        position = PaperPosition.objects.create(
            account=account,
            symbol=instrument.symbol,
            side=side.value,
            volume=volume,
            open_price=price,
        )
        new_fill = PaperFill.objects.create(
            account=account,
            client_order_id=client_order_id,
            position=position,
            action=PaperFill.Action.OPEN,
            symbol=instrument.symbol,
            side=side.value,
            volume=volume,
            price=price,
        )
        return new_fill, _emit(account, EventKind.POSITION_OPENED, position, volume, price)

    return _fill_once(account_id, client_order_id, fill)


@drop_broken_connection
def close_position(
    account_id: int, ref: str, reference_price: Decimal, client_order_id: str
) -> FillReport:
    if reference_price <= 0:
        raise OrderRejected(f"price must be greater than 0, not {fmt(reference_price)}")
    position_id = _position_id(ref)

    def fill(ledger: PaperAccount) -> tuple[PaperFill, MasterEventRecord | None]:
        position = PaperPosition.objects.filter(account_id=account_id, pk=position_id).first()
        if position is None:
            raise OrderRejected(f"position {ref} does not exist on this account")
        if not position.is_open:
            raise OrderRejected(f"position {ref} is already closed")
        instrument = paper_instrument(position.symbol)
        assert instrument is not None, "positions only hold catalogue symbols"
        side = Side(position.side)
        price = _slipped(instrument, reference_price, side.opposite, ledger.slippage_points)
        direction = 1 if side is Side.BUY else -1
        pnl = (
            (price - position.open_price) * position.volume * instrument.contract_size * direction
        ).quantize(Decimal("0.01"))
        position.closed_at = timezone.now()
        position.close_price = price
        position.realized_pnl = pnl
        position.save(update_fields=["closed_at", "close_price", "realized_pnl"])
        PaperAccount.objects.filter(pk=ledger.pk).update(balance=F("balance") + pnl)
        new_fill = PaperFill.objects.create(
            account=ledger.account,
            client_order_id=client_order_id,
            position=position,
            action=PaperFill.Action.CLOSE,
            symbol=position.symbol,
            side=side.opposite.value,
            volume=position.volume,
            price=price,
        )
        record = _emit(ledger.account, EventKind.POSITION_CLOSED, position, position.volume, price)
        return new_fill, record

    return _fill_once(account_id, client_order_id, fill)


find_fill = drop_broken_connection(_existing)


class PaperVenue(Venue):
    """The async face of one Paper account, for the copier daemon."""

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id

    def instrument(self, symbol: str) -> Instrument | None:
        return paper_instrument(symbol)

    async def open_position(
        self,
        symbol: str,
        side: Side,
        volume: Decimal,
        reference_price: Decimal,
        client_order_id: str,
    ) -> FillReport:
        return await sync_to_async(open_position, thread_sensitive=False)(
            self.account_id, symbol, side, volume, reference_price, client_order_id
        )

    async def close_position(
        self, position_ref: str, reference_price: Decimal, client_order_id: str
    ) -> FillReport:
        return await sync_to_async(close_position, thread_sensitive=False)(
            self.account_id, position_ref, reference_price, client_order_id
        )

    async def find_fill(self, client_order_id: str) -> FillReport | None:
        return await sync_to_async(find_fill, thread_sensitive=False)(
            self.account_id, client_order_id
        )
