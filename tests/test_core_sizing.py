"""Follower volume: every sizing mode, rounding to the step, and the volume limits."""

import dataclasses
from decimal import Decimal as D

import pytest

from copier.core import (
    CopyRules,
    FollowerOrder,
    FollowerState,
    Instrument,
    MasterEvent,
    OrderAction,
    Side,
    Sizing,
    Skip,
    plan,
)
from copier.core.sizing import Refusal, fit_volume, fmt, raw_volume
from tests.core_values import master_event

# Gold: 100 oz a lot, so a 1.00 price move is worth 100 per lot.
XAU = Instrument(
    "XAUUSD", D("0.01"), D("0.01"), D("50"), D("100"), 2, tick_size=D("0.01"), tick_value=D("1")
)
# USDJPY on a EUR account: one 0.001 tick is worth 0.62 EUR per lot, so a 1.00
# move is worth 620, far from the contract size of 100000.
USDJPY_EUR = Instrument(
    "USDJPY",
    D("0.01"),
    D("0.01"),
    D("100"),
    D("100000"),
    3,
    tick_size=D("0.001"),
    tick_value=D("0.62"),
)
# The same symbol when the venue does not say what a tick is worth.
USDJPY_NO_TICK = Instrument("USDJPY", D("0.01"), D("0.01"), D("100"), D("100000"), 3)


def opened(**changes: object) -> MasterEvent:
    return master_event(**changes)


def volume_of(result: FollowerOrder | Skip) -> D:
    assert isinstance(result, FollowerOrder), result
    return result.volume


# -- fixed and multiplier ------------------------------------------------------------


def test_it_opens_a_fixed_volume_whatever_the_master_trades():
    rules = CopyRules(sizing=Sizing.FIXED, sizing_value=D("0.25"))
    for master_volume in ("0.01", "1", "30"):
        order = plan(opened(volume=D(master_volume)), rules, FollowerState(), XAU)
        assert volume_of(order) == D("0.25")


def test_it_multiplies_the_master_volume():
    order = plan(opened(volume=D("1.5")), CopyRules(sizing_value=D("2")), FollowerState(), XAU)
    assert order == FollowerOrder(
        OrderAction.OPEN, "XAUUSD", Side.BUY, D("3.00"), D("2350.10"), link_ref="P7"
    )


def test_it_multiplies_by_one_by_default():
    assert volume_of(plan(opened(volume=D("0.37")), CopyRules(), FollowerState(), XAU)) == D("0.37")


# -- balance and equity ratios -------------------------------------------------------


def test_it_sizes_by_the_follower_to_master_balance_ratio():
    event = opened(volume=D("1"), master_balance=D("10000"))
    rules = CopyRules(sizing=Sizing.BALANCE_RATIO, sizing_value=D("1"))
    assert volume_of(plan(event, rules, FollowerState(balance=D("2500")), XAU)) == D("0.25")


def test_it_scales_the_balance_ratio_by_the_sizing_value():
    event = opened(volume=D("1"), master_balance=D("10000"))
    rules = CopyRules(sizing=Sizing.BALANCE_RATIO, sizing_value=D("2"))
    assert volume_of(plan(event, rules, FollowerState(balance=D("2500")), XAU)) == D("0.50")


@pytest.mark.parametrize(
    ("master_balance", "follower_balance"),
    [(None, D("2500")), (D("10000"), None), (D("0"), D("2500")), (D("10000"), D("0"))],
)
def test_it_skips_balance_ratio_sizing_without_both_balances(master_balance, follower_balance):
    event = opened(master_balance=master_balance)
    rules = CopyRules(sizing=Sizing.BALANCE_RATIO)
    result = plan(event, rules, FollowerState(balance=follower_balance), XAU)
    assert result == Skip("balance ratio sizing needs the master's and the follower's balance")


def test_it_sizes_by_the_equity_ratio_not_the_balance():
    event = opened(volume=D("2"), master_balance=D("20000"), master_equity=D("20000"))
    rules = CopyRules(sizing=Sizing.EQUITY_RATIO)
    follower = FollowerState(balance=D("10000"), equity=D("5000"))
    assert volume_of(plan(event, rules, follower, XAU)) == D("0.50")


