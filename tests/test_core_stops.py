"""Stop loss, take profit and direction of a copy: reverse, fixed distances, offsets."""

import dataclasses
from decimal import Decimal as D

import pytest

from copier.core import (
    CopyRules,
    CopyState,
    EventKind,
    FollowerOrder,
    FollowerState,
    MasterEvent,
    OrderAction,
    OrderType,
    Side,
    Skip,
    plan,
)
from copier.core.sizing import stops
from tests.core_values import XAU, master_event


def event(**changes: object) -> MasterEvent:
    """A master buy at 2350.10 with its SL 10.00 below and its TP 20.00 above."""
    return master_event(**{"sl": D("2340.10"), "tp": D("2370.10"), **changes})


def opened(rules: CopyRules, **changes: object) -> FollowerOrder:
    order = plan(event(**changes), rules, FollowerState(), XAU)
    assert isinstance(order, FollowerOrder), order
    assert order.action is OrderAction.OPEN
    return order


def copy_of_buy(**changes: object) -> CopyState:
    """The follower's copy of the master's buy, as it was opened."""
    copy = CopyState(
        "P9", "XAUUSD", Side.BUY, D("1"), price=D("2350.20"), sl=D("2340.10"), tp=D("2370.10")
    )
    return dataclasses.replace(copy, **changes)


def modified(rules: CopyRules, copy: CopyState, **changes: object) -> FollowerOrder | Skip:
    return plan(
        event(kind=EventKind.POSITION_MODIFIED, seq=2, **changes),
        rules,
        FollowerState(copy=copy),
        XAU,
    )


# -- copying the master's levels -----------------------------------------------------


def test_it_copies_the_masters_stop_loss_and_take_profit():
    order = opened(CopyRules())
    assert (order.side, order.sl, order.tp) == (Side.BUY, D("2340.10"), D("2370.10"))


def test_it_opens_without_stops_when_the_master_has_none():
    order = opened(CopyRules(), sl=None, tp=None)
    assert (order.sl, order.tp) == (None, None)


def test_it_rounds_the_masters_levels_to_the_followers_price_digits():
    order = opened(CopyRules(), sl=D("2340.107"), tp=D("2370.1049"))
    assert (order.sl, order.tp) == (D("2340.11"), D("2370.10"))


def test_it_leaves_out_the_stop_loss_when_told_not_to_copy_it():
    order = opened(CopyRules(copy_sl=False))
    assert (order.sl, order.tp) == (None, D("2370.10"))


def test_it_leaves_out_the_take_profit_when_told_not_to_copy_it():
    order = opened(CopyRules(copy_tp=False))
    assert (order.sl, order.tp) == (D("2340.10"), None)


# -- reverse copying -----------------------------------------------------------------


def test_a_reversed_copy_sells_when_the_master_buys():
    order = opened(CopyRules(reverse=True))
    assert (order.side, order.order_type) == (Side.SELL, OrderType.MARKET)


def test_a_reversed_copy_buys_when_the_master_sells():
    order = opened(CopyRules(reverse=True), side=Side.SELL, sl=D("2360.10"), tp=D("2330.10"))
    assert (order.side, order.sl, order.tp) == (Side.BUY, D("2330.10"), D("2360.10"))


def test_a_reversed_copy_swaps_stop_loss_and_take_profit():
    # The master's take profit above is where the reversed sell loses.
    order = opened(CopyRules(reverse=True))
    assert (order.sl, order.tp) == (D("2370.10"), D("2340.10"))


def test_copy_sl_off_applies_to_the_reversed_copys_own_stop_loss():
    order = opened(CopyRules(reverse=True, copy_sl=False))
    assert (order.sl, order.tp) == (None, D("2340.10"))


@pytest.mark.parametrize(
    ("master_type", "copy_type"),
    [(OrderType.LIMIT, OrderType.STOP), (OrderType.STOP, OrderType.LIMIT)],
)
def test_a_reversed_pending_order_swaps_limit_and_stop(master_type, copy_type):
    placed = event(kind=EventKind.ORDER_PLACED, order_type=master_type, price=D("2300.00"))
    order = plan(placed, CopyRules(reverse=True), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.action, order.side, order.order_type, order.reference_price) == (
        OrderAction.PLACE_PENDING,
        Side.SELL,
        copy_type,
        D("2300.00"),
    )
    assert (order.sl, order.tp) == (D("2370.10"), D("2340.10"))


