"""MT5 order requests: symbol terms, filling, deviation, volume, magic and each action's dict."""

from decimal import Decimal
from typing import NamedTuple

import pytest

from brokers.mt5 import constants as C
from brokers.mt5.requests import (
    DEVIATION_MAX_POINTS,
    DEVIATION_MIN_POINTS,
    MAGIC_MAX,
    SymbolSpec,
    build_request,
    deviation_points,
    fill_pending_requests,
    filling_type,
    magic_for,
    round_volume,
)
from brokers.venues.base import OrderDenied
from copier.core import FollowerOrder, OrderAction, OrderType, Side, client_order_id

D = Decimal
COID = client_order_id(7, "P1001", 3)


class SymbolInfo(NamedTuple):
    """MetaTrader5's `SymbolInfo` fields a request needs, typed as the terminal gives them."""

    name: str = "EURUSD"
    digits: int = 5
    point: float = 1e-05
    spread: int = 12
    trade_tick_size: float = 1e-05
    trade_tick_value: float = 1.0
    trade_contract_size: float = 100000.0
    volume_min: float = 0.01
    volume_max: float = 100.0
    volume_step: float = 0.01
    filling_mode: int = C.SYMBOL_FILLING_FOK | C.SYMBOL_FILLING_IOC
    trade_exemode: int = C.SYMBOL_TRADE_EXECUTION_MARKET
    trade_mode: int = C.SYMBOL_TRADE_MODE_FULL
    trade_stops_level: int = 10
    trade_freeze_level: int = 0


EURUSD = SymbolSpec.from_info(SymbolInfo())
# An index quoted in 0.01 with a 0.25 tick, volume in 0.1 lots from 1.
US500 = SymbolSpec.from_info(
    SymbolInfo(
        name="US500",
        digits=2,
        point=0.01,
        spread=50,
        trade_tick_size=0.25,
        trade_tick_value=12.5,
        trade_contract_size=50.0,
        volume_min=1.0,
        volume_max=50.0,
        volume_step=0.1,
        filling_mode=C.SYMBOL_FILLING_IOC,
        trade_stops_level=0,
    )
)
BID, ASK = D("1.10000"), D("1.10012")


def spec(**changes) -> SymbolSpec:
    return SymbolSpec.from_info(SymbolInfo()._replace(**changes))


def order(action: OrderAction, side: Side = Side.BUY, **fields) -> FollowerOrder:
    values = {"symbol": "EURUSD", "volume": D("0.50"), "reference_price": D("1.10010")}
    values.update(fields)
    return FollowerOrder(action=action, side=side, **values)


def request(o: FollowerOrder, s: SymbolSpec = EURUSD, **kwargs) -> dict[str, object]:
    args = {
        "tick_bid": BID,
        "tick_ask": ASK,
        "position_ticket": None,
        "order_ticket": None,
        "deviation": None,
    }
    args.update(kwargs)
    return build_request(o, COID, s, **args)


# --- symbol terms -------------------------------------------------------------------------


def test_symbol_info_floats_become_exact_decimals():
    assert EURUSD.point == D("0.00001") and str(EURUSD.point) == "0.00001"
    assert EURUSD.volume_step == D("0.01") and str(EURUSD.volume_step) == "0.01"
    assert EURUSD.trade_contract_size == D("100000.0")
    assert EURUSD.tick == D("0.00001")
    inst = US500.instrument()
    assert inst.symbol == "US500"
    assert (inst.volume_step, inst.volume_min, inst.volume_max) == (D("0.1"), D("1.0"), D("50.0"))
    assert (inst.price_digits, inst.tick_size, inst.tick_value) == (2, D("0.25"), D("12.5"))
    assert inst.contract_size == D("50.0")
    # One point of US500 is worth 12.5 / 0.25 = 50 per lot.
    assert inst.value_per_price_unit == D("50")


