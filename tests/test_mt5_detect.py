"""The MT5 poll-and-diff detector on the MetaTrader5 package's result shapes.

The package has Windows wheels only, so its three row types are declared here
as named tuples with the documented fields in the documented order
(https://www.mql5.com/en/docs/python_metatrader5: positions_get, orders_get,
history_deals_get). `positions_get()` and friends answer tuples of them.
"""

from __future__ import annotations

import subprocess
import sys
from collections import namedtuple
from decimal import Decimal
from typing import Any

import pytest

from brokers.mt5.detect import Change, Detector, closing_deal, dec
from brokers.venues.base import VenueUnavailable
from copier.core.events import EventKind, MasterEvent, OrderType, Side
from tests.conftest import ROOT

TradePosition = namedtuple(
    "TradePosition",
    "ticket time time_msc time_update time_update_msc type magic identifier reason volume "
    "price_open sl tp price_current swap profit symbol comment external_id",
)
TradeOrder = namedtuple(
    "TradeOrder",
    "ticket time_setup time_setup_msc time_done time_done_msc time_expiration type type_time "
    "type_filling state magic position_id position_by_id reason volume_initial volume_current "
    "price_open sl tp price_current price_stoplimit symbol comment external_id",
)
TradeDeal = namedtuple(
    "TradeDeal",
    "ticket order time time_msc type entry magic position_id reason volume price commission "
    "swap profit fee symbol comment external_id",
)

D = Decimal
OPENED, MODIFIED = EventKind.POSITION_OPENED, EventKind.POSITION_MODIFIED
PARTIAL, CLOSED = EventKind.POSITION_PARTIALLY_CLOSED, EventKind.POSITION_CLOSED
PLACED, OMODIFIED = EventKind.ORDER_PLACED, EventKind.ORDER_MODIFIED
CANCELLED, FILLED = EventKind.ORDER_CANCELLED, EventKind.ORDER_FILLED
BUY_LIMIT, SELL_STOP, BUY_STOP_LIMIT = 2, 5, 6
T0 = 1_700_000_000_000  # server time, ms
HOUR = 3_600_000


def position(ticket: int, volume: float = 1.0, **kw: Any) -> TradePosition:
    row: dict[str, Any] = {
        "ticket": ticket,
        "time": T0 // 1000,
        "time_msc": T0,
        "time_update": T0 // 1000,
        "time_update_msc": T0,
        "type": 0,
        "magic": 0,
        "identifier": ticket,
        "reason": 3,
        "volume": volume,
        "price_open": 1.08512,
        "sl": 0.0,
        "tp": 0.0,
        "price_current": 1.08515,
        "swap": 0.0,
        "profit": 3.0,
        "symbol": "EURUSD",
        "comment": "",
        "external_id": "",
    }
    row.update(kw)
    return TradePosition(**row)


def order(ticket: int, type: int = BUY_LIMIT, **kw: Any) -> TradeOrder:
    row: dict[str, Any] = {
        "ticket": ticket,
        "time_setup": T0 // 1000,
        "time_setup_msc": T0,
        "time_done": 0,
        "time_done_msc": 0,
        "time_expiration": 0,
        "type": type,
        "type_time": 0,
        "type_filling": 2,
        "state": 1,
        "magic": 0,
        "position_id": 0,
        "position_by_id": 0,
        "reason": 3,
        "volume_initial": 0.5,
        "volume_current": 0.5,
        "price_open": 1.07,
        "sl": 0.0,
        "tp": 0.0,
        "price_current": 1.08515,
        "price_stoplimit": 0.0,
        "symbol": "EURUSD",
        "comment": "",
        "external_id": "",
    }
    row.update(kw)
    return TradeOrder(**row)


def deal(ticket: int, position_id: int, entry: int, volume: float, price: float, ms: int) -> Any:
    return TradeDeal(
        ticket=ticket,
        order=ticket,
        time=ms // 1000,
        time_msc=ms,
        type=0 if entry == 0 else 1,
        entry=entry,
        magic=0,
        position_id=position_id,
        reason=3,
        volume=volume,
        price=price,
        commission=0.0,
        swap=0.0,
        profit=0.0,
        fee=0.0,
        symbol="EURUSD",
        comment="",
        external_id="",
    )


class History:
    """The caller's side of exit_price: answers from a list of TradeDeal rows."""

    def __init__(self, *deals: Any) -> None:
        self.deals = list(deals)
        self.asked: list[int] = []

    def __call__(self, ticket: int) -> tuple[Decimal, int] | None:
        self.asked.append(ticket)
        return closing_deal(tuple(d for d in self.deals if d.position_id == ticket))


