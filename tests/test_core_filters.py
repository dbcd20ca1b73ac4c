"""Which master trades a link copies: symbol mapping, filters and close-only mode."""

import dataclasses
import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from copier.core import (
    CopyRules,
    CopyState,
    DeviationUnit,
    EventKind,
    FollowerOrder,
    FollowerState,
    Instrument,
    MasterEvent,
    OrderAction,
    OrderType,
    Side,
    Skip,
    TimeWindow,
    plan,
)
from tests.core_values import XAU, master_event

EURUSD_PRO = Instrument("EURUSDpro", D("0.01"), D("0.01"), D("100"), D("100000"), 5)
LONDON = ZoneInfo("Europe/London")
WEEKDAYS = frozenset(range(1, 6))


def ms(year: int, month: int, day: int, hour: int, minute: int = 0, tz: dt.tzinfo = LONDON) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=tz).timestamp() * 1000)


def event(**changes: object) -> MasterEvent:
    return master_event(**changes)


def held(**changes: object) -> FollowerState:
    copy = CopyState("P9", "XAUUSD", Side.BUY, D("1"), price=D("2350.10"), sl=D("2340.10"))
    return FollowerState(copy=dataclasses.replace(copy, **changes))


def opens(result: FollowerOrder | Skip) -> bool:
    return isinstance(result, FollowerOrder) and result.action is OrderAction.OPEN


# -- symbol mapping ------------------------------------------------------------------


def test_it_keeps_the_symbol_without_mapping_rules():
    assert CopyRules().map_symbol("EURUSD.m") == "EURUSD.m"


def test_it_swaps_the_masters_suffix_for_the_followers():
    rules = CopyRules(master_suffix=".m", follower_suffix="pro")
    assert rules.map_symbol("EURUSD.m") == "EURUSDpro"


def test_it_swaps_the_masters_prefix_for_the_followers():
    rules = CopyRules(master_prefix="m_", follower_prefix="FX:")
    assert rules.map_symbol("m_EURUSD") == "FX:EURUSD"


def test_it_swaps_prefix_and_suffix_together():
    rules = CopyRules(master_prefix="#", master_suffix=".m", follower_suffix="-ecn")
    assert rules.map_symbol("#EURUSD.m") == "EURUSD-ecn"


def test_it_only_strips_a_suffix_the_symbol_has():
    rules = CopyRules(master_suffix=".m", follower_suffix="pro")
    assert rules.map_symbol("EURUSD") == "EURUSDpro"
    assert rules.map_symbol("EURUSD.mx") == "EURUSD.mxpro"


def test_the_explicit_map_wins_over_prefix_and_suffix_rules():
    rules = CopyRules(symbol_map={"XAUUSD.m": "GOLD"}, master_suffix=".m", follower_suffix="pro")
    assert rules.map_symbol("XAUUSD.m") == "GOLD"
    assert rules.map_symbol("EURUSD.m") == "EURUSDpro"


def test_it_names_the_mapped_symbol_when_the_follower_cannot_trade_it():
    rules = CopyRules(master_suffix=".m", follower_suffix="pro")
    result = plan(event(symbol="EURUSD.m"), rules, FollowerState(), None)
    assert result == Skip("EURUSDpro is not tradable on the follower account")


def test_it_orders_the_followers_symbol():
    rules = CopyRules(master_suffix=".m", follower_suffix="pro")
    order = plan(event(symbol="EURUSD.m", price=D("1.08512")), rules, FollowerState(), EURUSD_PRO)
    assert isinstance(order, FollowerOrder)
    assert order.symbol == "EURUSDpro"


def test_it_filters_on_the_masters_symbol_before_mapping():
    rules = CopyRules(
        master_suffix=".m", follower_suffix="pro", symbols_allowed=frozenset({"EURUSD.m"})
    )
    assert opens(plan(event(symbol="EURUSD.m"), rules, FollowerState(), EURUSD_PRO))
    mapped_name = dataclasses.replace(rules, symbols_allowed=frozenset({"EURUSDpro"}))
    assert plan(event(symbol="EURUSD.m"), mapped_name, FollowerState(), EURUSD_PRO) == Skip(
        "EURUSD.m is not in this link's allowed symbols"
    )


