"""Every master event kind, planned for one follower; and master events on the wire."""

import dataclasses
from decimal import Decimal as D

import pytest

from copier.core import (
    CopyRules,
    CopyState,
    EventKind,
    FollowerOrder,
    FollowerState,
    Instrument,
    MasterEvent,
    OrderAction,
    OrderType,
    RiskMode,
    Side,
    Skip,
    plan,
)
from copier.core.events import EventFormatError
from tests.core_values import XAU, master_event

# A symbol with a large minimum, to see partial closes run into it.
BTC = Instrument("BTCUSD", D("0.01"), D("0.10"), D("10"), D("1"), 2)


def event(kind: EventKind, **changes: object) -> MasterEvent:
    return master_event(kind=kind, **changes)


def position(**changes: object) -> CopyState:
    copy = CopyState(
        "P9", "XAUUSD", Side.BUY, D("2"), price=D("2350.20"), sl=D("2340.10"), tp=D("2370.10")
    )
    return dataclasses.replace(copy, **changes)


def pending(**changes: object) -> CopyState:
    copy = CopyState(
        "O4",
        "XAUUSD",
        Side.BUY,
        D("0.5"),
        is_order=True,
        price=D("2300.00"),
        sl=D("2290.00"),
        tp=D("2320.00"),
        order_type=OrderType.LIMIT,
    )
    return dataclasses.replace(copy, **changes)


def partial(closed: str, remaining: str | None, **changes: object) -> MasterEvent:
    return event(
        EventKind.POSITION_PARTIALLY_CLOSED,
        volume=D(closed),
        remaining_volume=None if remaining is None else D(remaining),
        price=D("2360.00"),
        **changes,
    )


# -- position opened -----------------------------------------------------------------


def test_an_open_opens_a_market_copy_linked_to_the_master_position():
    order = plan(
        event(EventKind.POSITION_OPENED, sl=D("2340.10")), CopyRules(), FollowerState(), XAU
    )
    assert order == FollowerOrder(
        OrderAction.OPEN,
        "XAUUSD",
        Side.BUY,
        D("1.00"),
        D("2350.10"),
        order_type=OrderType.MARKET,
        sl=D("2340.10"),
        link_ref="P7",
    )


# -- position modified ---------------------------------------------------------------


def test_a_modification_modifies_the_copy():
    moved = event(EventKind.POSITION_MODIFIED, sl=D("2345.00"), tp=D("2370.10"))
    order = plan(moved, CopyRules(), FollowerState(copy=position()), XAU)
    assert order == FollowerOrder(
        OrderAction.MODIFY,
        "XAUUSD",
        Side.BUY,
        D("2"),
        D("2350.20"),
        sl=D("2345.00"),
        tp=D("2370.10"),
        ref="P9",
    )


