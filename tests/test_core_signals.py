"""Webhook signals: payload parsing and the master events a signal causes (pure, no I/O)."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from copier.core.events import EventKind, MasterEvent, OrderType, Side
from copier.core.signals import (
    EventDraft,
    Rejection,
    Signal,
    SignalAction,
    SignalError,
    SourcePosition,
    events_for,
    parse_signal,
)

OPEN, CLOSED = EventKind.POSITION_OPENED, EventKind.POSITION_CLOSED
PARTIAL, PLACED = EventKind.POSITION_PARTIALLY_CLOSED, EventKind.ORDER_PLACED
TS = 1_700_000_000_000


def error(data: object) -> SignalError:
    with pytest.raises(SignalError) as caught:
        parse_signal(data)
    return caught.value


def buy(**fields: object) -> dict[str, object]:
    return {"action": "buy", "symbol": "BTCUSDT", "qty": "0.5", **fields}


def tradingview(template: str, **values: str) -> object:
    """The JSON TradingView posts: the template with its placeholders substituted."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    return json.loads(template)


def run(
    signal: Signal | dict[str, object],
    positions: list[SourcePosition] | None = None,
    *,
    equity: str = "10000",
    contract_size: str = "1",
    allow_pyramiding: bool = False,
    position_aware: bool = True,
    price: str | None = None,
) -> list[EventDraft] | Rejection:
    if isinstance(signal, dict):
        signal = parse_signal(signal)
    return events_for(
        signal,
        positions or [],
        equity=D(equity),
        contract_size=D(contract_size),
        allow_pyramiding=allow_pyramiding,
        position_aware=position_aware,
        new_ref="sig-9",
        ts_ms=TS,
        price=None if price is None else D(price),
    )


def drafts(result: list[EventDraft] | Rejection) -> list[EventDraft]:
    assert isinstance(result, list), result
    return result


def reason(result: list[EventDraft] | Rejection) -> str:
    assert isinstance(result, Rejection), result
    return result.reason


def shape(result: list[EventDraft] | Rejection) -> list[tuple[object, ...]]:
    return [
        (e.kind, e.master_ref, e.side.value, e.volume, e.remaining_volume) for e in drafts(result)
    ]


def pos(ref: str, side: Side, volume: str, symbol: str = "BTCUSDT", price: str = "20000"):
    return SourcePosition(ref, symbol, side, D(volume), D(price))


# -- the error type ---------------------------------------------------------------


def test_signal_error_is_a_value_error_naming_its_field():
    e = error({"symbol": "BTCUSDT"})
    assert isinstance(e, ValueError)
    assert (e.field, e.message) == ("action", "missing; give buy, sell, close, close_all or flat")
    assert str(e) == "action: missing; give buy, sell, close, close_all or flat"


@pytest.mark.parametrize(
    ("data", "described"),
    [(["buy"], "a list"), ("buy BTCUSDT", "'buy BTCUSDT'"), (None, "null"), (3, "3")],
)
def test_a_payload_that_is_not_an_object_is_refused(data, described):
    e = error(data)
    assert e.field == "body"
    assert e.message == f'send a JSON object such as {{"action": "buy", ...}}, not {described}'


# -- action -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("buy", SignalAction.BUY),
        ("BUY", SignalAction.BUY),
        (" Buy ", SignalAction.BUY),
        ("long", SignalAction.BUY),
        ("sell", SignalAction.SELL),
        ("Short", SignalAction.SELL),
    ],
)
def test_buy_and_sell_and_their_synonyms_any_case(text, action):
    signal = parse_signal(buy(action=text))
    assert signal.action is action
    assert signal.side is (Side.BUY if action is SignalAction.BUY else Side.SELL)


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("close", SignalAction.CLOSE),
        ("exit", SignalAction.CLOSE),
        ("EXIT", SignalAction.CLOSE),
        ("close_all", SignalAction.CLOSE_ALL),
        ("Close All", SignalAction.CLOSE_ALL),
        ("close-all", SignalAction.CLOSE_ALL),
        ("closeall", SignalAction.CLOSE_ALL),
        ("flat", SignalAction.FLAT),
        ("FLAT", SignalAction.FLAT),
    ],
)
def test_close_actions_and_their_spellings(text, action):
    signal = parse_signal({"action": text, "symbol": "BTCUSDT"})
    assert signal.action is action
    assert signal.side is None


@pytest.mark.parametrize("data", [{"symbol": "X", "qty": 1}, {"action": None}, {"action": "  "}])
def test_a_missing_action_is_refused(data):
    e = error(data)
    assert (e.field, e.message) == ("action", "missing; give buy, sell, close, close_all or flat")