def test_a_symbol_without_quotes_yet_gives_no_tick_value():
    inst = spec(trade_tick_value=0.0, trade_tick_size=0.0).instrument()
    assert inst.tick_value is None and inst.tick_size is None
    assert spec(trade_tick_size=0.0).tick == D("0.00001")


def test_a_minimum_under_one_step_is_raised_to_the_step():
    assert spec(volume_min=0.0).volume_min == D("0.01")


@pytest.mark.parametrize("bad", [{"point": 0.0}, {"volume_step": 0.0}, {"point": float("nan")}])
def test_impossible_symbol_terms_are_refused(bad):
    with pytest.raises(ValueError):
        spec(**bad)


def test_prices_round_to_the_tick_not_only_to_the_digits():
    assert US500.round_price(D("4500.13")) == D("4500.25")
    assert US500.round_price(D("4500.12")) == D("4500.00")
    assert str(US500.round_price(D("4500"))) == "4500.00"
    assert EURUSD.round_price(D("1.1234549")) == D("1.12345")
    assert str(EURUSD.round_price(D("1.1"))) == "1.10000"


# --- filling ------------------------------------------------------------------------------

REQUEST_X = C.SYMBOL_TRADE_EXECUTION_REQUEST
INSTANT = C.SYMBOL_TRADE_EXECUTION_INSTANT
MARKET = C.SYMBOL_TRADE_EXECUTION_MARKET
EXCHANGE = C.SYMBOL_TRADE_EXECUTION_EXCHANGE
FOK, IOC, BOC = C.SYMBOL_FILLING_FOK, C.SYMBOL_FILLING_IOC, C.SYMBOL_FILLING_BOC


@pytest.mark.parametrize(
    ("exemode", "flags", "pending", "expected"),
    [
        # Instant and Request execution: Fill or Kill only, whatever the flags say.
        (REQUEST_X, 0, False, C.ORDER_FILLING_FOK),
        (REQUEST_X, IOC, False, C.ORDER_FILLING_FOK),
        (INSTANT, 0, False, C.ORDER_FILLING_FOK),
        (INSTANT, IOC, False, C.ORDER_FILLING_FOK),
        (INSTANT, FOK | IOC, True, C.ORDER_FILLING_FOK),
        # Market execution: FOK, else IOC, by the symbol's flags.
        (MARKET, FOK | IOC, False, C.ORDER_FILLING_FOK),
        (MARKET, FOK, False, C.ORDER_FILLING_FOK),
        (MARKET, IOC, False, C.ORDER_FILLING_IOC),
        (MARKET, IOC | BOC, False, C.ORDER_FILLING_IOC),
        (MARKET, IOC, True, C.ORDER_FILLING_IOC),
        (MARKET, 0, False, C.ORDER_FILLING_RETURN),
        (MARKET, BOC, False, C.ORDER_FILLING_RETURN),
        # Exchange execution: the same for market orders, Return for pending ones.
        (EXCHANGE, FOK | IOC, False, C.ORDER_FILLING_FOK),
        (EXCHANGE, IOC, False, C.ORDER_FILLING_IOC),
        (EXCHANGE, 0, False, C.ORDER_FILLING_RETURN),
        (EXCHANGE, FOK | IOC, True, C.ORDER_FILLING_RETURN),
    ],
)
def test_filling_follows_the_execution_mode_and_the_symbols_flags(
    exemode, flags, pending, expected
):
    s = spec(trade_exemode=exemode, filling_mode=flags)
    assert filling_type(s, pending=pending) == expected


def test_requests_carry_the_filling_of_their_kind():
    exchange = spec(trade_exemode=EXCHANGE, filling_mode=IOC)
    deal = request(order(OrderAction.OPEN), exchange)
    pending = request(
        order(OrderAction.PLACE_PENDING, order_type=OrderType.LIMIT, reference_price=D("1.09")),
        exchange,
    )
    assert deal["type_filling"] == C.ORDER_FILLING_IOC
    assert pending["type_filling"] == C.ORDER_FILLING_RETURN


