"""Follower risk stops: when they trip, and what a follower may still do afterwards."""

import dataclasses
from decimal import Decimal as D

import pytest

from copier.core import (
    CopyRules,
    CopyState,
    EventKind,
    FollowerOrder,
    FollowerState,
    LimitUnit,
    MasterEvent,
    OrderAction,
    OrderType,
    RiskAction,
    RiskBreach,
    RiskLimit,
    RiskMode,
    Side,
    Skip,
    check_risk,
    plan,
)
from copier.core.risk import MODE_AFTER
from tests.core_values import XAU

DAILY_500 = CopyRules(daily_loss_limit=RiskLimit(D("500")))
DAILY_5_PERCENT = CopyRules(daily_loss_limit=RiskLimit(D("5"), LimitUnit.PERCENT))
DRAWDOWN_1000 = CopyRules(max_drawdown=RiskLimit(D("1000")))
DRAWDOWN_20_PERCENT = CopyRules(max_drawdown=RiskLimit(D("20"), LimitUnit.PERCENT))


def risk(rules: CopyRules, equity: str, day_start: str = "10000", initial: str = "10000"):
    return check_risk(rules, D(equity), D(day_start), D(initial), currency="USD")


# -- limits --------------------------------------------------------------------------


def test_a_limit_in_the_account_currency_is_its_value():
    assert RiskLimit(D("500")).amount(D("123456")) == D("500")


def test_a_limit_in_percent_is_a_share_of_the_reference():
    assert RiskLimit(D("5"), LimitUnit.PERCENT).amount(D("10000")) == D("500")
    assert RiskLimit(D("2.5"), LimitUnit.PERCENT).amount(D("8000")) == D("200")


# -- check_risk ----------------------------------------------------------------------


def test_nothing_trips_without_limits():
    assert risk(CopyRules(), equity="1") is None


def test_the_daily_loss_limit_trips_when_reached():
    assert risk(DAILY_500, equity="9500") == RiskBreach(
        RiskAction.STOP_OPENING,
        RiskMode.STOP_OPENING,
        "today's loss of 500 USD reached the daily limit of 500 USD",
    )


def test_the_daily_loss_limit_names_the_whole_loss_when_passed():
    breach = risk(DAILY_500, equity="9123.45")
    assert breach is not None
    assert breach.reason == "today's loss of 876.55 USD reached the daily limit of 500 USD"


def test_the_daily_loss_limit_does_not_trip_below_it():
    assert risk(DAILY_500, equity="9500.01") is None


def test_the_daily_loss_limit_does_not_trip_on_a_gain():
    assert risk(DAILY_500, equity="12000") is None


def test_the_daily_loss_is_counted_from_the_days_start_not_the_first_deposit():
    # Down 1500 since the first deposit, but only 300 today.
    assert risk(DAILY_500, equity="8500", day_start="8800") is None
    breach = risk(DAILY_500, equity="8300", day_start="8800")
    assert breach is not None
    assert breach.reason == "today's loss of 500 USD reached the daily limit of 500 USD"


def test_the_daily_loss_limit_in_percent_is_a_share_of_the_days_start():
    assert risk(DAILY_5_PERCENT, equity="9501") is None
    breach = risk(DAILY_5_PERCENT, equity="9400")
    assert breach is not None
    assert breach.reason == "today's loss of 600 USD reached the daily limit of 500 USD"


def test_a_percent_limit_is_shown_to_the_cent():
    # 5% of 10234.56 is 511.728.
    assert risk(DAILY_5_PERCENT, equity="9722.84", day_start="10234.56") is None
    breach = risk(DAILY_5_PERCENT, equity="9700", day_start="10234.56")
    assert breach is not None
    assert breach.reason == "today's loss of 534.56 USD reached the daily limit of 511.73 USD"


def test_the_drawdown_limit_trips_when_reached():
    assert risk(DRAWDOWN_1000, equity="9000") == RiskBreach(
        RiskAction.STOP_OPENING,
        RiskMode.STOP_OPENING,
        "the drawdown of 1000 USD reached the limit of 1000 USD",
    )
    assert risk(DRAWDOWN_1000, equity="9000.01") is None