def test_an_unknown_action_is_refused_and_named():
    e = error(buy(action="hold"))
    assert e.field == "action"
    assert e.message == "'hold' is not an action; give buy, sell, close, close_all or flat"


def test_an_action_that_is_not_text_is_refused():
    e = error(buy(action=1))
    assert (e.field, e.message) == ("action", "must be text, not 1")


# -- TradingView placeholders --------------------------------------------------------

STRATEGY_TEMPLATE = (
    '{"action": "{{strategy.order.action}}", "ticker": "{{ticker}}",'
    ' "qty": "{{strategy.order.contracts}}", "price": "{{close}}",'
    ' "alert_id": "{{strategy.order.id}}", "comment": "{{strategy.order.comment}}"}'
)


def test_a_strategy_template_after_substitution():
    data = tradingview(
        STRATEGY_TEMPLATE,
        **{
            "strategy.order.action": "buy",
            "ticker": "BTCUSDT",
            "strategy.order.contracts": "0.5",
            "close": "64250.5",
            "strategy.order.id": "Long entry",
            "strategy.order.comment": "breakout",
        },
    )
    signal = parse_signal(data)
    assert signal == Signal(
        SignalAction.BUY,
        "BTCUSDT",
        qty=D("0.5"),
        price=D("64250.5"),
        alert_id="Long entry",
        comment="breakout",
    )


def test_the_sell_of_a_strategy_template():
    data = tradingview(
        '{"action": "{{strategy.order.action}}", "ticker": "{{ticker}}",'
        ' "qty": {{strategy.order.contracts}}}',
        **{"strategy.order.action": "sell", "ticker": "ETHUSDT", "strategy.order.contracts": "3"},
    )
    signal = parse_signal(data)
    assert (signal.action, signal.symbol, signal.qty) == (SignalAction.SELL, "ETHUSDT", D("3"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "{{strategy.order.action}}"),
        ("ticker", "{{ticker}}"),
        ("symbol", "BINANCE:{{ticker}}"),
        ("qty", "{{strategy.order.contracts}}"),
        ("price", "{{close}}"),
        ("sl", "{{plot_1}}"),
        ("alert_id", "{{strategy.order.id}}"),
        ("comment", "entry {{strategy.order.comment}}"),
        ("order_type", "{{order_type}}"),
    ],
)
def test_a_placeholder_left_unsubstituted_is_refused_naming_the_field(field, value):
    data = {**buy(price="100"), field: value}
    if field == "ticker":
        del data["symbol"]
    e = error(data)
    assert e.field == field
    assert e.message == (f"the alert template was not filled in: {value!r} is still a placeholder")


def test_a_placeholder_in_an_unknown_field_is_ignored_like_the_field():
    signal = parse_signal(buy(position="{{strategy.position_size}}", exchange="{{exchange}}"))
    assert signal.qty == D("0.5")


# -- symbol -------------------------------------------------------------------------


def test_symbol_or_ticker():
    assert parse_signal(buy()).symbol == "BTCUSDT"
    data = buy()
    data["ticker"] = data.pop("symbol")
    assert parse_signal(data).symbol == "BTCUSDT"
    assert parse_signal(buy(ticker="BTCUSDT")).symbol == "BTCUSDT"


@pytest.mark.parametrize(
    ("text", "symbol"),
    [
        ("BINANCE:BTCUSDT", "BTCUSDT"),
        ("FX_IDC:EURUSD", "EURUSD"),
        ("CME_MINI:ES1!", "ES1!"),
        ("BTC/USDT:USDT", "BTC/USDT:USDT"),
        ("BYBIT:BTC/USDT:USDT", "BTC/USDT:USDT"),
        ("EURUSD.m", "EURUSD.m"),
        ("  XAUUSD ", "XAUUSD"),
    ],
)
def test_a_tradingview_exchange_prefix_is_dropped_and_ccxt_settle_suffixes_kept(text, symbol):
    assert parse_signal(buy(symbol=text)).symbol == symbol


def test_symbol_and_ticker_that_disagree_are_refused():
    e = error(buy(ticker="ETHUSDT"))
    assert (e.field, e.message) == ("symbol", "symbol 'BTCUSDT' and ticker 'ETHUSDT' disagree")


def test_symbol_and_ticker_that_agree_after_the_prefix_are_one_symbol():
    assert parse_signal(buy(ticker="BINANCE:BTCUSDT")).symbol == "BTCUSDT"