# --- deviation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spread", "expected"),
    [(12, 24), (5, 10), (0, DEVIATION_MIN_POINTS), (-3, 10), (60, 120), (100, 200), (900, 200)],
)
def test_deviation_is_twice_the_spread_within_bounds(spread, expected):
    assert deviation_points(spec(spread=spread), None) == expected
    assert DEVIATION_MIN_POINTS <= expected <= DEVIATION_MAX_POINTS


@pytest.mark.parametrize("configured", [0, 3, 500])
def test_a_configured_deviation_is_used_as_it_is(configured):
    assert deviation_points(spec(spread=900), configured) == configured


def test_a_negative_deviation_is_a_mistake():
    with pytest.raises(ValueError, match="points"):
        deviation_points(EURUSD, -1)


def test_the_deal_carries_the_deviation():
    assert request(order(OrderAction.OPEN))["deviation"] == 24
    assert request(order(OrderAction.OPEN), deviation=7)["deviation"] == 7


# --- volume -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "volume", "expected"),
    [
        (EURUSD, D("0.137"), "0.13"),
        (EURUSD, D("0.1"), "0.10"),
        (EURUSD, D("1"), "1.00"),
        (EURUSD, D("0.01"), "0.01"),
        (EURUSD, D("100"), "100.00"),
        (US500, D("1.35"), "1.3"),
        (US500, D("2.999"), "2.9"),
    ],
)
def test_volume_rounds_down_to_the_step(s, volume, expected):
    rounded = round_volume(s, volume)
    assert str(rounded) == expected


@pytest.mark.parametrize(
    ("s", "volume", "sentence"),
    [
        (
            EURUSD,
            D("0.005"),
            "0.005 lots rounds down to 0 at EURUSD's volume step 0.01, under its minimum of 0.01",
        ),
        (US500, D("0.5"), "0.5 lots is under US500's minimum of 1"),
        (US500, D("0.99"), "0.99 lots rounds down to 0.9 at US500's volume step 0.1"),
        (EURUSD, D("100.01"), "100.01 lots is over EURUSD's maximum of 100"),
        (EURUSD, D("0"), "volume must be greater than 0, not 0"),
        (EURUSD, D("-1"), "volume must be greater than 0, not -1"),
    ],
)
def test_volume_outside_the_symbols_limits_is_denied_with_a_sentence(s, volume, sentence):
    with pytest.raises(OrderDenied) as denied:
        round_volume(s, volume)
    assert denied.value.message.startswith(sentence)


def test_the_request_volume_is_the_rounded_volume_as_a_float():
    r = request(order(OrderAction.OPEN, volume=D("0.137")))
    assert r["volume"] == 0.13 and type(r["volume"]) is float


# --- magic --------------------------------------------------------------------------------


def test_magic_is_deterministic_positive_and_fits_a_signed_64_bit_long():
    ids = {
        client_order_id(link, f"P{ref}", seq)
        for link in range(5)
        for ref in range(200)
        for seq in range(10)
    }
    magics = {magic_for(coid) for coid in ids}
    assert len(magics) == len(ids), "10000 ids, 10000 distinct magics"
    assert all(0 < m <= MAGIC_MAX < 2**63 for m in magics)
    assert magic_for(COID) == magic_for(client_order_id(7, "P1001", 3))


@pytest.mark.parametrize(
    ("coid", "magic"),
    [
        ("TS0123456789ABCDEF00000000", 0x0123456789ABCDEF),
        ("TSFFFFFFFFFFFFFFFFFFFFFFFF", 2**63 - 1),
        ("TS8000000000000001FFFFFFFF", 1),
        # The last 8 hex digits do not count; all-zero bits give 1, not the hand trades' 0.
        ("TS0000000000000000ABCDEF12", 1),
        ("TS8000000000000000ABCDEF12", 1),
    ],
)
def test_magic_is_the_first_64_bits_without_the_sign_bit(coid, magic):
    assert magic_for(coid) == magic