def test_a_modification_of_a_copy_without_a_known_entry_uses_the_masters_price():
    moved = event(EventKind.POSITION_MODIFIED, sl=D("2345.00"), tp=D("2370.10"))
    order = plan(moved, CopyRules(), FollowerState(copy=position(price=None)), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.reference_price == D("2350.10")


def test_a_modification_without_a_copy_is_skipped():
    moved = event(EventKind.POSITION_MODIFIED, sl=D("2345.00"))
    assert plan(moved, CopyRules(), FollowerState(), XAU) == Skip("no copied position to modify")


def test_a_modification_of_an_untradable_symbol_is_skipped():
    moved = event(EventKind.POSITION_MODIFIED, sl=D("2345.00"))
    assert plan(moved, CopyRules(), FollowerState(copy=position()), None) == Skip(
        "XAUUSD is not tradable on the follower account"
    )


# -- position partially closed -------------------------------------------------------


def test_a_partial_close_reduces_the_copy_in_proportion():
    # The master closed 0.3 of 1: the copy of 2 closes 0.6.
    order = plan(partial("0.3", "0.7"), CopyRules(), FollowerState(copy=position()), XAU)
    assert order == FollowerOrder(
        OrderAction.REDUCE,
        "XAUUSD",
        Side.SELL,
        D("0.60"),
        D("2360.00"),
        ref="P9",
        note="closing 0.6 of 2 lots, as the master closed 0.3 of 1",
    )


def test_several_partial_closes_each_use_the_copys_current_volume():
    copy = position(volume=D("2"))
    steps = [
        # (master closes, master keeps, copy closes, note)
        ("0.3", "0.7", D("0.60"), "closing 0.6 of 2 lots, as the master closed 0.3 of 1"),
        ("0.2", "0.5", D("0.40"), "closing 0.4 of 1.4 lots, as the master closed 0.2 of 0.7"),
        ("0.25", "0.25", D("0.50"), "closing 0.5 of 1 lots, as the master closed 0.25 of 0.5"),
    ]
    for seq, (closed, remaining, volume, note) in enumerate(steps, start=2):
        order = plan(
            partial(closed, remaining, seq=seq), CopyRules(), FollowerState(copy=copy), XAU
        )
        assert isinstance(order, FollowerOrder)
        assert (order.action, order.volume, order.note) == (OrderAction.REDUCE, volume, note)
        copy = dataclasses.replace(copy, volume=copy.volume - order.volume)
    assert copy.volume == D("0.50")
    last = plan(partial("0.25", "0", seq=5), CopyRules(), FollowerState(copy=copy), XAU)
    assert last == FollowerOrder(
        OrderAction.CLOSE, "XAUUSD", Side.SELL, D("0.50"), D("2360.00"), ref="P9"
    )


def test_a_partial_close_of_a_reversed_copy_buys_back():
    copy = position(side=Side.SELL)
    order = plan(partial("0.5", "0.5"), CopyRules(reverse=True), FollowerState(copy=copy), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.action, order.side, order.volume) == (OrderAction.REDUCE, Side.BUY, D("1.00"))


def test_a_partial_close_rounds_to_the_nearest_step():
    # 0.25 x 0.7 = 0.175: the nearest step, to even, is 0.18.
    copy = position(volume=D("0.25"))
    order = plan(partial("0.7", "0.3"), CopyRules(), FollowerState(copy=copy), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.action, order.volume) == (OrderAction.REDUCE, D("0.18"))


def test_a_partial_close_leaving_less_than_the_minimum_closes_the_copy_in_full():
    # 0.25 x 0.7 = 0.175, rounded to 0.18, would leave 0.07 under BTCUSD's 0.10.
    copy = position(symbol="BTCUSD", volume=D("0.25"))
    order = plan(partial("0.7", "0.3"), CopyRules(), FollowerState(copy=copy), BTC)
    assert order == FollowerOrder(
        OrderAction.CLOSE,
        "BTCUSD",
        Side.SELL,
        D("0.25"),
        D("2360.00"),
        ref="P9",
        note="closed in full: 0.07 lots would stay open, under BTCUSD's minimum of 0.1",
    )


def test_a_partial_close_rounding_up_to_the_whole_copy_closes_it_without_a_note():
    # 0.01 x 0.9 = 0.009 rounds to the copy's whole 0.01.
    copy = position(volume=D("0.01"))
    order = plan(partial("0.9", "0.1"), CopyRules(), FollowerState(copy=copy), XAU)
    assert order == FollowerOrder(
        OrderAction.CLOSE, "XAUUSD", Side.SELL, D("0.01"), D("2360.00"), ref="P9"
    )


def test_a_partial_close_too_small_to_copy_is_skipped():
    copy = position(volume=D("0.01"))
    result = plan(partial("0.1", "0.9"), CopyRules(), FollowerState(copy=copy), XAU)
    assert result == Skip(
        "0.001 lots to close is under XAUUSD's minimum of 0.01; the copy stays at 0.01 lots"
    )


def test_a_partial_close_leaving_nothing_closes_the_copy():
    order = plan(partial("1", "0"), CopyRules(), FollowerState(copy=position()), XAU)
    assert order == FollowerOrder(
        OrderAction.CLOSE, "XAUUSD", Side.SELL, D("2"), D("2360.00"), ref="P9"
    )


def test_a_partial_close_without_the_remaining_volume_is_skipped():
    result = plan(partial("0.3", None), CopyRules(), FollowerState(copy=position()), XAU)
    assert result == Skip("the master's partial close did not say what volume remains")


def test_a_partial_close_without_a_copy_is_skipped():
    assert plan(partial("0.3", "0.7"), CopyRules(), FollowerState(), XAU) == Skip(
        "no copied position to reduce"
    )


def test_a_partial_close_of_an_untradable_symbol_is_skipped():
    assert plan(partial("0.3", "0.7"), CopyRules(), FollowerState(copy=position()), None) == Skip(
        "XAUUSD is not tradable on the follower account"
    )


# -- position closed -----------------------------------------------------------------


def test_a_close_closes_the_whole_copy():
    closed = event(EventKind.POSITION_CLOSED, price=D("2360.00"))
    order = plan(closed, CopyRules(), FollowerState(copy=position(volume=D("0.75"))), XAU)
    assert order == FollowerOrder(
        OrderAction.CLOSE, "XAUUSD", Side.SELL, D("0.75"), D("2360.00"), ref="P9"
    )


def test_a_close_of_a_reversed_copy_buys_back():
    copy = position(side=Side.SELL)
    order = plan(
        event(EventKind.POSITION_CLOSED), CopyRules(reverse=True), FollowerState(copy=copy), XAU
    )
    assert isinstance(order, FollowerOrder)
    assert (order.action, order.side) == (OrderAction.CLOSE, Side.BUY)


def test_a_close_needs_no_instrument():
    order = plan(
        event(EventKind.POSITION_CLOSED), CopyRules(), FollowerState(copy=position()), None
    )
    assert isinstance(order, FollowerOrder)
    assert order.action is OrderAction.CLOSE


def test_a_close_without_a_copy_is_skipped():
    assert plan(event(EventKind.POSITION_CLOSED), CopyRules(), FollowerState(), XAU) == Skip(
        "no copied position to close: the master's open was not copied"
    )


@pytest.mark.parametrize(
    "kind",
    [
        EventKind.POSITION_CLOSED,
        EventKind.POSITION_PARTIALLY_CLOSED,
        EventKind.POSITION_MODIFIED,
        EventKind.ORDER_MODIFIED,
        EventKind.ORDER_CANCELLED,
    ],
)
def test_nothing_is_done_to_a_copy_already_closed(kind):
    copy = position(closed=True)
    result = plan(
        event(kind, remaining_volume=D("0.5"), sl=D("2300")),
        CopyRules(),
        FollowerState(copy=copy),
        XAU,
    )
    assert result == Skip("the follower's copy is already closed")


# -- pending order placed ------------------------------------------------------------


def test_a_pending_order_is_placed_as_a_pending_copy():
    placed = event(
        EventKind.ORDER_PLACED,
        master_ref="O3",
        order_type=OrderType.STOP,
        price=D("2400.00"),
        sl=D("2390.00"),
        tp=D("2450.00"),
        volume=D("0.5"),
    )
    order = plan(placed, CopyRules(), FollowerState(), XAU)
    assert order == FollowerOrder(
        OrderAction.PLACE_PENDING,
        "XAUUSD",
        Side.BUY,
        D("0.50"),
        D("2400.00"),
        order_type=OrderType.STOP,
        sl=D("2390.00"),
        tp=D("2450.00"),
        link_ref="O3",
    )


def test_pending_orders_are_not_placed_when_copy_pending_is_off():
    placed = event(EventKind.ORDER_PLACED, order_type=OrderType.LIMIT)
    assert plan(placed, CopyRules(copy_pending=False), FollowerState(), XAU) == Skip(
        "pending orders are not copied on this link"
    )


# -- pending order modified ----------------------------------------------------------


def test_a_pending_order_modification_moves_the_copys_price_and_stops():
    moved = event(
        EventKind.ORDER_MODIFIED,
        order_type=OrderType.LIMIT,
        price=D("2295.004"),
        sl=D("2285.00"),
        tp=D("2320.00"),
    )
    order = plan(moved, CopyRules(), FollowerState(copy=pending()), XAU)
    assert order == FollowerOrder(
        OrderAction.MODIFY_PENDING,
        "XAUUSD",
        Side.BUY,
        D("0.5"),
        D("2295.00"),
        order_type=OrderType.LIMIT,
        sl=D("2285.00"),
        tp=D("2320.00"),
        ref="O4",
    )


def test_a_pending_order_modification_of_the_price_alone_is_copied():
    moved = event(
        EventKind.ORDER_MODIFIED,
        order_type=OrderType.LIMIT,
        price=D("2295.00"),
        sl=D("2290.00"),
        tp=D("2320.00"),
    )
    order = plan(moved, CopyRules(), FollowerState(copy=pending()), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.action, order.reference_price) == (OrderAction.MODIFY_PENDING, D("2295.00"))


def test_a_pending_order_modification_that_changes_nothing_is_skipped():
    same = event(
        EventKind.ORDER_MODIFIED,
        order_type=OrderType.LIMIT,
        price=D("2300.001"),
        sl=D("2290.00"),
        tp=D("2320.00"),
    )
    assert plan(same, CopyRules(), FollowerState(copy=pending()), XAU) == Skip(
        "nothing to change: the copy already has these levels"
    )


def test_a_pending_order_modification_without_a_copy_is_skipped():
    moved = event(EventKind.ORDER_MODIFIED, order_type=OrderType.LIMIT)
    assert plan(moved, CopyRules(), FollowerState(), XAU) == Skip(
        "no copied pending order to modify"
    )


# -- pending order cancelled ---------------------------------------------------------


def test_a_cancelled_pending_order_cancels_the_copy():
    cancelled = event(EventKind.ORDER_CANCELLED, order_type=OrderType.LIMIT, price=D("2300.00"))
    order = plan(cancelled, CopyRules(), FollowerState(copy=pending()), XAU)
    assert order == FollowerOrder(
        OrderAction.CANCEL_PENDING,
        "XAUUSD",
        Side.BUY,
        D("0.5"),
        D("2300.00"),
        order_type=OrderType.LIMIT,
        ref="O4",
    )


def test_a_cancellation_without_a_copy_is_skipped():
    cancelled = event(EventKind.ORDER_CANCELLED, order_type=OrderType.LIMIT)
    assert plan(cancelled, CopyRules(), FollowerState(), XAU) == Skip(
        "no copied pending order to cancel"
    )


# -- pending order filled ------------------------------------------------------------


def filled(**changes: object) -> MasterEvent:
    return event(
        EventKind.ORDER_FILLED,
        master_ref="O3",
        order_type=OrderType.LIMIT,
        price=D("2299.50"),
        position_ref="P12",
        sl=D("2280.00"),
        tp=D("2330.00"),
        **changes,
    )


def test_a_fill_fills_the_linked_pending_copy_and_links_it_to_the_new_position():
    order = plan(filled(), CopyRules(), FollowerState(copy=pending()), XAU)
    assert order == FollowerOrder(
        OrderAction.FILL_PENDING,
        "XAUUSD",
        Side.BUY,
        D("0.5"),
        D("2299.50"),
        order_type=OrderType.LIMIT,
        sl=D("2290.00"),
        tp=D("2320.00"),
        ref="O4",
        link_ref="P12",
    )


def test_a_fill_without_a_pending_copy_opens_a_market_copy_of_the_new_position():
    order = plan(filled(), CopyRules(sizing_value=D("2")), FollowerState(), XAU)
    assert order == FollowerOrder(
        OrderAction.OPEN,
        "XAUUSD",
        Side.BUY,
        D("2.00"),
        D("2299.50"),
        order_type=OrderType.MARKET,
        sl=D("2280.00"),
        tp=D("2330.00"),
        link_ref="P12",
    )


def test_a_fill_is_copied_at_market_when_copy_pending_is_off():
    order = plan(filled(), CopyRules(copy_pending=False), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.action, order.order_type, order.volume, order.link_ref) == (
        OrderAction.OPEN,
        OrderType.MARKET,
        D("1.00"),
        "P12",
    )


def test_a_reversed_fill_without_a_pending_copy_opens_the_other_way_at_market():
    order = plan(filled(), CopyRules(reverse=True), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.action, order.side, order.order_type, order.sl, order.tp) == (
        OrderAction.OPEN,
        Side.SELL,
        OrderType.MARKET,
        D("2330.00"),
        D("2280.00"),
    )


def test_a_fill_without_a_pending_copy_is_filtered_like_an_open():
    rules = CopyRules(symbols_denied=frozenset({"XAUUSD"}))
    assert plan(filled(), rules, FollowerState(), XAU) == Skip(
        "XAUUSD is in this link's denied symbols"
    )


def test_a_fill_never_fills_a_pending_copy_that_is_already_cancelled():
    result = plan(filled(), CopyRules(), FollowerState(copy=pending(closed=True)), XAU)
    assert not (isinstance(result, FollowerOrder) and result.action is OrderAction.FILL_PENDING)


def test_a_fill_for_a_master_ref_whose_copy_is_already_a_position_opens_nothing():
    # For example a second (partial) fill of the same master order, or a venue
    # whose position keeps the order's ticket: the follower already holds the copy.
    already = position(ref="P9", volume=D("1"))
    result = plan(filled(seq=9), CopyRules(), FollowerState(copy=already), XAU)
    assert result == Skip("the follower already holds the copy of this master position")


def test_a_fill_of_an_order_whose_pending_copy_the_copier_cancelled_opens_nothing():
    cancelled = pending(closed=True)
    result = plan(filled(), CopyRules(), FollowerState(copy=cancelled), XAU)
    assert result == Skip("this master position was already copied and closed")


# -- the wire ------------------------------------------------------------------------


FULL = MasterEvent(
    source="acct:12",
    seq=42,
    kind=EventKind.ORDER_FILLED,
    master_ref="O3",
    symbol="XAUUSD",
    side=Side.SELL,
    volume=D("0.10"),
    price=D("2350.10"),
    ts_event_ms=1_700_000_000_123,
    order_type=OrderType.STOP,
    sl=D("2360.00"),
    tp=D("2300.50"),
    remaining_volume=D("0.05"),
    position_ref="P12",
    master_balance=D("10000.00"),
    master_equity=D("9876.54"),
)


def test_an_event_without_optional_fields_survives_the_wire():
    e = event(EventKind.POSITION_OPENED, volume=D("0.10"))
    assert MasterEvent.from_wire(e.to_wire()) == e


def test_an_event_with_every_optional_field_survives_the_wire():
    back = MasterEvent.from_wire(FULL.to_wire())
    assert back == FULL
    assert str(back.volume) == "0.10"  # the exponent is kept, not only the value


def test_the_wire_is_flat_strings():
    assert FULL.to_wire() == {
        "v": "1",
        "source": "acct:12",
        "seq": "42",
        "kind": "order_filled",
        "master_ref": "O3",
        "symbol": "XAUUSD",
        "side": "sell",
        "volume": "0.10",
        "price": "2350.10",
        "ts_event_ms": "1700000000123",
        "order_type": "stop",
        "sl": "2360.00",
        "tp": "2300.50",
        "remaining_volume": "0.05",
        "master_balance": "10000.00",
        "master_equity": "9876.54",
        "position_ref": "P12",
    }


def test_the_wire_leaves_out_missing_optional_fields():
    wire = event(EventKind.POSITION_OPENED).to_wire()
    assert set(wire) == {
        "v",
        "source",
        "seq",
        "kind",
        "master_ref",
        "symbol",
        "side",
        "volume",
        "price",
        "ts_event_ms",
        "order_type",
    }


def test_a_wire_message_without_an_order_type_is_a_market_event():
    wire = event(EventKind.POSITION_OPENED).to_wire()
    del wire["order_type"]
    assert MasterEvent.from_wire(wire).order_type is OrderType.MARKET


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_event_kind_survives_the_wire(kind):
    e = dataclasses.replace(FULL, kind=kind)
    assert MasterEvent.from_wire(e.to_wire()) == e


def test_an_unknown_version_is_refused_with_its_number():
    with pytest.raises(EventFormatError) as refused:
        MasterEvent.from_wire({**FULL.to_wire(), "v": "2"})
    assert str(refused.value) == "unsupported event version '2'"
    with pytest.raises(EventFormatError) as refused:
        MasterEvent.from_wire({})
    assert str(refused.value) == "unsupported event version None"


def wire_with(**changes: str) -> dict[str, str]:
    return {**FULL.to_wire(), **changes}


def wire_without(name: str) -> dict[str, str]:
    wire = FULL.to_wire()
    del wire[name]
    return wire


@pytest.mark.parametrize(
    "broken",
    [
        wire_without("source"),
        wire_without("seq"),
        wire_without("kind"),
        wire_without("master_ref"),
        wire_without("symbol"),
        wire_without("side"),
        wire_without("volume"),
        wire_without("price"),
        wire_without("ts_event_ms"),
        wire_with(seq="one"),
        wire_with(seq="1.5"),
        wire_with(kind="exploded"),
        wire_with(side="long"),
        wire_with(volume="lots"),
        wire_with(price=""),
        wire_with(ts_event_ms="yesterday"),
        wire_with(order_type="iceberg"),
        wire_with(sl="tight"),
        wire_with(tp="1,5"),
        wire_with(remaining_volume="half"),
        wire_with(master_balance="rich"),
        wire_with(master_equity="n/a"),
    ],
)
def test_bad_wire_messages_are_refused(broken):
    with pytest.raises(EventFormatError) as refused:
        MasterEvent.from_wire(broken)
    assert str(refused.value).startswith("bad master event: ")


@pytest.mark.parametrize(
    "broken",
    [
        wire_with(volume="NaN"),
        wire_with(volume="Infinity"),
        wire_with(price="NaN"),
        wire_with(price="-Infinity"),
    ],
)
def test_non_finite_numbers_on_the_wire_are_refused(broken):
    with pytest.raises(EventFormatError):
        MasterEvent.from_wire(broken)


# -- the small vocabulary ------------------------------------------------------------


def test_sides_know_their_opposite_and_sign():
    assert (Side.BUY.opposite, Side.SELL.opposite) == (Side.SELL, Side.BUY)
    assert (Side.BUY.sign, Side.SELL.sign) == (1, -1)


def test_event_kinds_know_whether_they_are_about_orders():
    orders = {kind for kind in EventKind if kind.is_order}
    assert orders == {
        EventKind.ORDER_PLACED,
        EventKind.ORDER_MODIFIED,
        EventKind.ORDER_CANCELLED,
        EventKind.ORDER_FILLED,
    }


def test_only_open_and_place_pending_open_something():
    assert {action for action in OrderAction if action.opens} == {
        OrderAction.OPEN,
        OrderAction.PLACE_PENDING,
    }


def test_a_fill_withdraws_the_pending_copy_while_opening_is_stopped():
    state = FollowerState(
        copy=pending(),
        risk_mode=RiskMode.STOP_OPENING,
        risk_reason="today's loss reached the limit",
    )
    result = plan(filled(), CopyRules(), state, XAU)
    assert isinstance(result, FollowerOrder)
    assert result.action is OrderAction.CANCEL_PENDING
    assert result.note == "new positions are stopped by a risk stop: today's loss reached the limit"
    closing = plan(filled(), CopyRules(close_only=True), FollowerState(copy=pending()), XAU)
    assert isinstance(closing, FollowerOrder) and closing.action is OrderAction.CANCEL_PENDING


def test_a_fill_copied_at_market_is_checked_for_price_deviation():
    rules = CopyRules(copy_pending=False, max_price_deviation=D("10"))
    far = plan(filled(), rules, FollowerState(quote=filled().price + D("1")), XAU)
    assert isinstance(far, Skip) and "points from the master's" in far.reason
    near = plan(filled(), rules, FollowerState(quote=filled().price), XAU)
    assert isinstance(near, FollowerOrder) and near.action is OrderAction.OPEN