@pytest.mark.parametrize("data", [{"action": "buy", "qty": 1}, buy(symbol=""), buy(symbol=None)])
def test_a_buy_without_a_symbol_is_refused(data):
    e = error(data)
    assert (e.field, e.message) == ("symbol", "missing; give symbol or ticker")


@pytest.mark.parametrize(("field", "value"), [("symbol", "BTC USDT"), ("ticker", "BTC;DROP")])
def test_text_that_is_not_a_symbol_is_refused(field, value):
    data = {"action": "buy", "qty": 1, field: value}
    e = error(data)
    assert (e.field, e.message) == (field, f"{value!r} is not a symbol")


def test_a_symbol_that_is_not_text_is_refused():
    e = error(buy(symbol=5))
    assert (e.field, e.message) == ("symbol", "must be text, not 5")


# -- numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("0.5", D("0.5")),
        (" 1e-2 ", D("0.01")),
        ("1E2", D("100")),
        ("+2", D("2")),
        (".25", D("0.25")),
        ("3.", D("3")),
        (0.1, D("0.1")),
        (2, D("2")),
        (D("0.003"), D("0.003")),
        ("0.00000001", D("0.00000001")),
    ],
)
def test_numbers_as_text_or_json_numbers_are_exact_decimals(value, number):
    qty = parse_signal(buy(qty=value)).qty
    assert isinstance(qty, D)
    assert qty == number
    assert str(qty) == str(number)


def test_a_json_float_keeps_its_written_digits():
    signal = parse_signal(json.loads('{"action": "buy", "symbol": "X", "qty": 0.3, "price": 0.1}'))
    assert (str(signal.qty), str(signal.price)) == ("0.3", "0.1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "must be a number, not 'abc'"),
        ("1,5", "must be a number, not '1,5'"),
        ("1_000", "must be a number, not '1_000'"),
        ("0x10", "must be a number, not '0x10'"),
        ("", "must be a number, not ''"),
        (True, "must be a number, not true"),
        (False, "must be a number, not false"),
        ([1], "must be a number, not a list"),
        ({"v": 1}, "must be a number, not an object"),
        ("NaN", "must be a finite number, not 'NaN'"),
        ("nan", "must be a finite number, not 'nan'"),
        ("Infinity", "must be a finite number, not 'Infinity'"),
        ("-inf", "must be a finite number, not '-inf'"),
        (float("nan"), "must be a finite number, not nan"),
        (float("inf"), "must be a finite number, not inf"),
        (D("NaN"), "must be a finite number, not NaN"),
        ("0", "must be greater than 0, not 0"),
        (0, "must be greater than 0, not 0"),
        ("-1", "must be greater than 0, not -1"),
        (-0.5, "must be greater than 0, not -0.5"),
        ("1e20", "'1e20' is out of range"),
        ("1e-13", "'1e-13' is out of range"),
    ],
)
def test_bad_numbers_are_refused_with_a_clear_message(value, message):
    e = error(buy(qty=value))
    assert (e.field, e.message) == ("qty", message)


@pytest.mark.parametrize("field", ["qty_pct", "risk_pct", "price", "sl", "tp", "sl_distance"])
def test_every_number_field_is_checked_and_named(field):
    data = buy(**{field: "zero"})
    e = error(data)
    assert (e.field, e.message) == (field, "must be a number, not 'zero'")


def test_null_is_the_same_as_an_absent_field():
    signal = parse_signal(buy(price=None, sl=None, tp=None, comment=None, alert_id=None))
    assert signal == Signal(SignalAction.BUY, "BTCUSDT", qty=D("0.5"))


def test_unknown_fields_are_ignored():
    signal = parse_signal(
        buy(exchange="BINANCE", interval="15", time="2024-01-01T00:00:00Z", extra={"a": [1]})
    )
    assert signal == Signal(SignalAction.BUY, "BTCUSDT", qty=D("0.5"))


# -- sizes ----------------------------------------------------------------------------


def test_a_buy_without_a_size_is_refused():
    data = buy()
    del data["qty"]
    e = error(data)
    assert (e.field, e.message) == ("qty", "give qty, qty_pct or risk_pct")


@pytest.mark.parametrize(
    ("fields", "named", "message"),
    [
        (
            {"qty_pct": "5"},
            "qty_pct",
            "qty and qty_pct both given; give only one of qty, qty_pct or risk_pct",
        ),
        (
            {"risk_pct": "1", "sl": "90", "price": "100"},
            "risk_pct",
            "qty and risk_pct both given; give only one of qty, qty_pct or risk_pct",
        ),
    ],
)
def test_two_sizes_are_a_contradiction(fields, named, message):
    e = error(buy(**fields))
    assert (e.field, e.message) == (named, message)