@pytest.mark.parametrize(
    "coid",
    [
        "",
        "TS",
        "TS0123456789abcdef00000000",
        "XX0123456789ABCDEF00000000",
        "TS0123",
        "TS" + "G" * 24,
        "TS0123456789ABCDEF000000001",
    ],
)
def test_magic_refuses_what_is_not_our_client_order_id(coid):
    with pytest.raises(ValueError):
        magic_for(coid)


# --- requests, action by action -----------------------------------------------------------


def test_a_market_buy_opens_at_the_ask_with_its_stops_and_our_id():
    r = request(order(OrderAction.OPEN, sl=D("1.0950049"), tp=D("1.1100051")))
    assert r == {
        "action": C.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.5,
        "type": C.ORDER_TYPE_BUY,
        "price": 1.10012,
        "sl": 1.095,
        "tp": 1.11001,
        "deviation": 24,
        "magic": magic_for(COID),
        "comment": COID,
        "type_time": C.ORDER_TIME_GTC,
        "type_filling": C.ORDER_FILLING_FOK,
    }
    assert len(str(r["comment"])) <= 31
    assert all(type(r[k]) is float for k in ("volume", "price", "sl", "tp"))


def test_a_market_sell_opens_at_the_bid_and_no_stop_is_zero():
    r = request(order(OrderAction.OPEN, Side.SELL))
    assert (r["type"], r["price"], r["sl"], r["tp"]) == (C.ORDER_TYPE_SELL, 1.1, 0.0, 0.0)


def test_a_full_close_deals_the_opposite_side_on_the_position_ticket():
    # The planner gives a close the opposite of the position's side: this closes a buy.
    r = request(order(OrderAction.CLOSE, Side.SELL, ref="P555"), position_ticket=555)
    assert r == {
        "action": C.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.5,
        "type": C.ORDER_TYPE_SELL,
        "price": 1.1,
        "position": 555,
        "deviation": 24,
        "magic": magic_for(COID),
        "comment": COID,
        "type_time": C.ORDER_TIME_GTC,
        "type_filling": C.ORDER_FILLING_FOK,
    }


def test_a_partial_close_of_a_sell_buys_part_of_the_volume_at_the_ask():
    o = order(OrderAction.REDUCE, Side.BUY, volume=D("0.2"), ref="P556")
    r = request(o, position_ticket=556)
    assert (r["type"], r["volume"], r["price"], r["position"]) == (
        C.ORDER_TYPE_BUY,
        0.2,
        1.10012,
        556,
    )
    assert "sl" not in r and "tp" not in r


@pytest.mark.parametrize("action", [OrderAction.CLOSE, OrderAction.REDUCE, OrderAction.MODIFY])
def test_position_actions_need_the_position_ticket(action):
    with pytest.raises(ValueError, match="position ticket"):
        request(order(action, ref="P1"))


def test_an_sl_tp_change_is_sltp_on_the_position():
    o = order(OrderAction.MODIFY, sl=D("1.09"), tp=None, ref="P9")
    r = request(o, position_ticket=9)
    assert r == {
        "action": C.TRADE_ACTION_SLTP,
        "symbol": "EURUSD",
        "position": 9,
        "sl": 1.09,
        "tp": 0.0,
        "magic": magic_for(COID),
    }