def test_the_drawdown_is_counted_from_the_initial_balance():
    # Flat today, but 1200 under the first deposit.
    breach = risk(DRAWDOWN_1000, equity="8800", day_start="8800")
    assert breach is not None
    assert breach.reason == "the drawdown of 1200 USD reached the limit of 1000 USD"


def test_the_drawdown_limit_in_percent_is_a_share_of_the_initial_balance():
    assert risk(DRAWDOWN_20_PERCENT, equity="8500", initial="10000") is None
    breach = risk(DRAWDOWN_20_PERCENT, equity="7900", initial="10000")
    assert breach is not None
    assert breach.reason == "the drawdown of 2100 USD reached the limit of 2000 USD"


def test_a_drawdown_percent_is_of_the_initial_balance_not_the_days_start():
    # 20% of the initial 10000 is 2000, whatever the day started at.
    breach = risk(DRAWDOWN_20_PERCENT, equity="7900", day_start="8000", initial="10000")
    assert breach is not None
    assert breach.reason == "the drawdown of 2100 USD reached the limit of 2000 USD"
    assert risk(DRAWDOWN_20_PERCENT, equity="8100", day_start="8000", initial="10000") is None


def test_no_drawdown_above_the_initial_balance():
    assert risk(DRAWDOWN_20_PERCENT, equity="15000", initial="10000") is None


def test_the_reason_has_no_currency_when_none_is_given():
    breach = check_risk(DAILY_500, D("9000"), D("10000"), D("10000"))
    assert breach is not None
    assert breach.reason == "today's loss of 1000 reached the daily limit of 500"


def test_the_daily_loss_is_reported_before_the_drawdown():
    rules = dataclasses.replace(DAILY_500, max_drawdown=RiskLimit(D("1000")))
    breach = risk(rules, equity="8000")
    assert breach is not None
    assert breach.reason.startswith("today's loss of 2000 USD")
    only_drawdown = risk(rules, equity="8000", day_start="8100")
    assert only_drawdown is not None
    assert only_drawdown.reason == "the drawdown of 2000 USD reached the limit of 1000 USD"


def test_a_zero_limit_trips_on_any_loss_but_not_on_none():
    rules = CopyRules(daily_loss_limit=RiskLimit(D("0")))
    assert risk(rules, equity="10000") is None
    breach = risk(rules, equity="9999.99")
    assert breach is not None
    assert breach.reason == "today's loss of 0.01 USD reached the daily limit of 0 USD"


@pytest.mark.parametrize(
    ("action", "mode"),
    [
        (RiskAction.STOP_OPENING, RiskMode.STOP_OPENING),
        (RiskAction.CLOSE_ONLY, RiskMode.CLOSE_ONLY),
        (RiskAction.CLOSE_ALL_AND_PAUSE, RiskMode.PAUSED),
    ],
)
@pytest.mark.parametrize("rules", [DAILY_500, DRAWDOWN_1000])
def test_a_breach_carries_the_links_action_and_the_mode_it_leads_to(rules, action, mode):
    breach = risk(dataclasses.replace(rules, risk_action=action), equity="5000")
    assert breach is not None
    assert (breach.action, breach.mode) == (action, mode)


def test_every_risk_action_leads_to_a_mode():
    assert MODE_AFTER == {
        RiskAction.STOP_OPENING: RiskMode.STOP_OPENING,
        RiskAction.CLOSE_ONLY: RiskMode.CLOSE_ONLY,
        RiskAction.CLOSE_ALL_AND_PAUSE: RiskMode.PAUSED,
    }


# -- what a follower may do in each risk mode ----------------------------------------

REASON = "today's loss of 600 USD reached the daily limit of 500 USD"


def event(kind: EventKind, **changes: object) -> MasterEvent:
    base = MasterEvent(
        source="acct:1",
        seq=5,
        kind=kind,
        master_ref="P7",
        symbol="XAUUSD",
        side=Side.BUY,
        volume=D("1"),
        price=D("2350.10"),
        ts_event_ms=1_700_000_000_000,
        sl=D("2345.00"),
        remaining_volume=D("0.5"),
    )
    return dataclasses.replace(base, **changes)


POSITION = CopyState("P9", "XAUUSD", Side.BUY, D("1"), price=D("2350.20"), sl=D("2340.10"))
ORDER = CopyState(
    "O4",
    "XAUUSD",
    Side.BUY,
    D("1"),
    is_order=True,
    price=D("2300.00"),
    sl=D("2290.00"),
    order_type=OrderType.LIMIT,
)