def test_qty_pct_and_risk_pct_together_are_a_contradiction():
    e = error({"action": "sell", "symbol": "X", "qty_pct": 5, "risk_pct": 1, "sl": 110})
    assert (e.field, e.message) == (
        "risk_pct",
        "qty_pct and risk_pct both given; give only one of qty, qty_pct or risk_pct",
    )


def test_quantity_and_contracts_are_qty():
    data = {"action": "buy", "symbol": "X", "quantity": "2"}
    assert parse_signal(data).qty == D("2")
    assert parse_signal({**data, "contracts": 2, "qty": "2.0"}).qty == D("2")


def test_qty_aliases_that_disagree_are_refused():
    e = error(buy(contracts="1"))
    assert (e.field, e.message) == (
        "contracts",
        "qty 0.5 and contracts 1 disagree; give the quantity once",
    )


def test_risk_pct_needs_a_stop_loss():
    e = error({"action": "buy", "symbol": "X", "risk_pct": "1", "price": "100"})
    assert (e.field, e.message) == ("sl", "risk_pct needs a stop loss: give sl or sl_distance")


def test_risk_pct_is_at_most_100():
    e = error({"action": "buy", "symbol": "X", "risk_pct": "150", "sl": "90"})
    assert (e.field, e.message) == ("risk_pct", "at most 100 (percent of equity), not 150")
    assert parse_signal({"action": "buy", "symbol": "X", "risk_pct": "100", "sl": "90"})


def test_each_size_is_kept():
    assert parse_signal({"action": "buy", "symbol": "X", "qty_pct": "2.5"}).qty_pct == D("2.5")
    signal = parse_signal({"action": "sell", "symbol": "X", "risk_pct": "0.5", "sl": "110"})
    assert (signal.risk_pct, signal.sl, signal.qty, signal.qty_pct) == (
        D("0.5"),
        D("110"),
        None,
        None,
    )


# -- order type and price --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "order_type"),
    [("market", OrderType.MARKET), ("LIMIT", OrderType.LIMIT), (" Stop ", OrderType.STOP)],
)
def test_order_types(text, order_type):
    signal = parse_signal(buy(order_type=text, price="100"))
    assert (signal.order_type, signal.price) == (order_type, D("100"))


def test_market_is_the_default_and_its_price_is_optional():
    signal = parse_signal(buy())
    assert (signal.order_type, signal.price) == (OrderType.MARKET, None)


def test_an_unknown_order_type_is_refused():
    e = error(buy(order_type="trailing"))
    assert (e.field, e.message) == ("order_type", "must be market, limit or stop, not 'trailing'")


@pytest.mark.parametrize("order_type", ["limit", "stop"])
def test_limit_and_stop_orders_need_a_price(order_type):
    e = error(buy(order_type=order_type))
    assert (e.field, e.message) == ("price", f"a {order_type} order needs a price")


# -- stop loss and take profit ---------------------------------------------------------


def test_sl_and_tp_as_prices():
    signal = parse_signal(buy(price="100", sl="95", tp="110"))
    assert (signal.sl, signal.tp, signal.sl_distance, signal.tp_distance) == (
        D("95"),
        D("110"),
        None,
        None,
    )


@pytest.mark.parametrize(
    ("action", "sl", "tp"),
    [("buy", D("97.5"), D("110")), ("sell", D("102.5"), D("90"))],
)
def test_distances_are_resolved_against_the_alert_price(action, sl, tp):
    signal = parse_signal(buy(action=action, price="100", sl_distance="2.5", tp_distance="10"))
    assert (signal.sl, signal.tp, signal.sl_distance, signal.tp_distance) == (sl, tp, None, None)


def test_distances_without_a_price_are_kept_as_distances():
    signal = parse_signal(buy(sl_distance="2.5", tp_distance="10"))
    assert (signal.sl, signal.tp, signal.sl_distance, signal.tp_distance) == (
        None,
        None,
        D("2.5"),
        D("10"),
    )


@pytest.mark.parametrize("name", ["sl", "tp"])
def test_a_level_and_its_distance_together_are_a_contradiction(name):
    e = error(buy(**{name: "100", f"{name}_distance": "5"}))
    assert e.field == f"{name}_distance"
    assert e.message == (
        f"give {name} (a price) or {name}_distance (a distance from the price), not both"
    )


