"""Paper: our own persistent demo venue.

It fills market orders at the reference price (the master's fill, or the
price the trader gave) moved by the account's slippage, and keeps balance,
positions, pending orders and every request in the database. Like a real
venue it refuses a second request with a client order id it has already
carried out, and answers with what the first one did, so a resent order can
never fill twice.

When the account leads others, each change and its master event are written
in one transaction (the outbox), so the event can be late but never lost.
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
from brokers.models import BrokerAccount, PaperAccount, PaperOrder, PaperPosition, PaperRequest
from brokers.venues.base import ACTIONS_NEEDING_REF, OrderRejected, Report, Venue
from copier.core import (
    EventKind,
    FollowerOrder,
    Instrument,
    MasterEvent,
    OrderAction,
    OrderType,
    Side,
)
from copier.core.sizing import fmt, plain
from copier.models import MasterEventRecord
from tradosphere.db import drop_broken_connection

Action = PaperRequest.Action
Done = tuple[PaperRequest, MasterEventRecord | None]


def position_ref(position: PaperPosition) -> str:
    return f"P{position.pk}"


def order_ref(order: PaperOrder) -> str:
    return f"O{order.pk}"


def _ref_id(ref: str, prefix: str) -> int | None:
    if ref.startswith(prefix) and ref[1:].isdigit():
        return int(ref[1:])
    return None


def _instrument(symbol: str) -> Instrument:
    instrument = paper_instrument(symbol)
    if instrument is None:
        raise OrderRejected(f"{symbol} is not a Paper instrument")
    return instrument


def _slipped(
    instrument: Instrument, price: Decimal, side: Side, slippage_points: Decimal
) -> Decimal:
    return price + side.sign * slippage_points * instrument.point


def _check_volume(instrument: Instrument, volume: Decimal) -> None:
    if (problem := instrument.volume_problem(volume)) is not None:
        raise OrderRejected(problem)


def realized_pnl(
    position: PaperPosition, instrument: Instrument, exit_price: Decimal, volume: Decimal
) -> Decimal:
    """Profit or loss of closing `volume` lots of `position` at `exit_price`, in cents."""
    move = (exit_price - position.open_price) * Side(position.side).sign
    return (move * volume * instrument.contract_size).quantize(Decimal("0.01"))


def _check_price(price: Decimal, what: str = "price") -> None:
    if price <= 0:
        raise OrderRejected(f"{what} must be greater than 0, not {fmt(price)}")


def _check_stops(side: Side, price: Decimal, sl: Decimal | None, tp: Decimal | None) -> None:
    """Stops on the wrong side of the entry are refused, as brokers do."""
    if sl is not None:
        _check_price(sl, "stop loss")
        if (sl - price) * side.sign >= 0:
            where = "below" if side is Side.BUY else "above"
            raise OrderRejected(f"a {side.value}'s stop loss must be {where} {fmt(price)}")
    if tp is not None:
        _check_price(tp, "take profit")
        if (tp - price) * side.sign <= 0:
            where = "above" if side is Side.BUY else "below"
            raise OrderRejected(f"a {side.value}'s take profit must be {where} {fmt(price)}")


def _report(request: PaperRequest, created: bool, record: MasterEventRecord | None) -> Report:
    if request.order_id is not None and request.action in (
        Action.PLACE,
        Action.AMEND,
        Action.CANCEL,
    ):
        ref = f"O{request.order_id}"
    else:
        ref = f"P{request.position_id}"
    level = request.order or request.position
    return Report(
        client_order_id=request.client_order_id,
        action=request.action,
        ref=ref,
        symbol=request.symbol,
        side=Side(request.side),
        volume=plain(request.volume),
        price=plain(request.price),
        created=created,
        remaining=plain(request.remaining),
        sl=level.sl if level is not None else None,
        tp=level.tp if level is not None else None,
        event_record_id=record.pk if record else None,
        event=MasterEvent.from_wire(record.payload) if record else None,
    )


def _existing(account_id: int, client_order_id: str) -> Report | None:
    request = (
        PaperRequest.objects.filter(account_id=account_id, client_order_id=client_order_id)
        .select_related("order", "position")
        .first()
    )
    return _report(request, created=False, record=None) if request else None


def _emit(
    ledger: PaperAccount,
    kind: EventKind,
    ref: str,
    level: PaperPosition | PaperOrder,
    volume: Decimal,
    price: Decimal,
    **extra: object,
) -> MasterEventRecord | None:
    """Append the master event for a change, inside the change's transaction."""
    account = ledger.account
    if not account.can_lead:
        return None
    BrokerAccount.objects.filter(pk=account.pk).update(event_seq=F("event_seq") + 1)
    seq = BrokerAccount.objects.values_list("event_seq", flat=True).get(pk=account.pk)
    balance = PaperAccount.objects.values_list("balance", flat=True).get(pk=ledger.pk)
    order_type = OrderType(level.order_type) if isinstance(level, PaperOrder) else OrderType.MARKET
    event = MasterEvent(
        source=account.event_source,
        seq=seq,
        kind=kind,
        master_ref=ref,
        symbol=level.symbol,
        side=Side(level.side),
        volume=plain(volume),
        price=plain(price),
        ts_event_ms=time.time_ns() // 1_000_000,
        order_type=order_type,
        sl=plain(level.sl) if level.sl is not None else None,
        tp=plain(level.tp) if level.tp is not None else None,
        master_balance=balance,
        master_equity=balance,
        contract_size=_instrument(level.symbol).contract_size,
        **extra,  # type: ignore[arg-type]
    )
    return MasterEventRecord.objects.create(
        account=account, seq=seq, kind=kind.value, master_ref=ref, payload=event.to_wire()
    )


