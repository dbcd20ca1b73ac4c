"""The pure planner: values in, values out, no Django."""

from decimal import Decimal as D

import pytest

from copier.core import (
    CopyRules,
    EventKind,
    FollowerOrder,
    FollowerPosition,
    FollowerState,
    Instrument,
    MasterEvent,
    OrderAction,
    Side,
    Skip,
    client_order_id,
    plan,
)
from copier.core.events import EventFormatError

XAU = Instrument("XAUUSD", D("0.01"), D("0.01"), D("50"), D("100"), 2)


def event(
    kind: EventKind = EventKind.POSITION_OPENED,
    volume: str = "1",
    seq: int = 1,
    side: Side = Side.BUY,
) -> MasterEvent:
    return MasterEvent(
        source="acct:1",
        seq=seq,
        kind=kind,
        master_ref="P7",
        symbol="XAUUSD",
        side=side,
        volume=D(volume),
        price=D("2350.10"),
        ts_event_ms=1_700_000_000_000,
    )


def test_it_multiplies_the_master_volume():
    order = plan(event(volume="1.5"), CopyRules(D("2")), FollowerState(), XAU)
    assert order == FollowerOrder(OrderAction.OPEN, "XAUUSD", Side.BUY, D("3.00"), D("2350.10"))


def test_it_keeps_the_side_and_reference_price():
    order = plan(event(side=Side.SELL), CopyRules(D("0.5")), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.side, order.volume, order.reference_price) == (Side.SELL, D("0.50"), D("2350.10"))


def test_it_rounds_down_to_the_volume_step_and_says_so():
    order = plan(event(volume="1"), CopyRules(D("0.333")), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.volume == D("0.33")
    assert order.note == "rounded from 0.333 to 0.33 lots (step 0.01)"


def test_it_skips_below_the_minimum_with_a_readable_reason():
    result = plan(event(volume="0.01"), CopyRules(D("0.4")), FollowerState(), XAU)
    assert result == Skip("0.004 lots is under XAUUSD's minimum of 0.01")


def test_it_clamps_to_the_maximum():
    order = plan(event(volume="40"), CopyRules(D("2")), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.volume == D("50")
    assert "maximum of 50" in order.note


def test_it_skips_a_symbol_the_follower_cannot_trade():
    assert plan(event(), CopyRules(D("1")), FollowerState(), None) == Skip(
        "XAUUSD is not tradable on the follower account"
    )


def test_it_skips_a_non_positive_multiplier():
    result = plan(event(), CopyRules(D("0")), FollowerState(), XAU)
    assert isinstance(result, Skip)
    assert "not positive" in result.reason


def test_it_never_opens_a_second_copy_of_one_master_position():
    held = FollowerState(FollowerPosition("P9", "XAUUSD", Side.BUY, D("1")))
    assert isinstance(plan(event(), CopyRules(D("1")), held, XAU), Skip)
    closed = FollowerState(copy_closed=True)
    assert isinstance(plan(event(), CopyRules(D("1")), closed, XAU), Skip)


def test_it_closes_the_linked_follower_position_whole():
    held = FollowerState(FollowerPosition("P9", "XAUUSD", Side.BUY, D("0.75")))
    order = plan(event(EventKind.POSITION_CLOSED, seq=2), CopyRules(D("1")), held, XAU)
    assert order == FollowerOrder(
        OrderAction.CLOSE, "XAUUSD", Side.SELL, D("0.75"), D("2350.10"), position_ref="P9"
    )


def test_it_skips_a_close_with_nothing_to_close():
    result = plan(event(EventKind.POSITION_CLOSED), CopyRules(D("1")), FollowerState(), XAU)
    assert result == Skip("no copied position to close: the master's open was not copied")
    closed = plan(
        event(EventKind.POSITION_CLOSED), CopyRules(D("1")), FollowerState(copy_closed=True), XAU
    )
    assert closed == Skip("the follower's copy is already closed")


def test_client_order_ids_are_deterministic_and_distinct():
    a = client_order_id(3, "P7", 1)
    assert a == client_order_id(3, "P7", 1)
    assert (
        len(
            {
                a,
                client_order_id(4, "P7", 1),
                client_order_id(3, "P8", 1),
                client_order_id(3, "P7", 2),
            }
        )
        == 4
    )
    assert len(a) == 26 and a.isalnum() and a.startswith("TS")


def test_events_survive_the_wire():
    e = event(volume="0.10")
    assert MasterEvent.from_wire(e.to_wire()) == e


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"v": "2"},
        {**event().to_wire(), "volume": "lots"},
        {**event().to_wire(), "kind": "exploded"},
    ],
)
def test_bad_wire_messages_are_refused(broken):
    with pytest.raises(EventFormatError):
        MasterEvent.from_wire(broken)