@pytest.mark.parametrize(
    ("fields", "named", "message"),
    [
        (
            buy(price="100", sl="105"),
            "sl",
            "a buy's stop loss must be below the price 100, not 105",
        ),
        (
            buy(price="100", sl="100"),
            "sl",
            "a buy's stop loss must be below the price 100, not 100",
        ),
        (
            buy(price="100", tp="95"),
            "tp",
            "a buy's take profit must be above the price 100, not 95",
        ),
        (
            buy(action="sell", price="100", sl="95"),
            "sl",
            "a sell's stop loss must be above the price 100, not 95",
        ),
        (
            buy(action="sell", price="100", tp="105"),
            "tp",
            "a sell's take profit must be below the price 100, not 105",
        ),
        (
            buy(order_type="limit", price="100", sl="101"),
            "sl",
            "a buy's stop loss must be below the price 100, not 101",
        ),
        (
            buy(sl="95", tp="90"),
            "tp",
            "a buy's take profit must be above its stop loss 95, not 90",
        ),
        (
            buy(action="sell", sl="95", tp="100"),
            "tp",
            "a sell's take profit must be below its stop loss 95, not 100",
        ),
        (
            buy(price="100", sl_distance="100"),
            "sl_distance",
            "a stop loss 100 below the price 100 would be at or below 0",
        ),
        (
            buy(action="sell", price="100", tp_distance="150"),
            "tp_distance",
            "a take profit 150 below the price 100 would be at or below 0",
        ),
    ],
)
def test_levels_on_the_wrong_side_are_refused(fields, named, message):
    e = error(fields)
    assert (e.field, e.message) == (named, message)


@pytest.mark.parametrize("name", ["sl_pips", "sl_points", "stop_loss", "sl_pct"])
def test_stop_loss_fields_of_other_schemes_are_refused_not_ignored(name):
    e = error(buy(**{name: "20"}))
    assert (e.field, e.message) == (
        name,
        "not supported; give sl (a price) or sl_distance (a distance from the price, "
        "in price units)",
    )


@pytest.mark.parametrize("name", ["tp_pips", "take_profit", "tp_percent"])
def test_take_profit_fields_of_other_schemes_are_refused_not_ignored(name):
    e = error(buy(**{name: "20"}))
    assert e.field == name
    assert e.message.startswith("not supported; give tp (a price) or tp_distance")


# -- alert id and comment -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [("abc-1", "abc-1"), (42, "42"), (1.5, "1.5"), ("  x ", "x"), ("", None), (0, "0")],
)
def test_alert_id_is_text_or_a_number(value, text):
    assert parse_signal(buy(alert_id=value)).alert_id == text


@pytest.mark.parametrize(("value", "described"), [(True, "true"), ([1], "a list")])
def test_an_alert_id_of_another_kind_is_refused(value, described):
    e = error(buy(alert_id=value))
    assert (e.field, e.message) == ("alert_id", f"must be text or a number, not {described}")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), D("sNaN")])
def test_an_alert_id_that_is_not_a_finite_number_is_refused(value):
    e = error(buy(alert_id=value))
    assert (e.field, e.message) == ("alert_id", f"must be text or a finite number, not {value}")


def test_alert_id_and_comment_lengths():
    assert parse_signal(buy(alert_id="a" * 100, comment="c" * 200)).comment == "c" * 200
    e = error(buy(alert_id="a" * 101))
    assert (e.field, e.message) == ("alert_id", "at most 100 characters, not 101")
    e = error(buy(comment="c" * 201))
    assert (e.field, e.message) == ("comment", "at most 200 characters, not 201")


def test_a_comment_must_be_text():
    e = error(buy(comment=5))
    assert (e.field, e.message) == ("comment", "must be text, not 5")


# -- closing payloads ----------------------------------------------------------------------


def test_close_needs_a_symbol():
    e = error({"action": "close"})
    assert (e.field, e.message) == (
        "symbol",
        "close needs a symbol (or ticker); close_all and flat close every symbol",
    )


@pytest.mark.parametrize("action", ["close_all", "flat"])
def test_close_all_and_flat_need_no_symbol(action):
    signal = parse_signal({"action": action})
    assert (signal.action.value, signal.symbol) == (action, None)


def test_close_with_qty_is_a_partial_close():
    signal = parse_signal({"action": "close", "ticker": "BTCUSDT", "qty": "0.2", "price": "101"})
    assert signal == Signal(SignalAction.CLOSE, "BTCUSDT", qty=D("0.2"), price=D("101"))


@pytest.mark.parametrize("action", ["close_all", "flat"])
def test_close_all_and_flat_take_no_qty(action):
    e = error({"action": action, "qty": "1"})
    assert (e.field, e.message) == (
        "qty",
        f"{action} closes whole positions; use close with qty for a partial close",
    )