def shape(changes: list[Change]) -> list[tuple[Any, ...]]:
    return [(c.kind, c.master_ref, c.side.value, str(c.volume), str(c.price)) for c in changes]


def started(positions: tuple[Any, ...] = (), orders: tuple[Any, ...] = (), **kw: Any) -> Detector:
    detector = Detector(**kw)
    detector.start(positions, orders)
    return detector


def test_the_snapshot_is_not_reported_and_an_unchanged_poll_is_quiet() -> None:
    positions = (position(10), position(11, type=1, volume=0.3))
    orders = (order(20),)
    detector = started(positions, orders)
    history = History()
    assert detector.poll(positions, orders, history) == []
    assert history.asked == []


def test_the_same_rows_in_another_order_are_no_change() -> None:
    positions = (position(10), position(11, volume=0.3), position(12, sl=1.07))
    orders = (order(20), order(21, type=SELL_STOP, price_open=1.06))
    detector = started(positions, orders)
    assert detector.poll(positions[::-1], orders[::-1], History()) == []
    assert detector.poll(positions, orders, History()) == []
    changed = (position(12, sl=1.071), position(10), position(11, volume=0.3))
    assert shape(detector.poll(changed, orders, History())) == [
        (MODIFIED, "P12", "buy", "1", "1.08512")
    ]


def test_prices_profit_swap_and_times_moving_produce_no_event() -> None:
    detector = started((position(10),), (order(20),))
    moved = (
        position(
            10,
            price_current=1.09,
            profit=-12.5,
            swap=-0.4,
            time_update=T0 // 1000 + 7,
            time_update_msc=T0 + 7000,
        ),
    )
    assert detector.poll(moved, (order(20, price_current=1.09),), History()) == []
    # ... but the same poll with a real change does report it.
    assert shape(detector.poll(moved, (), History(), now_ms=5)) == [
        (CANCELLED, "O20", "buy", "0.5", "1.07")
    ]


def test_open_carries_the_rows_fields_as_decimals_in_utc() -> None:
    detector = started(server_offset_ms=2 * HOUR)
    row = position(10, volume=0.1, type=1, sl=1.0951, tp=0.0, price_open=1.08512)
    [change] = detector.poll((row,), (), History())
    assert change == Change(
        OPENED, "P10", "EURUSD", Side.SELL, D("0.1"), D("1.08512"), T0 - 2 * HOUR, sl=D("1.0951")
    )
    assert change.tp is None  # MT5's 0.0 means "no TP"


def test_sl_tp_change_is_a_modification() -> None:
    detector = started((position(10, sl=1.08),))
    changed = position(10, sl=1.081, tp=1.09, time_update_msc=T0 + 500)
    [change] = detector.poll((changed,), (), History())
    assert (change.kind, change.master_ref, change.sl, change.tp) == (
        MODIFIED,
        "P10",
        D("1.081"),
        D("1.09"),
    )
    assert (change.volume, change.ts_ms) == (D("1"), T0 + 500)


def test_a_tp_alone_is_a_modification_too() -> None:
    detector = started((position(10, sl=1.08, tp=1.09),))
    [change] = detector.poll((position(10, sl=1.08, tp=0.0),), (), History())
    assert (change.kind, change.sl, change.tp) == (MODIFIED, D("1.08"), None)


def test_a_volume_decrease_is_a_partial_close_with_exact_decimals() -> None:
    detector = started((position(10, volume=1.0),))
    row = position(10, volume=0.7, price_current=1.0861, time_update_msc=T0 + 900)
    [change] = detector.poll((row,), (), History())
    # 1.0 - 0.7 in floats is 0.30000000000000004; the decimals are exact.
    assert (change.kind, change.master_ref, change.volume, change.remaining_volume) == (
        PARTIAL,
        "P10",
        D("0.3"),
        D("0.7"),
    )
    assert (change.price, change.ts_ms) == (D("1.0861"), T0 + 900)


def test_two_partial_closes_between_polls_are_one_decrease() -> None:
    detector = started((position(10, volume=1.0),))
    # The master closed 0.2 then 0.3 within one interval; the diff sees 1.0 -> 0.5.
    [change] = detector.poll((position(10, volume=0.5),), (), History())
    assert (change.kind, change.volume, change.remaining_volume) == (PARTIAL, D("0.5"), D("0.5"))
    [again] = detector.poll((position(10, volume=0.25),), (), History())
    assert (again.volume, again.remaining_volume) == (D("0.25"), D("0.25"))


