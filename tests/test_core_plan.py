"""The pure planner: values in, values out, no Django.

Sizing, filters, stops, event kinds and risk modes have files of their own;
this one covers what holds for every plan: the basic open, copies that exist
already, copies closed by hand, and client order ids.
"""

import dataclasses
import re
from decimal import Decimal as D
from hashlib import sha256

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
    RiskMode,
    Side,
    Skip,
    client_order_id,
    plan,
)
from copier.core.plan import HAND_CLOSED
from tests.core_values import XAU, master_event


def event(
    kind: EventKind = EventKind.POSITION_OPENED,
    volume: str = "1",
    seq: int = 1,
    side: Side = Side.BUY,
    **changes: object,
) -> MasterEvent:
    return master_event(kind=kind, volume=D(volume), seq=seq, side=side, **changes)


def held(volume: str = "1", **changes: object) -> FollowerState:
    copy = CopyState("P9", "XAUUSD", Side.BUY, D(volume), price=D("2350.20"))
    return FollowerState(copy=dataclasses.replace(copy, **changes))


# -- the basic open ------------------------------------------------------------------


def test_it_opens_a_multiple_of_the_master_volume():
    order = plan(event(volume="1.5"), CopyRules(sizing_value=D("2")), FollowerState(), XAU)
    assert order == FollowerOrder(
        OrderAction.OPEN, "XAUUSD", Side.BUY, D("3.00"), D("2350.10"), link_ref="P7"
    )


def test_it_keeps_the_side_and_reference_price():
    order = plan(event(side=Side.SELL), CopyRules(sizing_value=D("0.5")), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.side, order.volume, order.reference_price) == (Side.SELL, D("0.50"), D("2350.10"))


def test_it_links_the_copy_to_the_master_position_and_acts_on_no_follower_ref():
    order = plan(event(master_ref="P123"), CopyRules(), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.link_ref, order.ref) == ("P123", None)


def test_it_opens_at_market_whatever_the_masters_order_type_said():
    order = plan(event(order_type=OrderType.LIMIT), CopyRules(), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.order_type is OrderType.MARKET


def test_it_skips_a_symbol_the_follower_cannot_trade():
    assert plan(event(), CopyRules(), FollowerState(), None) == Skip(
        "XAUUSD is not tradable on the follower account"
    )


def test_it_skips_a_non_positive_multiplier():
    assert plan(event(), CopyRules(sizing_value=D("0")), FollowerState(), XAU) == Skip(
        "the sizing value 0 is not greater than 0"
    )


def test_planning_is_repeatable():
    rules, follower = CopyRules(sizing_value=D("0.333")), FollowerState(balance=D("1000"))
    assert plan(event(), rules, follower, XAU) == plan(event(), rules, follower, XAU)


# -- copies that exist already -------------------------------------------------------


def test_it_never_opens_a_second_copy_of_one_master_position():
    assert plan(event(), CopyRules(), held(), XAU) == Skip(
        "the follower already holds the copy of this master position"
    )


def test_it_never_reopens_a_copy_it_closed():
    assert plan(event(), CopyRules(), held(closed=True), XAU) == Skip(
        "this master position was already copied and closed"
    )


def test_it_never_places_a_second_copy_of_one_pending_order():
    placed = event(EventKind.ORDER_PLACED, order_type=OrderType.LIMIT)
    pending = held(is_order=True, order_type=OrderType.LIMIT, ref="O4")
    assert plan(placed, CopyRules(), pending, XAU) == Skip(
        "the follower already holds the copy of this master position"
    )
    cancelled = held(is_order=True, order_type=OrderType.LIMIT, ref="O4", closed=True)
    assert plan(placed, CopyRules(), cancelled, XAU) == Skip(
        "this master position was already copied and closed"
    )


def test_a_duplicate_is_recognised_before_the_filters():
    # A denied symbol would give another reason: the copy that exists comes first.
    rules = CopyRules(symbols_denied=frozenset({"XAUUSD"}))
    assert plan(event(), rules, held(), XAU) == Skip(
        "the follower already holds the copy of this master position"
    )


# -- copies closed by hand -----------------------------------------------------------


def test_the_hand_closed_reason_reads_well():
    assert HAND_CLOSED == (
        "the follower closed this copy by hand; later master events leave it alone"
    )


@pytest.mark.parametrize("kind", list(EventKind))
@pytest.mark.parametrize("is_order", [False, True])
def test_a_copy_closed_by_hand_is_never_touched_again(kind, is_order):
    follower = held(closed_by_hand=True, is_order=is_order)
    changes = {"remaining_volume": D("0.5"), "sl": D("2300.00"), "position_ref": "P12"}
    assert plan(event(kind, **changes), CopyRules(), follower, XAU) == Skip(HAND_CLOSED)


def test_a_copy_closed_by_hand_is_left_alone_even_when_paused_or_closed():
    follower = dataclasses.replace(
        held(closed_by_hand=True, closed=True), risk_mode=RiskMode.PAUSED, risk_reason="x"
    )
    assert plan(event(EventKind.POSITION_CLOSED), CopyRules(), follower, XAU) == Skip(HAND_CLOSED)


def test_a_copy_closed_by_hand_is_not_resized_by_a_partial_close():
    partial = event(EventKind.POSITION_PARTIALLY_CLOSED, volume="0.5", remaining_volume=D("0.5"))
    assert plan(partial, CopyRules(), held("2", closed_by_hand=True), XAU) == Skip(HAND_CLOSED)


# -- client order ids ----------------------------------------------------------------


def test_client_order_ids_are_deterministic():
    assert client_order_id(3, "P7", 1) == client_order_id(3, "P7", 1)


def test_client_order_ids_hash_link_master_ref_and_seq():
    # Pinned: venues recognise a resent order by this id, so it must not change
    # between releases while orders are in flight.
    expected = "TS" + sha256(b"3|P7|1").hexdigest()[:24].upper()
    assert client_order_id(3, "P7", 1) == expected


def test_client_order_ids_differ_in_each_part():
    ids = {
        client_order_id(3, "P7", 1),
        client_order_id(4, "P7", 1),
        client_order_id(3, "P8", 1),
        client_order_id(3, "P7", 2),
        client_order_id(31, "P7", 1),
        client_order_id(3, "1P7", 1),
    }
    assert len(ids) == 6


def test_client_order_ids_do_not_collide_over_many_events():
    ids = {
        client_order_id(link, f"P{ref}", seq)
        for link in range(5)
        for ref in range(20)
        for seq in range(20)
    }
    assert len(ids) == 5 * 20 * 20


@pytest.mark.parametrize(("link", "ref", "seq"), [(1, "P1", 1), (999999, "x" * 200, 10**12)])
def test_client_order_ids_fit_every_venue(link, ref, seq):
    coid = client_order_id(link, ref, seq)
    assert re.fullmatch(r"TS[0-9A-F]{24}", coid), coid