# Each event kind with the copy it acts on (None: it would open a new copy).
CASES = {
    EventKind.POSITION_OPENED: None,
    EventKind.ORDER_PLACED: None,
    EventKind.POSITION_MODIFIED: POSITION,
    EventKind.ORDER_MODIFIED: ORDER,
    EventKind.POSITION_PARTIALLY_CLOSED: POSITION,
    EventKind.POSITION_CLOSED: POSITION,
    EventKind.ORDER_CANCELLED: ORDER,
    EventKind.ORDER_FILLED: ORDER,
}


def planned(kind: EventKind, mode: RiskMode) -> FollowerOrder | Skip:
    order_type = OrderType.LIMIT if kind.is_order else OrderType.MARKET
    follower = FollowerState(copy=CASES[kind], risk_mode=mode, risk_reason=REASON)
    return plan(event(kind, order_type=order_type), CopyRules(), follower, XAU)


def action_of(result: FollowerOrder | Skip) -> OrderAction | Skip:
    return result.action if isinstance(result, FollowerOrder) else result


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (EventKind.POSITION_OPENED, OrderAction.OPEN),
        (EventKind.ORDER_PLACED, OrderAction.PLACE_PENDING),
        (EventKind.POSITION_MODIFIED, OrderAction.MODIFY),
        (EventKind.ORDER_MODIFIED, OrderAction.MODIFY_PENDING),
        (EventKind.POSITION_PARTIALLY_CLOSED, OrderAction.REDUCE),
        (EventKind.POSITION_CLOSED, OrderAction.CLOSE),
        (EventKind.ORDER_CANCELLED, OrderAction.CANCEL_PENDING),
        (EventKind.ORDER_FILLED, OrderAction.FILL_PENDING),
    ],
)
def test_a_normal_follower_copies_everything(kind, expected):
    assert action_of(planned(kind, RiskMode.NORMAL)) is expected


STOPPED = Skip(f"new positions are stopped by a risk stop: {REASON}")
CLOSE_ONLY = Skip(f"close-only after a risk stop: {REASON}")
PAUSED = Skip(f"copying is paused by a risk stop: {REASON}")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (EventKind.POSITION_OPENED, STOPPED),
        (EventKind.ORDER_PLACED, STOPPED),
        (EventKind.POSITION_MODIFIED, OrderAction.MODIFY),
        (EventKind.ORDER_MODIFIED, OrderAction.MODIFY_PENDING),
        (EventKind.POSITION_PARTIALLY_CLOSED, OrderAction.REDUCE),
        (EventKind.POSITION_CLOSED, OrderAction.CLOSE),
        (EventKind.ORDER_CANCELLED, OrderAction.CANCEL_PENDING),
    ],
)
def test_stop_opening_blocks_only_new_copies(kind, expected):
    assert action_of(planned(kind, RiskMode.STOP_OPENING)) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (EventKind.POSITION_OPENED, STOPPED),
        (EventKind.ORDER_PLACED, STOPPED),
        (EventKind.POSITION_MODIFIED, CLOSE_ONLY),
        (EventKind.ORDER_MODIFIED, CLOSE_ONLY),
        (EventKind.POSITION_PARTIALLY_CLOSED, OrderAction.REDUCE),
        (EventKind.POSITION_CLOSED, OrderAction.CLOSE),
        (EventKind.ORDER_CANCELLED, OrderAction.CANCEL_PENDING),
    ],
)
def test_close_only_also_blocks_modifications(kind, expected):
    assert action_of(planned(kind, RiskMode.CLOSE_ONLY)) == expected


@pytest.mark.parametrize("kind", list(EventKind))
def test_paused_blocks_everything(kind):
    assert planned(kind, RiskMode.PAUSED) == PAUSED


@pytest.mark.parametrize("mode", [RiskMode.STOP_OPENING, RiskMode.CLOSE_ONLY])
def test_a_stopped_follower_does_not_copy_a_fill_it_has_no_pending_copy_of(mode):
    follower = FollowerState(risk_mode=mode, risk_reason=REASON)
    filled = event(EventKind.ORDER_FILLED, order_type=OrderType.LIMIT, position_ref="P12")
    assert plan(filled, CopyRules(), follower, XAU) == STOPPED