# -- symbol lists --------------------------------------------------------------------


def test_it_copies_only_allowed_symbols():
    rules = CopyRules(symbols_allowed=frozenset({"EURUSD", "XAUUSD"}))
    assert opens(plan(event(), rules, FollowerState(), XAU))
    assert plan(event(symbol="GBPUSD"), rules, FollowerState(), XAU) == Skip(
        "GBPUSD is not in this link's allowed symbols"
    )


def test_it_copies_every_symbol_without_an_allowed_list():
    assert opens(plan(event(symbol="ANYTHING"), CopyRules(), FollowerState(), XAU))


def test_it_never_copies_denied_symbols():
    rules = CopyRules(symbols_denied=frozenset({"XAUUSD"}))
    assert plan(event(), rules, FollowerState(), XAU) == Skip(
        "XAUUSD is in this link's denied symbols"
    )
    assert opens(plan(event(symbol="XAGUSD"), rules, FollowerState(), XAU))


def test_a_denied_symbol_wins_over_an_allowed_one():
    rules = CopyRules(symbols_allowed=frozenset({"XAUUSD"}), symbols_denied=frozenset({"XAUUSD"}))
    assert plan(event(), rules, FollowerState(), XAU) == Skip(
        "XAUUSD is in this link's denied symbols"
    )


# -- sides and master volume ---------------------------------------------------------


def test_it_copies_only_the_chosen_sides():
    rules = CopyRules(sides=frozenset({Side.BUY}))
    assert opens(plan(event(side=Side.BUY), rules, FollowerState(), XAU))
    assert plan(event(side=Side.SELL), rules, FollowerState(), XAU) == Skip(
        "sell trades are not copied on this link"
    )
    sells = CopyRules(sides=frozenset({Side.SELL}))
    assert plan(event(side=Side.BUY), sells, FollowerState(), XAU) == Skip(
        "buy trades are not copied on this link"
    )