def test_a_close_takes_the_exit_price_and_time_from_the_closing_deal() -> None:
    detector = started((position(10, volume=1.0), position(11)), server_offset_ms=HOUR)
    history = History(
        deal(500, 10, 0, 1.0, 1.08512, T0),
        deal(501, 10, 1, 0.4, 1.0855, T0 + 1000),
        deal(502, 10, 1, 0.6, 1.0871, T0 + 2000),
        deal(503, 11, 0, 1.0, 1.08512, T0),
    )
    changes = detector.poll((position(11),), (), history)
    assert history.asked == [10]  # only the disappeared ticket
    assert shape(changes) == [(CLOSED, "P10", "buy", "1", "1.0871")]
    assert changes[0].ts_ms == T0 + 2000 - HOUR


def test_history_lag_falls_back_to_the_last_price_seen_and_now() -> None:
    detector = started((position(10, volume=1.0),))
    detector.poll((position(10, volume=1.0, price_current=1.0899),), (), History())
    # The terminal has the partial close in history, not yet the final deal.
    lagging = History(deal(500, 10, 0, 1.0, 1.08, T0), deal(501, 10, 1, 0.4, 1.0855, T0 + 1))
    [change] = detector.poll((), (), lagging, now_ms=1_800_000_000_123)
    assert (change.kind, change.price, change.ts_ms) == (
        CLOSED,
        D("1.0899"),
        1_800_000_000_123,
    )


def test_a_failing_history_call_leaves_the_close_for_the_next_poll() -> None:
    detector = started((position(9), position(10), position(11)))
    # P9 grew on a netting account: it has two lots, P9 and P9.2.
    grown = (position(9, volume=1.5), position(10), position(11))
    assert len(detector.poll(grown, (), History())) == 1
    history = History(
        deal(500, 9, 0, 1.5, 1.08, T0),
        deal(501, 9, 1, 1.5, 1.0871, T0 + 1),
        deal(502, 10, 0, 1.0, 1.08, T0),
        deal(503, 10, 1, 1.0, 1.0872, T0 + 1),
    )

    def failing_for_10(ticket: int) -> tuple[Decimal, int] | None:
        if ticket == 10:
            raise VenueUnavailable(f"history_deals_get(position={ticket}) answered None")
        return history(ticket)

    with pytest.raises(VenueUnavailable):
        detector.poll((position(11, volume=0.5),), (), failing_for_10)
    changes = detector.poll((position(11, volume=0.5),), (), history)
    assert [(c.kind, c.master_ref, str(c.volume), str(c.price)) for c in changes] == [
        (CLOSED, "P9", "1", "1.0871"),
        (CLOSED, "P9.2", "0.5", "1.0871"),
        (CLOSED, "P10", "1", "1.0872"),
        (PARTIAL, "P11", "0.5", "1.08515"),
    ]


def test_close_and_reopen_within_one_poll_close_first() -> None:
    detector = started((position(10, volume=1.0),))
    history = History(deal(600, 10, 0, 1.0, 1.08, T0), deal(601, 10, 1, 1.0, 1.0871, T0 + 10))
    reopened = position(12, volume=1.0, price_open=1.0871, time_msc=T0 + 10)
    changes = detector.poll((reopened,), (), history)
    assert shape(changes) == [
        (CLOSED, "P10", "buy", "1", "1.0871"),
        (OPENED, "P12", "buy", "1", "1.0871"),
    ]


def test_pending_orders_placed_modified_and_cancelled() -> None:
    detector = started()
    placed = order(20, type=SELL_STOP, price_open=1.07, sl=1.075, time_setup_msc=T0 + 3)
    [change] = detector.poll((), (placed,), History())
    assert change == Change(
        PLACED,
        "O20",
        "EURUSD",
        Side.SELL,
        D("0.5"),
        D("1.07"),
        T0 + 3,
        order_type=OrderType.STOP,
        sl=D("1.075"),
    )
    for moved in (
        order(20, type=SELL_STOP, price_open=1.069, sl=1.075),
        order(20, type=SELL_STOP, price_open=1.069, sl=1.074),
        order(20, type=SELL_STOP, price_open=1.069, sl=1.074, tp=1.06),
        order(20, type=SELL_STOP, price_open=1.069, sl=1.074, tp=1.06, volume_current=0.3),
    ):
        [modified] = detector.poll((), (moved,), History(), now_ms=77)
        assert (modified.kind, modified.master_ref, modified.ts_ms) == (OMODIFIED, "O20", 77)
        assert (modified.price, modified.sl, modified.tp) == (
            D("1.069"),
            dec(moved.sl),
            dec(moved.tp) if moved.tp else None,
        )
    assert modified.volume == D("0.3")
    [cancelled] = detector.poll((), (), History(), now_ms=78)
    assert (cancelled.kind, cancelled.master_ref, cancelled.volume) == (CANCELLED, "O20", D("0.3"))