def _once(account_id: int, client_order_id: str, apply: Callable[[PaperAccount], Done]) -> Report:
    """Apply a request under the account's lock, unless its client order id was seen."""
    try:
        with transaction.atomic():
            ledger = (
                PaperAccount.objects.select_for_update()
                .select_related("account")
                .get(account_id=account_id)
            )
            if (done := _existing(account_id, client_order_id)) is not None:
                return done
            request, record = apply(ledger)
    except IntegrityError:
        # Another process carried out the same client order id first.
        if (done := _existing(account_id, client_order_id)) is not None:
            return done
        raise
    return _report(request, created=True, record=record)


def _request(
    ledger: PaperAccount,
    coid: str,
    action: str,
    level: PaperPosition | PaperOrder,
    volume: Decimal,
    price: Decimal,
    **extra: object,
) -> PaperRequest:
    return PaperRequest.objects.create(
        account=ledger.account,
        client_order_id=coid,
        action=action,
        symbol=level.symbol,
        side=level.side,
        volume=volume,
        price=price,
        position=level if isinstance(level, PaperPosition) else None,
        order=level if isinstance(level, PaperOrder) else None,
        **extra,
    )


def _open_position(
    ledger: PaperAccount,
    symbol: str,
    side: Side,
    volume: Decimal,
    price: Decimal,
    sl: Decimal | None,
    tp: Decimal | None,
) -> PaperPosition:
    return PaperPosition.objects.create(
        account=ledger.account,
        symbol=symbol,
        side=side.value,
        volume=volume,
        open_price=price,
        sl=sl,
        tp=tp,
    )


def _position(account_id: int, ref: str) -> PaperPosition:
    position = PaperPosition.objects.filter(account_id=account_id, pk=_ref_id(ref, "P")).first()
    if position is None:
        raise OrderRejected(f"position {ref} does not exist on this account")
    if not position.is_open:
        raise OrderRejected(f"position {ref} is already closed")
    return position


def _order(account_id: int, ref: str) -> PaperOrder:
    order = PaperOrder.objects.filter(account_id=account_id, pk=_ref_id(ref, "O")).first()
    if order is None:
        raise OrderRejected(f"pending order {ref} does not exist on this account")
    if order.status != PaperOrder.Status.OPEN:
        raise OrderRejected(f"pending order {ref} is already {order.status}")
    return order


@drop_broken_connection
def open_position(
    account_id: int,
    symbol: str,
    side: Side,
    volume: Decimal,
    reference_price: Decimal,
    client_order_id: str,
    sl: Decimal | None = None,
    tp: Decimal | None = None,
) -> Report:
    instrument = _instrument(symbol)
    _check_volume(instrument, volume)
    _check_price(reference_price)
    _check_stops(side, reference_price, sl, tp)

    def apply(ledger: PaperAccount) -> Done:
        price = _slipped(instrument, reference_price, side, ledger.slippage_points)
        position = _open_position(ledger, instrument.symbol, side, volume, price, sl, tp)
        request = _request(
            ledger, client_order_id, Action.OPEN, position, volume, price, remaining=volume
        )
        ref = position_ref(position)
        return request, _emit(ledger, EventKind.POSITION_OPENED, ref, position, volume, price)

    return _once(account_id, client_order_id, apply)