def test_the_side_filter_looks_at_the_masters_side_when_reversing():
    rules = CopyRules(sides=frozenset({Side.BUY}), reverse=True)
    order = plan(event(side=Side.BUY), rules, FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.side is Side.SELL
    assert plan(event(side=Side.SELL), rules, FollowerState(), XAU) == Skip(
        "sell trades are not copied on this link"
    )


def test_it_skips_master_volumes_under_the_minimum():
    rules = CopyRules(min_master_volume=D("0.5"))
    assert plan(event(volume=D("0.10")), rules, FollowerState(), XAU) == Skip(
        "the master's 0.1 lots is under this link's minimum of 0.5"
    )
    assert opens(plan(event(volume=D("0.5")), rules, FollowerState(), XAU))


def test_it_skips_master_volumes_over_the_maximum():
    rules = CopyRules(max_master_volume=D("5"))
    assert plan(event(volume=D("10")), rules, FollowerState(), XAU) == Skip(
        "the master's 10 lots is over this link's maximum of 5"
    )
    assert opens(plan(event(volume=D("5")), rules, FollowerState(), XAU))


# -- open positions ------------------------------------------------------------------


def test_it_stops_at_the_maximum_number_of_open_positions():
    rules = CopyRules(max_open_positions=3)
    assert opens(plan(event(), rules, FollowerState(open_positions=2), XAU))
    assert plan(event(), rules, FollowerState(open_positions=3), XAU) == Skip(
        "the follower already has 3 open positions (limit 3)"
    )
    assert plan(event(), rules, FollowerState(open_positions=7), XAU) == Skip(
        "the follower already has 7 open positions (limit 3)"
    )


def test_the_open_positions_limit_does_not_block_closes():
    rules = CopyRules(max_open_positions=1)
    follower = dataclasses.replace(held(), open_positions=5)
    order = plan(event(kind=EventKind.POSITION_CLOSED), rules, follower, XAU)
    assert isinstance(order, FollowerOrder)
    assert order.action is OrderAction.CLOSE


# -- trading hours -------------------------------------------------------------------

OFFICE_HOURS = CopyRules(
    time_windows=(TimeWindow(dt.time(8), dt.time(17), WEEKDAYS),), time_zone=LONDON
)


def test_it_copies_inside_the_trading_hours_in_the_links_time_zone():
    # 08:30 in London in summer is 07:30 UTC: inside in London, outside in UTC.
    at = ms(2024, 7, 1, 8, 30)
    assert opens(plan(event(ts_event_ms=at), OFFICE_HOURS, FollowerState(), XAU))
    in_utc = dataclasses.replace(OFFICE_HOURS, time_zone=dt.UTC)
    assert plan(event(ts_event_ms=at), in_utc, FollowerState(), XAU) == Skip(
        "Mon 07:30 UTC is outside this link's trading hours"
    )


def test_the_trading_hours_end_before_their_end_time():
    result = plan(event(ts_event_ms=ms(2024, 7, 1, 17)), OFFICE_HOURS, FollowerState(), XAU)
    assert result == Skip("Mon 17:00 BST is outside this link's trading hours")
    just_before = ms(2024, 7, 1, 16, 59)
    assert opens(plan(event(ts_event_ms=just_before), OFFICE_HOURS, FollowerState(), XAU))


def test_the_trading_hours_start_at_their_start_time():
    assert opens(plan(event(ts_event_ms=ms(2024, 7, 1, 8)), OFFICE_HOURS, FollowerState(), XAU))
    result = plan(event(ts_event_ms=ms(2024, 7, 1, 7, 59)), OFFICE_HOURS, FollowerState(), XAU)
    assert result == Skip("Mon 07:59 BST is outside this link's trading hours")


def test_the_trading_hours_follow_the_time_zones_winter_time():
    result = plan(event(ts_event_ms=ms(2024, 1, 15, 7, 30)), OFFICE_HOURS, FollowerState(), XAU)
    assert result == Skip("Mon 07:30 GMT is outside this link's trading hours")
    assert opens(
        plan(event(ts_event_ms=ms(2024, 1, 15, 8, 30)), OFFICE_HOURS, FollowerState(), XAU)
    )


def test_the_trading_hours_keep_to_their_weekdays():
    result = plan(event(ts_event_ms=ms(2024, 7, 6, 10)), OFFICE_HOURS, FollowerState(), XAU)
    assert result == Skip("Sat 10:00 BST is outside this link's trading hours")


def test_it_copies_inside_any_of_several_windows():
    rules = CopyRules(
        time_windows=(
            TimeWindow(dt.time(8), dt.time(12), WEEKDAYS),
            TimeWindow(dt.time(14), dt.time(17), WEEKDAYS),
        ),
        time_zone=LONDON,
    )
    assert opens(plan(event(ts_event_ms=ms(2024, 7, 1, 9)), rules, FollowerState(), XAU))
    assert opens(plan(event(ts_event_ms=ms(2024, 7, 1, 15)), rules, FollowerState(), XAU))
    assert plan(event(ts_event_ms=ms(2024, 7, 1, 13)), rules, FollowerState(), XAU) == Skip(
        "Mon 13:00 BST is outside this link's trading hours"
    )


def test_a_window_crossing_midnight_belongs_to_the_day_it_starts():
    friday_night = TimeWindow(dt.time(22), dt.time(6), frozenset({5}))
    rules = CopyRules(time_windows=(friday_night,), time_zone=LONDON)

    def result(day: int, hour: int) -> FollowerOrder | Skip:
        return plan(event(ts_event_ms=ms(2024, 7, day, hour)), rules, FollowerState(), XAU)

    assert opens(result(5, 23))  # Friday night
    assert opens(result(6, 3))  # early Saturday, still Friday's window
    assert result(6, 23) == Skip("Sat 23:00 BST is outside this link's trading hours")
    assert result(5, 3) == Skip("Fri 03:00 BST is outside this link's trading hours")
    assert result(6, 6) == Skip("Sat 06:00 BST is outside this link's trading hours")


def test_a_sunday_night_window_runs_into_monday():
    window = TimeWindow(dt.time(22), dt.time(2), frozenset({7}))
    assert window.contains(dt.datetime(2024, 7, 7, 22, 0, tzinfo=LONDON))  # Sunday
    assert window.contains(dt.datetime(2024, 7, 8, 1, 59, tzinfo=LONDON))  # Monday
    assert not window.contains(dt.datetime(2024, 7, 8, 2, 0, tzinfo=LONDON))
    assert not window.contains(dt.datetime(2024, 7, 8, 22, 0, tzinfo=LONDON))  # Monday night
    assert not window.contains(dt.datetime(2024, 7, 7, 1, 0, tzinfo=LONDON))  # Sunday morning


def test_a_window_without_days_runs_every_day():
    window = TimeWindow(dt.time(9, 30), dt.time(16))
    for day in range(1, 8):  # 2024-07-01 is a Monday
        assert window.contains(dt.datetime(2024, 7, day, 12, tzinfo=LONDON))
        assert not window.contains(dt.datetime(2024, 7, day, 9, 29, tzinfo=LONDON))


def test_it_copies_around_the_clock_without_windows():
    for at in (ms(2024, 7, 6, 3), ms(2024, 7, 7, 23, 59)):
        assert opens(plan(event(ts_event_ms=at), CopyRules(), FollowerState(), XAU))


def test_the_trading_hours_do_not_block_closes():
    order = plan(
        event(kind=EventKind.POSITION_CLOSED, ts_event_ms=ms(2024, 7, 6, 10)),
        OFFICE_HOURS,
        held(),
        XAU,
    )
    assert isinstance(order, FollowerOrder)
    assert order.action is OrderAction.CLOSE


# -- signal age ----------------------------------------------------------------------


def test_it_skips_a_signal_older_than_the_limit():
    rules = CopyRules(max_signal_age_ms=500)
    sent = 1_700_000_000_000
    result = plan(event(ts_event_ms=sent), rules, FollowerState(), XAU, now_ms=sent + 501)
    assert result == Skip("the signal is 501 ms old, over this link's limit of 500 ms")


def test_it_copies_a_signal_as_old_as_the_limit():
    rules = CopyRules(max_signal_age_ms=500)
    sent = 1_700_000_000_000
    assert opens(plan(event(ts_event_ms=sent), rules, FollowerState(), XAU, now_ms=sent + 500))


def test_it_ignores_the_signal_age_without_a_clock():
    rules = CopyRules(max_signal_age_ms=500)
    assert opens(plan(event(ts_event_ms=0), rules, FollowerState(), XAU, now_ms=None))


def test_it_ignores_the_signal_age_without_a_limit():
    sent = 1_700_000_000_000
    result = plan(event(ts_event_ms=sent), CopyRules(), FollowerState(), XAU, now_ms=sent + 10**9)
    assert opens(result)


# -- price deviation -----------------------------------------------------------------


def test_it_skips_a_follower_price_too_many_points_away():
    rules = CopyRules(max_price_deviation=D("30"))
    result = plan(event(), rules, FollowerState(quote=D("2350.50")), XAU)
    assert result == Skip(
        "the follower's price 2350.5 is 40 points from the master's 2350.1 (limit 30)"
    )


def test_it_measures_the_deviation_in_points_either_way():
    rules = CopyRules(max_price_deviation=D("30"))
    assert opens(plan(event(), rules, FollowerState(quote=D("2349.80")), XAU))
    assert opens(plan(event(), rules, FollowerState(quote=D("2350.40")), XAU))
    assert plan(event(), rules, FollowerState(quote=D("2349.79")), XAU) == Skip(
        "the follower's price 2349.79 is 31 points from the master's 2350.1 (limit 30)"
    )


def test_it_skips_a_follower_price_too_many_percent_away():
    rules = CopyRules(max_price_deviation=D("0.1"), price_deviation_unit=DeviationUnit.PERCENT)
    result = plan(event(price=D("2000.00")), rules, FollowerState(quote=D("2003.00")), XAU)
    assert result == Skip("the follower's price 2003 is 0.15% from the master's 2000 (limit 0.1%)")


def test_it_copies_a_follower_price_as_many_percent_away_as_the_limit():
    rules = CopyRules(max_price_deviation=D("0.1"), price_deviation_unit=DeviationUnit.PERCENT)
    assert opens(plan(event(price=D("2000.00")), rules, FollowerState(quote=D("1998.00")), XAU))


def test_it_cannot_check_the_deviation_without_a_quote():
    rules = CopyRules(max_price_deviation=D("0"))
    assert opens(plan(event(), rules, FollowerState(quote=None), XAU))


def test_it_does_not_check_the_deviation_of_a_pending_order():
    rules = CopyRules(max_price_deviation=D("30"))
    placed = event(kind=EventKind.ORDER_PLACED, order_type=OrderType.LIMIT, price=D("2300.00"))
    order = plan(placed, rules, FollowerState(quote=D("2350.10")), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.action is OrderAction.PLACE_PENDING


def test_the_filters_also_apply_to_pending_orders():
    rules = CopyRules(symbols_denied=frozenset({"XAUUSD"}))
    placed = event(kind=EventKind.ORDER_PLACED, order_type=OrderType.LIMIT)
    assert plan(placed, rules, FollowerState(), XAU) == Skip(
        "XAUUSD is in this link's denied symbols"
    )


# -- close-only mode -----------------------------------------------------------------

CLOSE_ONLY = CopyRules(close_only=True)


def test_close_only_mode_opens_nothing():
    assert plan(event(), CLOSE_ONLY, FollowerState(), XAU) == Skip(
        "close-only mode: new positions are not opened"
    )
    placed = event(kind=EventKind.ORDER_PLACED, order_type=OrderType.LIMIT)
    assert plan(placed, CLOSE_ONLY, FollowerState(), XAU) == Skip(
        "close-only mode: new positions are not opened"
    )
    filled = event(kind=EventKind.ORDER_FILLED, order_type=OrderType.LIMIT, position_ref="P8")
    assert plan(filled, CLOSE_ONLY, FollowerState(), XAU) == Skip(
        "close-only mode: new positions are not opened"
    )


def test_close_only_mode_still_closes_and_reduces():
    closed = plan(event(kind=EventKind.POSITION_CLOSED), CLOSE_ONLY, held(), XAU)
    assert closed == FollowerOrder(
        OrderAction.CLOSE, "XAUUSD", Side.SELL, D("1"), D("2350.10"), ref="P9"
    )
    partial = event(
        kind=EventKind.POSITION_PARTIALLY_CLOSED, volume=D("0.5"), remaining_volume=D("0.5")
    )
    reduced = plan(partial, CLOSE_ONLY, held(), XAU)
    assert isinstance(reduced, FollowerOrder)
    assert (reduced.action, reduced.volume) == (OrderAction.REDUCE, D("0.50"))


def test_close_only_mode_still_moves_stops_and_cancels_pending_orders():
    modified = plan(
        event(kind=EventKind.POSITION_MODIFIED, sl=D("2345.10")), CLOSE_ONLY, held(), XAU
    )
    assert isinstance(modified, FollowerOrder)
    assert (modified.action, modified.sl) == (OrderAction.MODIFY, D("2345.10"))
    pending = held(is_order=True, order_type=OrderType.LIMIT, price=D("2300.00"), ref="O4")
    cancelled = plan(event(kind=EventKind.ORDER_CANCELLED), CLOSE_ONLY, pending, XAU)
    assert isinstance(cancelled, FollowerOrder)
    assert cancelled.action is OrderAction.CANCEL_PENDING


@pytest.mark.parametrize(
    "rules",
    [
        CopyRules(symbols_allowed=frozenset({"EURUSD"})),
        CopyRules(symbols_denied=frozenset({"XAUUSD"})),
        CopyRules(sides=frozenset({Side.SELL})),
        CopyRules(min_master_volume=D("5")),
        CopyRules(max_master_volume=D("0.1")),
        CopyRules(max_open_positions=0),
        CopyRules(max_signal_age_ms=0),
    ],
)
def test_no_open_filter_stops_a_close(rules):
    close = event(kind=EventKind.POSITION_CLOSED, ts_event_ms=0)
    order = plan(close, rules, held(), XAU, now_ms=10**12)
    assert isinstance(order, FollowerOrder)
    assert order.action is OrderAction.CLOSE
    # The same rules do refuse an open, so the test above means something.
    assert isinstance(plan(event(ts_event_ms=0), rules, FollowerState(), XAU, now_ms=10**12), Skip)