@pytest.mark.parametrize(
    ("master_equity", "follower_equity"),
    [(None, D("5000")), (D("20000"), None), (D("0"), D("5000"))],
)
def test_it_skips_equity_ratio_sizing_without_both_equities(master_equity, follower_equity):
    event = opened(master_equity=master_equity, master_balance=D("20000"))
    rules = CopyRules(sizing=Sizing.EQUITY_RATIO)
    follower = FollowerState(balance=D("5000"), equity=follower_equity)
    result = plan(event, rules, follower, XAU)
    assert result == Skip("equity ratio sizing needs the master's and the follower's equity")


# -- risk percent --------------------------------------------------------------------


def test_it_sizes_risk_percent_from_the_stop_distance():
    # 1% of 10000 is 100; the SL is 10.00 away and 1.00 is worth 100 a lot: 0.1 lots.
    event = opened(price=D("2350.10"), sl=D("2340.10"))
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    order = plan(event, rules, FollowerState(equity=D("10000")), XAU)
    assert volume_of(order) == D("0.10")
    assert order.note == ""


def test_it_risks_more_with_a_closer_stop():
    event = opened(price=D("2350.10"), sl=D("2345.10"))
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    assert volume_of(plan(event, rules, FollowerState(equity=D("10000")), XAU)) == D("0.20")


def test_it_sizes_risk_from_equity_rather_than_balance():
    event = opened(sl=D("2340.10"))
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    follower = FollowerState(balance=D("20000"), equity=D("10000"))
    assert volume_of(plan(event, rules, follower, XAU)) == D("0.10")


def test_it_sizes_risk_from_the_balance_when_equity_is_unknown():
    event = opened(sl=D("2340.10"))
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    assert volume_of(plan(event, rules, FollowerState(balance=D("30000")), XAU)) == D("0.30")


def test_it_values_the_stop_distance_with_the_instruments_tick_value():
    # 1% of 10000 = 100 EUR; 0.500 away at 620 EUR per 1.00 a lot: 0.3225... lots.
    event = opened(symbol="USDJPY", price=D("150.000"), sl=D("149.500"))
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    order = plan(event, rules, FollowerState(equity=D("10000")), USDJPY_EUR)
    assert isinstance(order, FollowerOrder)
    assert order.volume == D("0.32")
    assert order.note == "rounded from 0.32258065 to 0.32 lots (step 0.01)"


def test_it_values_the_stop_distance_with_the_contract_size_without_a_tick_value():
    # 100 / (0.5 x 100000) = 0.002 lots: too small.
    event = opened(symbol="USDJPY", price=D("150.000"), sl=D("149.500"))
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    result = plan(event, rules, FollowerState(equity=D("10000")), USDJPY_NO_TICK)
    assert result == Skip("0.002 lots is under USDJPY's minimum of 0.01")


def test_it_sizes_risk_on_the_followers_own_stop_loss():
    # A fixed SL of 500 points (5.00) replaces the master's 10.00 distance.
    event = opened(sl=D("2340.10"))
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"), fixed_sl_points=D("500"))
    order = plan(event, rules, FollowerState(equity=D("10000")), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.volume, order.sl) == (D("0.20"), D("2345.10"))


def test_it_skips_risk_sizing_without_a_stop_loss():
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    result = plan(opened(sl=None), rules, FollowerState(equity=D("10000")), XAU)
    assert result == Skip("risk sizing needs a stop loss")


def test_it_skips_risk_sizing_when_the_stop_loss_is_not_copied():
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"), copy_sl=False)
    result = plan(opened(sl=D("2340.10")), rules, FollowerState(equity=D("10000")), XAU)
    assert result == Skip("risk sizing needs a stop loss")


def test_it_skips_risk_sizing_with_the_stop_loss_at_the_entry():
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    result = plan(opened(sl=D("2350.10")), rules, FollowerState(equity=D("10000")), XAU)
    assert result == Skip("risk sizing needs a stop loss away from the entry price")