@drop_broken_connection
def close_position(
    account_id: int,
    ref: str,
    reference_price: Decimal,
    client_order_id: str,
    volume: Decimal | None = None,
) -> Report:
    """Close a position, or part of it when `volume` is less than what is open."""
    _check_price(reference_price)

    def apply(ledger: PaperAccount) -> Done:
        position = _position(account_id, ref)
        instrument = _instrument(position.symbol)
        closing = position.volume if volume is None else volume
        if closing > position.volume:
            raise OrderRejected(
                f"cannot close {fmt(closing)} lots of a {fmt(position.volume)}-lot position"
            )
        remaining = position.volume - closing
        if remaining:
            _check_volume(instrument, closing)
            if remaining < instrument.volume_min:
                raise OrderRejected(
                    f"{fmt(remaining)} lots would stay open, under {position.symbol}'s minimum "
                    f"of {fmt(instrument.volume_min)}"
                )
        side = Side(position.side)
        price = _slipped(instrument, reference_price, side.opposite, ledger.slippage_points)
        pnl = realized_pnl(position, instrument, price, closing)
        position.volume = remaining
        position.realized_pnl += pnl
        if not remaining:
            position.closed_at = timezone.now()
            position.close_price = price
        position.save(update_fields=["volume", "realized_pnl", "closed_at", "close_price"])
        PaperAccount.objects.filter(pk=ledger.pk).update(balance=F("balance") + pnl)
        action = Action.REDUCE if remaining else Action.CLOSE
        request = _request(
            ledger,
            client_order_id,
            action,
            position,
            closing,
            price,
            remaining=remaining,
            realized_pnl=pnl,
        )
        if remaining:
            kind, extra = EventKind.POSITION_PARTIALLY_CLOSED, {"remaining_volume": remaining}
        else:
            kind, extra = EventKind.POSITION_CLOSED, {}
        return request, _emit(ledger, kind, ref, position, closing, price, **extra)

    return _once(account_id, client_order_id, apply)


@drop_broken_connection
def modify_position(
    account_id: int, ref: str, sl: Decimal | None, tp: Decimal | None, client_order_id: str
) -> Report:
    def apply(ledger: PaperAccount) -> Done:
        position = _position(account_id, ref)
        for value, what in ((sl, "stop loss"), (tp, "take profit")):
            if value is not None:
                _check_price(value, what)
        position.sl, position.tp = sl, tp
        position.save(update_fields=["sl", "tp"])
        request = _request(
            ledger,
            client_order_id,
            Action.MODIFY,
            position,
            position.volume,
            position.open_price,
            remaining=position.volume,
        )
        event = _emit(
            ledger, EventKind.POSITION_MODIFIED, ref, position, position.volume, position.open_price
        )
        return request, event

    return _once(account_id, client_order_id, apply)


@drop_broken_connection
def place_order(
    account_id: int,
    symbol: str,
    side: Side,
    order_type: OrderType,
    volume: Decimal,
    price: Decimal,
    client_order_id: str,
    sl: Decimal | None = None,
    tp: Decimal | None = None,
) -> Report:
    if order_type is OrderType.MARKET:
        raise OrderRejected("a pending order is a limit or a stop order")
    instrument = _instrument(symbol)
    _check_volume(instrument, volume)
    _check_price(price)
    _check_stops(side, price, sl, tp)

    def apply(ledger: PaperAccount) -> Done:
        order = PaperOrder.objects.create(
            account=ledger.account,
            symbol=instrument.symbol,
            side=side.value,
            order_type=order_type.value,
            volume=volume,
            price=price,
            sl=sl,
            tp=tp,
        )
        request = _request(ledger, client_order_id, Action.PLACE, order, volume, price)
        return request, _emit(
            ledger, EventKind.ORDER_PLACED, order_ref(order), order, volume, price
        )

    return _once(account_id, client_order_id, apply)