@pytest.mark.parametrize("name", ["qty_pct", "risk_pct"])
def test_closes_take_no_percent_size(name):
    e = error({"action": "close", "symbol": "X", name: "50"})
    assert (e.field, e.message) == (name, f"close takes qty (the quantity to close), not {name}")


def test_closes_are_market_orders():
    e = error({"action": "flat", "order_type": "limit", "price": "100"})
    assert (e.field, e.message) == (
        "order_type",
        "flat closes at market; limit and stop orders are for buy and sell",
    )
    assert parse_signal({"action": "close", "symbol": "X", "order_type": "market"})


def test_closes_ignore_stop_levels():
    signal = parse_signal({"action": "close", "symbol": "X", "sl": "1", "tp_pips": "5"})
    assert (signal.sl, signal.tp) == (None, None)


# -- events: opening ------------------------------------------------------------------------


def test_a_market_buy_opens_a_position_at_the_alert_price():
    result = run(buy(price="100", sl="95", tp="110"), price="101")
    assert result == [
        EventDraft(
            OPEN, "sig-9", "BTCUSDT", Side.BUY, D("0.5"), D("100"), TS, sl=D("95"), tp=D("110")
        )
    ]


def test_without_an_alert_price_the_market_price_is_the_entry():
    (event,) = drafts(run(buy(action="sell"), price="101.5"))
    assert (event.kind, event.side, event.price, event.volume) == (
        OPEN,
        Side.SELL,
        D("101.5"),
        D("0.5"),
    )


def test_no_price_at_all_is_a_rejection():
    result = run(buy())
    assert reason(result) == (
        "price: no price is known for BTCUSDT; send a price with the alert, "
        'e.g. "price": "{{close}}"'
    )


def test_distances_resolve_against_the_market_price_when_the_alert_has_none():
    (event,) = drafts(run(buy(action="sell", sl_distance="5", tp_distance="20"), price="200"))
    assert (event.sl, event.tp) == (D("205"), D("180"))


def test_levels_on_the_wrong_side_of_the_market_price_are_a_rejection():
    assert reason(run(buy(sl="105"), price="100")) == (
        "sl: a buy's stop loss must be below the market price 100, not 105"
    )
    assert reason(run(buy(tp="99"), price="100")) == (
        "tp: a buy's take profit must be above the market price 100, not 99"
    )


@pytest.mark.parametrize("order_type", [OrderType.LIMIT, OrderType.STOP])
def test_a_limit_or_stop_order_is_placed_at_its_price(order_type):
    signal = buy(order_type=order_type.value, price="95", sl_distance="5")
    result = run(signal, [pos("S1", Side.SELL, "1")], price="100")
    # Nothing is closed now: the short stays until the order fills.
    assert result == [
        EventDraft(
            PLACED, "sig-9", "BTCUSDT", Side.BUY, D("0.5"), D("95"), TS, order_type, sl=D("90")
        )
    ]


def test_the_drafts_become_master_events():
    (draft,) = drafts(run(buy(price="100", sl="95"), price="100"))
    event = draft.to_event("signal:4", 12, master_equity=D("10000"), contract_size=D("1"))
    assert event == MasterEvent(
        source="signal:4",
        seq=12,
        kind=OPEN,
        master_ref="sig-9",
        symbol="BTCUSDT",
        side=Side.BUY,
        volume=D("0.5"),
        price=D("100"),
        ts_event_ms=TS,
        sl=D("95"),
        master_equity=D("10000"),
        contract_size=D("1"),
    )
    assert MasterEvent.from_wire(event.to_wire()) == event


# -- events: sizing -------------------------------------------------------------------------


def test_qty_pct_is_a_share_of_equity_as_notional():
    # 5% of 10000 = 500 notional; at 25000 per BTC that is 0.02 BTC.
    signal = {"action": "buy", "symbol": "BTCUSDT", "qty_pct": "5", "price": "25000"}
    (event,) = drafts(run(signal))
    assert event.volume == D("0.02")
    # A contract of 100 units (gold): 10% of 10000 = 1000 at 2000 * 100 → 0.005 lots.
    gold = {"action": "buy", "symbol": "XAUUSD", "qty_pct": "10"}
    (event,) = drafts(run(gold, contract_size="100", price="2000"))
    assert event.volume == D("0.005")