def test_it_skips_risk_sizing_without_the_followers_equity():
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    result = plan(opened(sl=D("2340.10")), rules, FollowerState(), XAU)
    assert result == Skip("risk sizing needs the follower's equity")


def test_it_skips_risk_sizing_with_no_equity_to_risk():
    rules = CopyRules(sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    result = plan(opened(sl=D("2340.10")), rules, FollowerState(equity=D("0")), XAU)
    assert result == Skip("risk sizing needs the follower's equity")


# -- fixed notional ------------------------------------------------------------------


def test_it_sizes_a_fixed_notional_value():
    # 50000 / (2000 x 100 oz) = 0.25 lots.
    rules = CopyRules(sizing=Sizing.FIXED_NOTIONAL, sizing_value=D("50000"))
    order = plan(opened(price=D("2000.00"), volume=D("7")), rules, FollowerState(), XAU)
    assert volume_of(order) == D("0.25")


def test_it_rounds_a_fixed_notional_down():
    # 50000 / (2350.10 x 100) = 0.2127...
    rules = CopyRules(sizing=Sizing.FIXED_NOTIONAL, sizing_value=D("50000"))
    order = plan(opened(price=D("2350.10")), rules, FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.volume == D("0.21")
    assert order.note == "rounded from 0.2127569 to 0.21 lots (step 0.01)"


def test_it_skips_fixed_notional_sizing_without_a_price():
    rules = CopyRules(sizing=Sizing.FIXED_NOTIONAL, sizing_value=D("50000"))
    result = plan(opened(price=D("0")), rules, FollowerState(), XAU)
    assert result == Skip("notional sizing needs a price")


# -- the sizing value ----------------------------------------------------------------


@pytest.mark.parametrize("sizing", list(Sizing))
@pytest.mark.parametrize(("value", "shown"), [(D("0"), "0"), (D("-1.50"), "-1.5")])
def test_it_skips_a_sizing_value_that_is_not_positive(sizing, value, shown):
    event = opened(sl=D("2340.10"), master_balance=D("1000"), master_equity=D("1000"))
    follower = FollowerState(balance=D("1000"), equity=D("1000"))
    result = plan(event, CopyRules(sizing=sizing, sizing_value=value), follower, XAU)
    assert result == Skip(f"the sizing value {shown} is not greater than 0")


# -- rounding and limits -------------------------------------------------------------


def test_it_rounds_down_to_the_volume_step_and_says_so():
    order = plan(opened(volume=D("1")), CopyRules(sizing_value=D("0.339")), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.volume == D("0.33")
    assert order.note == "rounded from 0.339 to 0.33 lots (step 0.01)"


def test_it_rounds_down_to_a_coarse_step():
    coarse = dataclasses.replace(XAU, volume_step=D("0.1"), volume_min=D("0.1"))
    order = plan(opened(volume=D("0.99")), CopyRules(), FollowerState(), coarse)
    assert isinstance(order, FollowerOrder)
    assert order.volume == D("0.9")
    assert order.note == "rounded from 0.99 to 0.9 lots (step 0.1)"


def test_it_adds_no_note_when_the_volume_is_on_the_step():
    order = plan(opened(volume=D("1.5")), CopyRules(sizing_value=D("2")), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.note == ""


def test_it_clamps_to_the_maximum_and_says_so():
    order = plan(opened(volume=D("40")), CopyRules(sizing_value=D("2")), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.volume == D("50")
    assert order.note == "reduced from 80 to XAUUSD's maximum of 50 lots"


def test_it_keeps_the_maximum_itself():
    order = plan(opened(volume=D("25")), CopyRules(sizing_value=D("2")), FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert (order.volume, order.note) == (D("50.00"), "")


def test_it_skips_below_the_minimum_with_a_readable_reason():
    result = plan(opened(volume=D("0.01")), CopyRules(sizing_value=D("0.4")), FollowerState(), XAU)
    assert result == Skip("0.004 lots is under XAUUSD's minimum of 0.01")


def test_it_names_the_volume_asked_for_not_the_rounded_one_when_skipping():
    result = plan(
        opened(volume=D("0.0199")), CopyRules(sizing_value=D("0.5")), FollowerState(), XAU
    )
    assert result == Skip("0.00995 lots is under XAUUSD's minimum of 0.01")


def test_it_raises_to_the_minimum_when_forced_and_says_so():
    rules = CopyRules(sizing_value=D("0.4"), force_min=True)
    order = plan(opened(volume=D("0.01")), rules, FollowerState(), XAU)
    assert isinstance(order, FollowerOrder)
    assert order.volume == D("0.01")
    assert order.note == "raised from 0.004 to XAUUSD's minimum of 0.01 lots"


# -- the sizing functions themselves -------------------------------------------------


def test_raw_volume_does_not_round():
    wanted = raw_volume(
        opened(volume=D("1")),
        CopyRules(sizing_value=D("0.333")),
        XAU,
        D("2350.10"),
        None,
        None,
        None,
    )
    assert wanted == D("0.333")


def test_raw_volume_refuses_with_the_reason():
    rules = CopyRules(sizing=Sizing.RISK_PERCENT)
    with pytest.raises(Refusal) as refused:
        raw_volume(opened(), rules, XAU, D("2350.10"), None, D("1000"), D("1000"))
    assert str(refused.value) == "risk sizing needs a stop loss"


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (D("1"), (D("1.00"), "")),
        (D("1.005"), (D("1.00"), "rounded from 1.005 to 1 lots (step 0.01)")),
        (D("51"), (D("50"), "reduced from 51 to XAUUSD's maximum of 50 lots")),
    ],
)
def test_fit_volume(wanted, expected):
    assert fit_volume(wanted, CopyRules(), XAU) == expected


def test_fit_volume_refuses_under_the_minimum():
    with pytest.raises(Refusal) as refused:
        fit_volume(D("0.009"), CopyRules(), XAU)
    assert str(refused.value) == "0.009 lots is under XAUUSD's minimum of 0.01"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (D("0.004"), "0.004"),
        (D("4E-3"), "0.004"),
        (D("0.0040"), "0.004"),
        (D("100"), "100"),
        (D("1E+2"), "100"),
        (D("2.50"), "2.5"),
        (D("0"), "0"),
        (D("-1.50"), "-1.5"),
        (D(1) / D(3), "0.33333333"),
    ],
)
def test_fmt_writes_decimals_as_people_do(value, shown):
    assert fmt(value) == shown


# -- the instrument ------------------------------------------------------------------


def test_an_instruments_point_follows_its_price_digits():
    assert XAU.point == D("0.01")
    assert USDJPY_EUR.point == D("0.001")
    assert dataclasses.replace(XAU, price_digits=0).point == D("1")


def test_an_instrument_values_a_price_move_by_tick_or_by_contract():
    assert XAU.value_per_price_unit == D("100")
    assert USDJPY_EUR.value_per_price_unit == D("620")
    assert USDJPY_NO_TICK.value_per_price_unit == D("100000")


def test_an_instrument_rounds_volumes_and_prices():
    assert XAU.round_volume_down(D("0.019")) == D("0.01")
    assert XAU.round_volume(D("0.019")) == D("0.02")
    assert XAU.round_volume(D("0.025")) == D("0.02")  # half to even
    assert XAU.round_volume(D("0.035")) == D("0.04")
    assert XAU.round_price(D("2350.107")) == D("2350.11")
    assert XAU.is_on_step(D("0.05"))
    assert not XAU.is_on_step(D("0.055"))


def test_volumes_are_converted_into_the_followers_units():
    # A 1-lot gold trade of 100 oz, copied where one lot is one ounce.
    ounce = Instrument("XAU/USDT:USDT", D("1"), D("1"), D("10000"), D("1"), 2)
    order = plan(
        opened(contract_size=D("100")), CopyRules(sizing_value=D("0.5")), FollowerState(), ounce
    )
    assert isinstance(order, FollowerOrder) and order.volume == D("50")
    # The same contract size on both sides changes nothing.
    same = plan(
        opened(contract_size=D("1")),
        CopyRules(),
        FollowerState(),
        Instrument("BTC/USDT", D("0.00001"), D("0.00001"), D("9000"), D("1"), 2),
    )
    assert isinstance(same, FollowerOrder) and same.volume == D("1")