def test_a_pending_order_that_becomes_a_position_is_one_fill() -> None:
    detector = started((), (order(20, type=BUY_LIMIT, price_open=1.07),))
    # MT5: the position's identifier is the ticket of the order that opened it.
    filled = position(31, identifier=20, volume=0.5, price_open=1.0699, time_msc=T0 + 42)
    [change] = detector.poll((filled,), (), History())
    assert change == Change(
        FILLED,
        "O20",
        "EURUSD",
        Side.BUY,
        D("0.5"),
        D("1.0699"),
        T0 + 42,
        order_type=OrderType.LIMIT,
        position_ref="P31",
    )
    # From then on the position is followed under its own reference.
    [closed] = detector.poll((), (), History(), now_ms=1)
    assert (closed.kind, closed.master_ref) == (CLOSED, "P31")


def test_a_market_order_opening_a_position_is_an_open_not_a_fill() -> None:
    detector = started()
    # A market order can show in orders_get() for a moment: it is not a pending order.
    in_flight = order(40, type=0, price_open=0.0)
    assert detector.poll((), (in_flight,), History()) == []
    changes = detector.poll((position(40),), (), History())
    assert shape(changes) == [(OPENED, "P40", "buy", "1", "1.08512")]


def test_a_stop_limit_is_a_stop_and_its_trigger_is_a_modification() -> None:
    detector = started()
    stop_limit = order(20, type=BUY_STOP_LIMIT, price_open=1.09, price_stoplimit=1.088)
    [placed] = detector.poll((), (stop_limit,), History())
    assert (placed.order_type, placed.price) == (OrderType.STOP, D("1.09"))
    triggered = order(20, type=BUY_LIMIT, price_open=1.088, price_stoplimit=0.0)
    [change] = detector.poll((), (triggered,), History(), now_ms=9)
    assert (change.kind, change.order_type, change.price) == (
        OMODIFIED,
        OrderType.LIMIT,
        D("1.088"),
    )


def test_netting_increase_opens_a_lot_and_decreases_close_lots_first_in_first_out() -> None:
    detector = started((position(10, volume=1.0),))
    grown = position(10, volume=1.5, price_current=1.0901, time_update_msc=T0 + 5)
    [change] = detector.poll((grown,), (), History())
    assert (change.kind, change.master_ref, change.volume, change.price) == (
        OPENED,
        "P10.2",
        D("0.5"),
        D("1.0901"),
    )
    [more] = detector.poll((position(10, volume=1.75),), (), History())
    assert (more.master_ref, more.volume) == ("P10.3", D("0.25"))
    # 1.75 -> 0.6: P10 (1) closes whole, P10.2 (0.5) gives 0.15 and keeps 0.35.
    changes = detector.poll((position(10, volume=0.6, price_current=1.0801),), (), History())
    assert [(c.kind, c.master_ref, c.volume, c.remaining_volume) for c in changes] == [
        (CLOSED, "P10", D("1"), None),
        (PARTIAL, "P10.2", D("0.15"), D("0.35")),
    ]
    assert {c.price for c in changes} == {D("1.0801")}
    # An SL change moves every open lot's copy.
    changes = detector.poll((position(10, volume=0.6, sl=1.07),), (), History())
    assert [(c.kind, c.master_ref, c.volume, c.sl) for c in changes] == [
        (MODIFIED, "P10.2", D("0.35"), D("1.07")),
        (MODIFIED, "P10.3", D("0.25"), D("1.07")),
    ]
    history = History(deal(700, 10, 0, 1.75, 1.08, T0), deal(701, 10, 1, 1.75, 1.0777, T0 + 9))
    changes = detector.poll((), (), history)
    assert shape(changes) == [
        (CLOSED, "P10.2", "buy", "0.35", "1.0777"),
        (CLOSED, "P10.3", "buy", "0.25", "1.0777"),
    ]


def test_netting_reversal_closes_the_lots_and_opens_the_other_side() -> None:
    detector = started((position(10, volume=1.0),))
    reversed_ = position(10, type=1, volume=0.4, price_open=1.0833, time_update_msc=T0 + 8)
    changes = detector.poll((reversed_,), (), History())
    assert shape(changes) == [
        (CLOSED, "P10", "buy", "1", "1.0833"),
        (OPENED, "P10.2", "sell", "0.4", "1.0833"),
    ]
    assert {c.ts_ms for c in changes} == {T0 + 8}