def test_risk_pct_loses_that_share_of_equity_at_the_stop():
    # 1% of 10000 = 100 lost over a 500 move: 0.2 BTC.
    signal = {"action": "buy", "symbol": "BTCUSDT", "risk_pct": "1", "sl": "24500"}
    (event,) = drafts(run(signal, price="25000"))
    assert (event.volume, event.sl) == (D("0.2"), D("24500"))
    # A sell with the stop as a distance: 2% of 5000 = 100 over 4 * 100 per lot → 0.25.
    signal = {"action": "sell", "symbol": "XAUUSD", "risk_pct": "2", "sl_distance": "4"}
    (event,) = drafts(run(signal, equity="5000", contract_size="100", price="2000"))
    assert (event.volume, event.sl) == (D("0.25"), D("2004"))


def test_a_computed_volume_is_cut_down_to_8_decimals():
    # 1% of 1000 = 10 at 30000: 0.000333333... BTC.
    signal = {"action": "buy", "symbol": "BTCUSDT", "qty_pct": "1"}
    (event,) = drafts(run(signal, equity="1000", price="30000"))
    assert event.volume == D("0.00033333")
    # 2/3 would round up to ...67; it is cut to ...66.
    signal = {"action": "buy", "symbol": "BTCUSDT", "qty_pct": "2"}
    (event,) = drafts(run(signal, equity="100", price="3"))
    assert event.volume == D("0.66666666")


def test_percent_sizing_without_a_price_is_a_rejection():
    signal = {"action": "buy", "symbol": "ETHUSDT", "qty_pct": "5"}
    assert reason(run(signal)).startswith("price: no price is known for ETHUSDT")


def test_a_volume_that_comes_to_nothing_is_a_rejection():
    signal = {"action": "buy", "symbol": "BTCUSDT", "qty_pct": "0.0001", "price": "60000"}
    assert reason(run(signal, equity="10")) == (
        "qty_pct: 0.0001% of equity 10 at 60000 comes to less than 0.00000001 lots"
    )
    assert reason(run(signal, equity="0")) == (
        "qty_pct: the source's equity is 0, so there is nothing to size"
    )


def test_a_contract_size_of_zero_is_a_rejection_not_a_crash():
    signal = {"action": "buy", "symbol": "BTCUSDT", "qty_pct": "1", "price": "100"}
    assert reason(run(signal, contract_size="0")) == (
        "contract_size: must be greater than 0 to size by qty_pct, not 0"
    )


# -- events: one-way book ------------------------------------------------------------------


def test_a_strategy_exit_sell_of_the_long_quantity_closes_it():
    longs = [pos("L1", Side.BUY, "1")]
    result = run(buy(action="sell", qty="1"), longs, price="21000")
    assert shape(result) == [(CLOSED, "L1", "buy", D("1"), None)]
    assert drafts(result)[0].price == D("21000")


def test_a_strategy_reversal_closes_the_short_and_opens_the_rest_long():
    shorts = [pos("S1", Side.SELL, "0.3"), pos("S2", Side.SELL, "0.2")]
    result = run(buy(qty="0.8", sl="90"), shorts, price="100")
    assert shape(result) == [
        (CLOSED, "S1", "sell", D("0.3"), None),
        (CLOSED, "S2", "sell", D("0.2"), None),
        (OPEN, "sig-9", "buy", D("0.3"), None),
    ]
    opened = drafts(result)[-1]
    assert (opened.sl, opened.price) == (D("90"), D("100"))
    assert all(e.price == D("100") and e.ts_ms == TS for e in drafts(result))


def test_a_smaller_opposite_quantity_reduces_oldest_first():
    longs = [pos("L1", Side.BUY, "0.5"), pos("L2", Side.BUY, "0.5")]
    result = run(buy(action="sell", qty="0.7"), longs, price="100")
    assert shape(result) == [
        (CLOSED, "L1", "buy", D("0.5"), None),
        (PARTIAL, "L2", "buy", D("0.2"), D("0.3")),
    ]


def test_percent_sizing_reverses_in_full_then_opens_the_computed_size():
    shorts = [pos("S1", Side.SELL, "3")]
    signal = {"action": "buy", "symbol": "BTCUSDT", "qty_pct": "10", "price": "100"}
    result = run(signal, shorts)
    assert shape(result) == [
        (CLOSED, "S1", "sell", D("3"), None),
        (OPEN, "sig-9", "buy", D("10"), None),
    ]


def test_positions_of_other_symbols_are_left_alone():
    others = [pos("E1", Side.SELL, "1", symbol="ETHUSDT")]
    assert shape(run(buy(), others, price="100")) == [(OPEN, "sig-9", "buy", D("0.5"), None)]