@pytest.mark.parametrize("order_type", [OrderType.LIMIT, OrderType.STOP])
def test_a_pending_order_keeps_its_type_when_not_reversed(order_type):
    placed = event(kind=EventKind.ORDER_PLACED, order_type=order_type)
    order = plan(placed, CopyRules(), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.side, order.order_type) == (Side.BUY, order_type)


# -- fixed distances -----------------------------------------------------------------


def test_a_fixed_stop_loss_replaces_the_masters():
    # 500 points of 0.01 = 5.00 under the 2350.10 entry.
    order = opened(CopyRules(fixed_sl_points=D("500")))
    assert (order.sl, order.tp) == (D("2345.10"), D("2370.10"))


def test_a_fixed_take_profit_replaces_the_masters():
    order = opened(CopyRules(fixed_tp_points=D("1000")))
    assert (order.sl, order.tp) == (D("2340.10"), D("2360.10"))


def test_fixed_distances_are_set_when_the_master_has_no_stops():
    order = opened(CopyRules(fixed_sl_points=D("500"), fixed_tp_points=D("1000")), sl=None, tp=None)
    assert (order.sl, order.tp) == (D("2345.10"), D("2360.10"))


def test_fixed_distances_sit_on_the_right_side_of_a_sell():
    rules = CopyRules(fixed_sl_points=D("500"), fixed_tp_points=D("1000"))
    order = opened(rules, side=Side.SELL, sl=None, tp=None)
    assert (order.sl, order.tp) == (D("2355.10"), D("2340.10"))


def test_fixed_distances_follow_the_reversed_side():
    rules = CopyRules(reverse=True, fixed_sl_points=D("500"), fixed_tp_points=D("1000"))
    order = opened(rules)
    assert (order.side, order.sl, order.tp) == (Side.SELL, D("2355.10"), D("2340.10"))


def test_fixed_distances_are_measured_from_a_pending_orders_price():
    rules = CopyRules(fixed_sl_points=D("500"), fixed_tp_points=D("1000"))
    placed = event(kind=EventKind.ORDER_PLACED, order_type=OrderType.LIMIT, price=D("2300.00"))
    order = plan(placed, rules, FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.sl, order.tp) == (D("2295.00"), D("2310.00"))


# -- offsets -------------------------------------------------------------------------


def test_offsets_move_the_stops_away_from_a_buys_entry():
    order = opened(CopyRules(sl_offset_points=D("50"), tp_offset_points=D("30")))
    assert (order.sl, order.tp) == (D("2339.60"), D("2370.40"))


def test_offsets_move_the_stops_away_from_a_sells_entry():
    rules = CopyRules(sl_offset_points=D("50"), tp_offset_points=D("30"))
    order = opened(rules, side=Side.SELL, sl=D("2360.10"), tp=D("2330.10"))
    assert (order.sl, order.tp) == (D("2360.60"), D("2329.80"))


def test_negative_offsets_move_the_stops_closer():
    order = opened(CopyRules(sl_offset_points=D("-50"), tp_offset_points=D("-30")))
    assert (order.sl, order.tp) == (D("2340.60"), D("2369.80"))


def test_offsets_add_no_stop_where_there_is_none():
    order = opened(CopyRules(sl_offset_points=D("50"), tp_offset_points=D("30")), sl=None, tp=None)
    assert (order.sl, order.tp) == (None, None)


def test_offsets_apply_on_top_of_fixed_distances():
    order = opened(CopyRules(fixed_sl_points=D("500"), sl_offset_points=D("50")))
    assert order.sl == D("2344.60")


def test_stops_directly():
    rules = CopyRules(reverse=True, sl_offset_points=D("10"))
    assert stops(event(), rules, Side.SELL, D("2350.10"), XAU) == (D("2370.20"), D("2340.10"))


# -- modifications -------------------------------------------------------------------


def test_a_master_modification_moves_the_copys_stops():
    order = modified(CopyRules(), copy_of_buy(), sl=D("2345.10"), tp=D("2380.00"))
    assert order == FollowerOrder(
        OrderAction.MODIFY,
        "XAUUSD",
        Side.BUY,
        D("1"),
        D("2350.20"),
        sl=D("2345.10"),
        tp=D("2380.00"),
        ref="P9",
    )