@drop_broken_connection
def modify_order(
    account_id: int,
    ref: str,
    price: Decimal,
    sl: Decimal | None,
    tp: Decimal | None,
    client_order_id: str,
) -> Report:
    _check_price(price)

    def apply(ledger: PaperAccount) -> Done:
        order = _order(account_id, ref)
        _check_stops(Side(order.side), price, sl, tp)
        order.price, order.sl, order.tp = price, sl, tp
        order.save(update_fields=["price", "sl", "tp", "updated_at"])
        request = _request(ledger, client_order_id, Action.AMEND, order, order.volume, price)
        return request, _emit(ledger, EventKind.ORDER_MODIFIED, ref, order, order.volume, price)

    return _once(account_id, client_order_id, apply)


@drop_broken_connection
def cancel_order(account_id: int, ref: str, client_order_id: str) -> Report:
    def apply(ledger: PaperAccount) -> Done:
        order = _order(account_id, ref)
        order.status = PaperOrder.Status.CANCELLED
        order.save(update_fields=["status", "updated_at"])
        request = _request(ledger, client_order_id, Action.CANCEL, order, order.volume, order.price)
        event = _emit(ledger, EventKind.ORDER_CANCELLED, ref, order, order.volume, order.price)
        return request, event

    return _once(account_id, client_order_id, apply)


@drop_broken_connection
def fill_order(account_id: int, ref: str, reference_price: Decimal, client_order_id: str) -> Report:
    """Fill a pending order at the reference price; it becomes a position."""
    _check_price(reference_price)

    def apply(ledger: PaperAccount) -> Done:
        order = _order(account_id, ref)
        instrument = _instrument(order.symbol)
        side = Side(order.side)
        price = _slipped(instrument, reference_price, side, ledger.slippage_points)
        position = _open_position(
            ledger, order.symbol, side, order.volume, price, order.sl, order.tp
        )
        order.status, order.position = PaperOrder.Status.FILLED, position
        order.save(update_fields=["status", "position", "updated_at"])
        request = _request(
            ledger,
            client_order_id,
            Action.FILL,
            position,
            order.volume,
            price,
            remaining=order.volume,
        )
        event = _emit(
            ledger,
            EventKind.ORDER_FILLED,
            ref,
            order,
            order.volume,
            price,
            position_ref=position_ref(position),
        )
        return request, event

    return _once(account_id, client_order_id, apply)


find = drop_broken_connection(_existing)


def execute(account_id: int, order: FollowerOrder, coid: str) -> Report:
    """Carry out one planned follower order on a Paper account."""
    if order.action in ACTIONS_NEEDING_REF and order.ref is None:
        raise OrderRejected(f"{order.action.value} needs the follower's position or order")
    ref = order.ref or ""
    match order.action:
        case OrderAction.OPEN:
            return open_position(
                account_id,
                order.symbol,
                order.side,
                order.volume,
                order.reference_price,
                coid,
                order.sl,
                order.tp,
            )
        case OrderAction.CLOSE:
            return close_position(account_id, ref, order.reference_price, coid)
        case OrderAction.REDUCE:
            return close_position(account_id, ref, order.reference_price, coid, order.volume)
        case OrderAction.MODIFY:
            return modify_position(account_id, ref, order.sl, order.tp, coid)
        case OrderAction.PLACE_PENDING:
            return place_order(
                account_id,
                order.symbol,
                order.side,
                order.order_type,
                order.volume,
                order.reference_price,
                coid,
                order.sl,
                order.tp,
            )
        case OrderAction.MODIFY_PENDING:
            return modify_order(account_id, ref, order.reference_price, order.sl, order.tp, coid)
        case OrderAction.CANCEL_PENDING:
            return cancel_order(account_id, ref, coid)
        case OrderAction.FILL_PENDING:
            return fill_order(account_id, ref, order.reference_price, coid)
    raise AssertionError(f"unknown action {order.action!r}")


class PaperVenue(Venue):
    """The async face of one Paper account, for the copier daemon."""

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id

    def instrument(self, symbol: str) -> Instrument | None:
        return paper_instrument(symbol)

    async def execute(self, order: FollowerOrder, client_order_id: str) -> Report:
        return await sync_to_async(execute, thread_sensitive=False)(
            self.account_id, order, client_order_id
        )

    async def find(self, client_order_id: str, symbol: str | None = None) -> Report | None:
        return await sync_to_async(find, thread_sensitive=False)(self.account_id, client_order_id)