def test_a_buy_when_already_long_is_refused_without_pyramiding():
    longs = [pos("L1", Side.BUY, "0.25", symbol="BTCUSD"), pos("L2", Side.BUY, "0.25", "BTCUSD")]
    result = run(buy(symbol="BTCUSD"), longs, price="100")
    assert reason(result) == "already long 0.5 BTCUSD; pyramiding is off for this source"
    shorts = [pos("S1", Side.SELL, "2", symbol="XAUUSD")]
    result = run(buy(action="sell", symbol="XAUUSD"), shorts, price="100")
    assert reason(result) == "already short 2 XAUUSD; pyramiding is off for this source"


def test_a_pending_buy_when_already_long_is_refused_too():
    longs = [pos("L1", Side.BUY, "1")]
    result = run(buy(order_type="limit", price="90"), longs)
    assert reason(result) == "already long 1 BTCUSDT; pyramiding is off for this source"


def test_pyramiding_allowed_or_the_check_off_adds_a_position():
    longs = [pos("L1", Side.BUY, "1")]
    for options in ({"allow_pyramiding": True}, {"position_aware": False}):
        result = run(buy(), longs, price="100", **options)
        assert shape(result) == [(OPEN, "sig-9", "buy", D("0.5"), None)]


# -- events: closing ------------------------------------------------------------------------


def test_close_closes_every_position_of_the_symbol():
    book = [
        pos("L1", Side.BUY, "0.5"),
        pos("E1", Side.BUY, "1", symbol="ETHUSDT"),
        pos("L2", Side.BUY, "0.25"),
    ]
    result = run({"action": "close", "symbol": "BTCUSDT", "price": "22000"}, book)
    assert shape(result) == [
        (CLOSED, "L1", "buy", D("0.5"), None),
        (CLOSED, "L2", "buy", D("0.25"), None),
    ]
    assert {e.price for e in drafts(result)} == {D("22000")}


def test_a_partial_close_takes_the_oldest_first():
    book = [pos("L1", Side.BUY, "0.5"), pos("L2", Side.BUY, "0.5"), pos("L3", Side.BUY, "1")]
    result = run({"action": "exit", "symbol": "BTCUSDT", "qty": "0.75"}, book, price="100")
    assert shape(result) == [
        (CLOSED, "L1", "buy", D("0.5"), None),
        (PARTIAL, "L2", "buy", D("0.25"), D("0.25")),
    ]


def test_a_partial_close_of_more_than_is_open_closes_everything():
    book = [pos("S1", Side.SELL, "0.5")]
    result = run({"action": "close", "symbol": "BTCUSDT", "qty": "2"}, book, price="100")
    assert shape(result) == [(CLOSED, "S1", "sell", D("0.5"), None)]


def test_a_close_without_any_price_uses_the_positions_own_price():
    book = [pos("L1", Side.BUY, "0.5", price="19500"), pos("L2", Side.BUY, "1", price="20500")]
    result = run({"action": "close", "symbol": "BTCUSDT"}, book)
    assert [e.price for e in drafts(result)] == [D("19500"), D("20500")]


@pytest.mark.parametrize("action", ["close_all", "flat"])
def test_close_all_and_flat_close_every_position_of_the_source(action):
    book = [
        pos("L1", Side.BUY, "0.5"),
        pos("E1", Side.SELL, "1", symbol="ETHUSDT"),
        pos("X1", Side.BUY, "2", symbol="XAUUSD"),
    ]
    result = run({"action": action}, book, price="100")
    assert shape(result) == [
        (CLOSED, "L1", "buy", D("0.5"), None),
        (CLOSED, "E1", "sell", D("1"), None),
        (CLOSED, "X1", "buy", D("2"), None),
    ]


@pytest.mark.parametrize("action", ["close_all", "flat"])
def test_close_all_and_flat_with_a_symbol_close_that_symbol(action):
    book = [pos("L1", Side.BUY, "0.5"), pos("E1", Side.SELL, "1", symbol="ETHUSDT")]
    result = run({"action": action, "ticker": "ETHUSDT"}, book, price="100")
    assert shape(result) == [(CLOSED, "E1", "sell", D("1"), None)]


def test_nothing_to_close_is_a_rejection():
    book = [pos("E1", Side.SELL, "1", symbol="ETHUSDT")]
    assert reason(run({"action": "close", "symbol": "BTCUSDT"}, book)) == (
        "nothing to close: the source has no BTCUSDT position"
    )
    assert reason(run({"action": "flat"}, [])) == (
        "nothing to close: the source has no open position"
    )