def test_a_modification_removing_the_masters_stops_removes_the_copys():
    order = modified(CopyRules(), copy_of_buy(), sl=None, tp=None)
    assert isinstance(order, FollowerOrder)
    assert (order.action, order.sl, order.tp) == (OrderAction.MODIFY, None, None)


def test_a_modification_that_changes_nothing_is_skipped():
    result = modified(CopyRules(), copy_of_buy())
    assert result == Skip("nothing to change: the copy already has these levels")


def test_a_modification_of_a_reversed_copy_moves_the_swapped_level():
    # The reversed sell's SL is the master's TP: the master moving its SL moves the copy's TP.
    copy = copy_of_buy(side=Side.SELL, sl=D("2370.10"), tp=D("2340.10"))
    order = modified(CopyRules(reverse=True), copy, sl=D("2345.10"))
    assert isinstance(order, FollowerOrder)
    assert (order.side, order.sl, order.tp) == (Side.SELL, D("2370.10"), D("2345.10"))


def test_a_modification_keeps_the_offsets():
    rules = CopyRules(sl_offset_points=D("50"))
    copy = copy_of_buy(sl=D("2339.60"))
    order = modified(rules, copy, sl=D("2345.10"))
    assert isinstance(order, FollowerOrder)
    assert (order.sl, order.tp) == (D("2344.60"), D("2370.10"))
    assert modified(rules, copy) == Skip("nothing to change: the copy already has these levels")


def test_a_modification_does_not_copy_a_stop_loss_that_is_not_copied():
    copy = copy_of_buy(sl=None)
    assert modified(CopyRules(copy_sl=False), copy, sl=D("2345.10")) == Skip(
        "nothing to change: the copy already has these levels"
    )


def test_a_master_modification_does_not_move_a_fixed_stop_loss():
    rules = CopyRules(fixed_sl_points=D("500"))
    # The open sets the SL 5.00 under the master's 2350.10; the copy fills at 2350.20.
    order = opened(rules)
    assert order.sl == D("2345.10")
    copy = copy_of_buy(price=D("2350.20"), sl=order.sl, tp=order.tp)
    moved = modified(rules, copy, sl=D("2348.00"), tp=D("2380.00"))
    assert isinstance(moved, FollowerOrder)
    assert (moved.sl, moved.tp) == (D("2345.10"), D("2380.00"))


def test_a_master_modification_does_not_move_a_fixed_take_profit():
    rules = CopyRules(fixed_tp_points=D("1000"))
    copy = copy_of_buy(price=D("2350.20"), tp=D("2360.10"))
    moved = modified(rules, copy, sl=D("2345.10"), tp=D("2400.00"))
    assert isinstance(moved, FollowerOrder)
    assert (moved.sl, moved.tp) == (D("2345.10"), D("2360.10"))


def test_a_master_modification_leaves_fixed_stops_alone_entirely():
    rules = CopyRules(fixed_sl_points=D("500"), fixed_tp_points=D("1000"))
    copy = copy_of_buy(price=D("2350.20"), sl=D("2345.10"), tp=D("2360.10"))
    assert modified(rules, copy, sl=D("2348.00"), tp=D("2400.00")) == Skip(
        "nothing to change: the copy already has these levels"
    )


def test_fixed_stops_of_a_pending_order_follow_its_new_price():
    rules = CopyRules(fixed_sl_points=D("500"), fixed_tp_points=D("1000"))
    pending = CopyState(
        "O4",
        "XAUUSD",
        Side.BUY,
        D("1"),
        is_order=True,
        price=D("2300.00"),
        sl=D("2295.00"),
        tp=D("2310.00"),
        order_type=OrderType.LIMIT,
    )
    moved = event(kind=EventKind.ORDER_MODIFIED, order_type=OrderType.LIMIT, price=D("2290.00"))
    order = plan(moved, rules, FollowerState(copy=pending), XAU)
    assert order == FollowerOrder(
        OrderAction.MODIFY_PENDING,
        "XAUUSD",
        Side.BUY,
        D("1"),
        D("2290.00"),
        order_type=OrderType.LIMIT,
        sl=D("2285.00"),
        tp=D("2300.00"),
        ref="O4",
    )