def test_removing_both_levels_needs_no_price():
    o = order(OrderAction.MODIFY, ref="P9")
    r = request(o, position_ticket=9, tick_bid=D(0), tick_ask=D(0))
    assert (r["sl"], r["tp"]) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("side", "order_type", "price", "mt5_type"),
    [
        (Side.BUY, OrderType.LIMIT, "1.09000", C.ORDER_TYPE_BUY_LIMIT),
        (Side.SELL, OrderType.LIMIT, "1.11000", C.ORDER_TYPE_SELL_LIMIT),
        (Side.BUY, OrderType.STOP, "1.11000", C.ORDER_TYPE_BUY_STOP),
        (Side.SELL, OrderType.STOP, "1.09000", C.ORDER_TYPE_SELL_STOP),
    ],
)
def test_pending_orders_take_their_type_from_side_and_order_type(side, order_type, price, mt5_type):
    o = order(OrderAction.PLACE_PENDING, side, order_type=order_type, reference_price=D(price))
    r = request(o)
    assert r == {
        "action": C.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.5,
        "type": mt5_type,
        "price": float(price),
        "sl": 0.0,
        "tp": 0.0,
        "magic": magic_for(COID),
        "comment": COID,
        "type_time": C.ORDER_TIME_GTC,
        "type_filling": C.ORDER_FILLING_FOK,
    }


def test_a_pending_price_rounds_to_the_tick():
    o = order(
        OrderAction.PLACE_PENDING,
        symbol="US500",
        volume=D("1.37"),
        order_type=OrderType.LIMIT,
        reference_price=D("4490.13"),
        sl=D("4480.1"),
        tp=D("4510.4"),
    )
    r = request(o, US500, tick_bid=D("4500.00"), tick_ask=D("4500.50"))
    assert (r["price"], r["sl"], r["tp"], r["volume"]) == (4490.25, 4480.0, 4510.5, 1.3)
    assert r["type_filling"] == C.ORDER_FILLING_IOC


def test_a_pending_change_is_modify_on_the_order_ticket():
    o = order(
        OrderAction.MODIFY_PENDING,
        Side.SELL,
        order_type=OrderType.LIMIT,
        reference_price=D("1.1120"),
        sl=D("1.1200"),
        tp=D("1.1000"),
        ref="O77",
    )
    r = request(o, order_ticket=77)
    assert r == {
        "action": C.TRADE_ACTION_MODIFY,
        "order": 77,
        "symbol": "EURUSD",
        "price": 1.112,
        "sl": 1.12,
        "tp": 1.1,
        "type_time": C.ORDER_TIME_GTC,
    }


def test_a_pending_cancel_is_remove_on_the_order_ticket():
    o = order(OrderAction.CANCEL_PENDING, order_type=OrderType.STOP, ref="O78")
    assert request(o, order_ticket=78) == {"action": C.TRADE_ACTION_REMOVE, "order": 78}
    with pytest.raises(ValueError, match="pending order ticket"):
        request(o)


def test_a_pending_fill_removes_the_order_then_deals_at_market():
    o = order(OrderAction.FILL_PENDING, Side.SELL, order_type=OrderType.LIMIT, ref="O79")
    with pytest.raises(ValueError, match="fill_pending_requests"):
        request(o, order_ticket=79)
    remove, deal = fill_pending_requests(o, COID, EURUSD, BID, ASK, 79, None)
    assert remove == {"action": C.TRADE_ACTION_REMOVE, "order": 79}
    assert deal == request(order(OrderAction.OPEN, Side.SELL))


def test_pending_actions_need_a_limit_or_stop_type():
    with pytest.raises(ValueError, match="limit or stop"):
        request(order(OrderAction.PLACE_PENDING, reference_price=D("1.09")))