def test_one_busy_poll_in_the_documented_order() -> None:
    before = (
        position(14, volume=1.0),  # closes
        position(11, volume=1.0),  # closes
        position(13, volume=1.0, sl=1.08),  # SL moves
        position(12, volume=1.0),  # partially closed
    )
    orders_before = (order(25), order(21), order(23), order(22))
    detector = started(before, orders_before)
    after = (
        position(13, volume=1.0, sl=1.081),
        position(12, volume=0.4),
        position(19, volume=0.2),  # new
        position(16, identifier=23, volume=0.5),  # order 23 filled
    )
    orders_after = (order(25, price_open=1.06), order(30), order(28))
    history = History()
    changes = detector.poll(after, orders_after, history, now_ms=1)
    assert history.asked == [11, 14]
    assert [(c.kind, c.master_ref) for c in changes] == [
        (CLOSED, "P11"),
        (CLOSED, "P14"),
        (PARTIAL, "P12"),
        (MODIFIED, "P13"),
        (CANCELLED, "O21"),
        (CANCELLED, "O22"),
        (OMODIFIED, "O25"),
        (FILLED, "O23"),
        (OPENED, "P19"),
        (PLACED, "O28"),
        (PLACED, "O30"),
    ]
    # Fed the same state again, nothing is new.
    assert detector.poll(after, orders_after, History()) == []


def test_a_failed_terminal_answer_raises_and_keeps_the_snapshot() -> None:
    detector = started((position(10),))
    with pytest.raises(VenueUnavailable, match="positions_get"):
        detector.poll(None, (), History())
    with pytest.raises(VenueUnavailable, match="orders_get"):
        detector.poll((position(10),), None, History())
    assert detector.poll((position(10),), (), History()) == []


def test_poll_needs_the_snapshot_first() -> None:
    with pytest.raises(RuntimeError, match="start"):
        Detector().poll((), (), History())
    with pytest.raises(ValueError, match="interval"):
        Detector(interval_s=0)
    assert Detector().interval_s == 0.010


def test_closing_deal_replays_the_position_deals() -> None:
    assert closing_deal(None) is None
    assert closing_deal(()) is None
    opened = deal(1, 10, 0, 1.0, 1.08, T0)
    assert closing_deal((opened,)) is None
    partial = deal(2, 10, 1, 0.4, 1.085, T0 + 1)
    final = deal(3, 10, 1, 0.6, 1.09, T0 + 2)
    assert closing_deal((opened, partial)) is None  # the final deal is not in history yet
    # Answers come in any order; the replay goes by time.
    assert closing_deal((final, opened, partial)) == (D("1.09"), T0 + 2)
    by = deal(4, 10, 3, 1.0, 1.0877, T0 + 3)  # DEAL_ENTRY_OUT_BY
    assert closing_deal((opened, by)) == (D("1.0877"), T0 + 3)
    # Netting: INOUT reverses 1.0 long into 0.5 short; the OUT of 0.5 closes it.
    inout = deal(5, 10, 2, 1.5, 1.07, T0 + 4)
    assert closing_deal((opened, inout)) is None
    out = deal(6, 10, 1, 0.5, 1.066, T0 + 5)
    assert closing_deal((opened, inout, out)) == (D("1.066"), T0 + 5)


def test_dec_reads_floats_as_the_terminal_meant_them() -> None:
    assert dec(0.1) == D("0.1") != D(0.1)
    assert dec(1.0) - dec(0.7) == D("0.3")
    assert dec(1.08512) == D("1.08512")
    assert str(dec(1.0)) == "1"
    assert str(dec(10.0)) == "10"
    assert str(dec(0.00001)) == "0.00001"
    assert dec(2) == D(2)


def test_a_change_becomes_a_master_event_that_survives_the_wire() -> None:
    detector = started((), (order(20, type=BUY_LIMIT),))
    [change] = detector.poll((position(31, identifier=20, sl=1.06),), (), History())
    event = change.to_event("acct:7", 12, master_balance=D("10000.5"), contract_size=D(100000))
    assert isinstance(event, MasterEvent)
    assert (event.source, event.seq, event.kind, event.position_ref) == (
        "acct:7",
        12,
        FILLED,
        "P31",
    )
    assert MasterEvent.from_wire(event.to_wire()) == event


def test_the_detector_imports_nothing_from_django_or_metatrader5() -> None:
    code = (
        "import sys, brokers.mt5.detect; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'MetaTrader5'}); "
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