# --- local denials ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("o", "sentence"),
    [
        (
            order(
                OrderAction.PLACE_PENDING, order_type=OrderType.LIMIT, reference_price=D("1.1002")
            ),
            "a buy limit at 1.1002 must be below the ask 1.10012",
        ),
        (
            order(
                OrderAction.PLACE_PENDING,
                Side.SELL,
                order_type=OrderType.STOP,
                reference_price=D("1.10005"),
            ),
            "a sell stop at 1.10005 must be below the bid 1.1",
        ),
        (
            order(
                OrderAction.PLACE_PENDING, order_type=OrderType.STOP, reference_price=D("1.10015")
            ),
            "a buy stop at 1.10015 is 0.00003 from 1.10012, nearer than EURUSD's stops level "
            "of 10 points (0.0001)",
        ),
        (
            order(OrderAction.OPEN, sl=D("1.1001")),
            "the stop loss 1.1001 must be below the bid 1.1",
        ),
        (
            order(OrderAction.OPEN, Side.SELL, tp=D("1.10008")),
            "the take profit 1.10008 is 0.00004 from 1.10012, nearer than EURUSD's stops level",
        ),
        (
            order(
                OrderAction.PLACE_PENDING,
                order_type=OrderType.LIMIT,
                reference_price=D("1.09"),
                tp=D("1.08"),
            ),
            "the take profit 1.08 must be above the order's price 1.09",
        ),
        (
            order(OrderAction.MODIFY, Side.SELL, sl=D("1.1"), ref="P1"),
            "the stop loss 1.1 must be above the ask 1.10012",
        ),
    ],
)
def test_prices_the_server_would_refuse_are_denied_locally(o, sentence):
    with pytest.raises(OrderDenied) as denied:
        request(o, position_ticket=1)
    assert denied.value.message.startswith(sentence)


def test_levels_just_outside_the_stops_level_pass():
    r = request(order(OrderAction.OPEN, sl=D("1.09990"), tp=D("1.10010")))
    assert (r["sl"], r["tp"]) == (1.0999, 1.1001)
    no_level = spec(trade_stops_level=0)
    r = request(order(OrderAction.OPEN, sl=D("1.09999"), tp=D("1.10001")), no_level)
    assert (r["sl"], r["tp"]) == (1.09999, 1.10001)


@pytest.mark.parametrize(
    ("trade_mode", "o", "sentence"),
    [
        (
            C.SYMBOL_TRADE_MODE_CLOSEONLY,
            order(OrderAction.OPEN),
            "EURUSD is close-only on this account",
        ),
        (
            C.SYMBOL_TRADE_MODE_CLOSEONLY,
            order(OrderAction.PLACE_PENDING, order_type=OrderType.LIMIT, reference_price=D("1.09")),
            "EURUSD is close-only on this account",
        ),
        (
            C.SYMBOL_TRADE_MODE_LONGONLY,
            order(OrderAction.OPEN, Side.SELL),
            "EURUSD allows only long positions",
        ),
        (
            C.SYMBOL_TRADE_MODE_SHORTONLY,
            order(OrderAction.OPEN, Side.BUY),
            "EURUSD allows only short positions",
        ),
        (
            C.SYMBOL_TRADE_MODE_DISABLED,
            order(OrderAction.CLOSE, Side.SELL, ref="P1"),
            "trading EURUSD is disabled",
        ),
    ],
)
def test_the_symbols_trade_mode_denies_what_it_forbids(trade_mode, o, sentence):
    with pytest.raises(OrderDenied) as denied:
        request(o, spec(trade_mode=trade_mode), position_ticket=1)
    assert denied.value.message.startswith(sentence)


def test_closing_stays_possible_on_a_close_only_or_one_way_symbol():
    for mode in (C.SYMBOL_TRADE_MODE_CLOSEONLY, C.SYMBOL_TRADE_MODE_LONGONLY):
        close = order(OrderAction.CLOSE, Side.SELL, ref="P1")
        assert request(close, spec(trade_mode=mode), position_ticket=1)["position"] == 1


def test_a_deal_without_a_price_is_denied():
    with pytest.raises(OrderDenied, match="EURUSD has no price now"):
        request(order(OrderAction.OPEN), tick_bid=D(0), tick_ask=D(0))


def test_the_caller_cannot_mix_up_symbols_or_ids():
    with pytest.raises(ValueError, match="for GBPUSD"):
        request(order(OrderAction.OPEN, symbol="GBPUSD"))
    with pytest.raises(ValueError, match="client order id"):
        build_request(order(OrderAction.OPEN), "manual", EURUSD, BID, ASK, None, None, None)
