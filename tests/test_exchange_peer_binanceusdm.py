"""The real `ccxt.async_support.binanceusdm` (ccxt 4.5.90) against the local USDⓈ-M peer.

No mocks: ccxt signs and sends real HTTP requests to `tests/exchange_peer/binance_futures.py`,
which checks the signature the way Binance does and answers in fapi's wire format.

Which ccxt exception a Binance answer becomes depends on the URL it came from:
`binance.handle_errors` picks its per-market table ("linear": -2019, -2022, -4164,
-4116, -5021, -5022, ...) only when the URL starts with `https://fapi.binance.com/`
(or the demo/testnet hosts). Through the peer, and through any proxy or `api_host`
in front of Binance (the product's `CCXT_API_HOSTS`), only the common table is used,
and several order refusals fall through to a bare ExchangeError. Both columns are
pinned below: the first by driving ccxt against the peer, the second by handing the
peer's very answer to ccxt's own `handle_errors` with Binance's URL (`at_binance`).

  Binance answer                                   via the peer / a proxy   from fapi.binance.com
  401 -2015 Invalid API-key, IP, or permissions    AuthenticationError      AuthenticationError
        (also after successful fapi calls: the spot DDoSProtection quirk needs /api/v3)
  400 -1022 Signature for this request is not ...  AuthenticationError      AuthenticationError
  400 -1021 Timestamp ... outside of the recvWindow InvalidNonce             InvalidNonce
  400 -2019 Margin is insufficient.                ExchangeError (!)        InsufficientFunds
  400 -2022 ReduceOnly Order is rejected.          ExchangeError (!)        InvalidOrder
  400 -4164 Order's notional must be no smaller .. ExchangeError (!)        InvalidOrder
  400 -4116 clientOrderId is duplicated.           ExchangeError (!)        InvalidOrder
  400 -5022 Post Only order will be rejected       InvalidOrder             OrderNotFillable
  400 -4061 Order's position side does not match   OperationRejected        OperationRejected
  400 -1106 Parameter 'reduceonly' sent when ...   BadRequest               BadRequest
  400 -4046 No need to change margin type.         MarginModeAlreadySet     MarginModeAlreadySet
        (an OperationRejected; set_margin_mode raises it by default and returns the body
        only with options.setMarginMode.throwMarginModeAlreadySet = False)
  400 -4059 No need to change position side.       OperationRejected        OperationRejected
  400 -4047/-4048 margin type ... open orders/pos. OperationRejected        OperationRejected
  400 -4067/-4068 position side ... orders/pos.    OperationRejected        OperationRejected
  400 -4028 Leverage N is not valid                BadRequest               BadRequest
  (set_leverage outside 1..125)                    BadRequest from ccxt itself, nothing sent
  400 -1111 Precision is over the maximum ...      BadRequest               BadRequest
  400 -4014 / -4005 tick size / max quantity       BadRequest               BadRequest
  400 -2013 Order does not exist.                  OrderNotFound            OrderNotFound
  400 -2011 Unknown order sent.                    OrderNotFound            OrderNotFound
  503 {"code":-1001,...}                           OperationFailed          OperationFailed

Also pinned: ccxt's default fetch_positions (GET /fapi/v3/positionRisk) has no
leverage (None) and derives marginMode from `isolatedMargin` != 0; `useV2` gives both.
`fetchMarkets: {"types": ["swap"]}` is refused by ccxt before any request: its
market families are spot, linear, inverse and option (our market type "swap" is
ccxt's "linear").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import ccxt  # type: ignore[import-untyped]
import pytest

from tests.exchange_peer.binance import ReceivedRequest
from tests.exchange_peer.binance_futures import BinanceUsdmPeer, binanceusdm_client

KEY = "usdm-test-key-1"
SECRET = "usdm-test-secret-1"
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
CLIENT_ID = "TS" + "0123456789abcdef01234567"  # our ids: TS + 24 hex digits


@pytest.fixture
def peer() -> Iterator[BinanceUsdmPeer]:
    peer = BinanceUsdmPeer()
    peer.add_key(KEY, SECRET, "10000")
    peer.start()
    yield peer
    peer.stop()


def drive(
    peer: BinanceUsdmPeer,
    scenario: Callable[[Any], Awaitable[Any]],
    key: str = KEY,
    secret: str = SECRET,
    **options: Any,
) -> Any:
    """Run `scenario(exchange)` with a fresh ccxt client on its own event loop."""

    async def main() -> Any:
        exchange = binanceusdm_client(peer, key, secret, **options)
        try:
            return await scenario(exchange)
        finally:
            await exchange.close()

    return asyncio.run(main())


def raised(
    peer: BinanceUsdmPeer,
    scenario: Callable[[Any], Awaitable[Any]],
    key: str = KEY,
    secret: str = SECRET,
    **options: Any,
) -> BaseException:
    with pytest.raises(ccxt.BaseError) as info:
        drive(peer, scenario, key, secret, **options)
    error: BaseException = info.value
    return error


def at_binance(request: ReceivedRequest) -> type[BaseException]:
    """The ccxt class for the peer's answer `request` had it come from fapi.binance.com."""
    exchange = ccxt.binanceusdm()
    with pytest.raises(ccxt.BaseError) as info:
        exchange.handle_errors(
            request.status,
            "Bad Request",
            "https://fapi.binance.com" + request.path,
            request.method,
            {},
            json.dumps(request.response),
            request.response,
            {},
            None,
        )
    return type(info.value)


def last_refusal(peer: BinanceUsdmPeer, code: int) -> ReceivedRequest:
    request = peer.requests[-1]
    assert request.status in (400, 401), request.response
    assert request.response["code"] == code, request.response
    return request


def order(
    symbol: str, side: str, amount: float, price: float | None = None, **params: Any
) -> Callable[[Any], Awaitable[Any]]:
    kind = "market" if price is None else "limit"
    return lambda ex: ex.create_order(symbol, kind, side, amount, price, params)


# ----- markets, balance, time -------------------------------------------------------------


def test_load_markets_reads_fapi_exchange_info(peer: BinanceUsdmPeer) -> None:
    markets = drive(peer, lambda ex: ex.load_markets())

    assert set(markets) == {BTC, ETH, "DOGE/USDT:USDT"}
    btc = markets[BTC]
    assert (btc["id"], btc["type"], btc["swap"], btc["linear"], btc["contract"]) == (
        "BTCUSDT",
        "swap",
        True,
        True,
        True,
    )
    assert (btc["settle"], btc["contractSize"], btc["expiry"]) == ("USDT", 1.0, None)
    assert btc["precision"]["amount"] == 0.001  # LOT_SIZE stepSize
    assert btc["precision"]["price"] == 0.1  # PRICE_FILTER tickSize
    assert btc["limits"]["amount"] == {"min": 0.001, "max": 1000.0}
    assert btc["limits"]["market"] == {"min": 0.001, "max": 120.0}  # MARKET_LOT_SIZE
    assert btc["limits"]["price"] == {"min": 556.8, "max": 4529764.0}
    assert btc["limits"]["cost"] == {"min": 100.0, "max": None}  # MIN_NOTIONAL "notional"
    assert btc["marginModes"] == {"cross": True, "isolated": True}
    doge = markets["DOGE/USDT:USDT"]
    assert (doge["precision"]["amount"], doge["precision"]["price"]) == (1.0, 0.00001)
    assert markets[ETH]["limits"]["cost"]["min"] == 20.0
    # One unsigned request: no sapi currencies, no margin pairs, no key sent.
    assert [(r.method, r.path, r.api_key) for r in peer.requests] == [
        ("GET", "/fapi/v1/exchangeInfo", None)
    ]


def test_market_type_swap_is_not_a_fetch_markets_type_for_ccxt_binance(
    peer: BinanceUsdmPeer,
) -> None:
    """ccxt's fetchMarkets types are families (spot, linear, inverse, option), not "swap"."""
    error = raised(peer, lambda ex: ex.load_markets(), fetchMarkets={"types": ["swap"]})

    assert type(error) is ccxt.ExchangeError
    assert 'fetchMarkets "swap" is not a supported market type' in str(error)
    assert peer.requests == []
    # ccxt's own default for binanceusdm is ["linear"], which is what the client helper sets.
    assert ccxt.binanceusdm().options["fetchMarkets"]["types"] == ["linear"]


def test_fetch_balance_reads_the_v3_account_and_fetch_time(peer: BinanceUsdmPeer) -> None:
    async def scenario(ex: Any) -> Any:
        return await ex.fetch_balance(), await ex.fetch_time()

    balance, server_time = drive(peer, scenario)

    assert balance["USDT"] == {"free": 10000.0, "used": 0.0, "total": 10000.0}
    assert isinstance(server_time, int)
    assert [r.path for r in peer.requests] == [
        "/fapi/v1/exchangeInfo",
        "/fapi/v3/account",
        "/fapi/v1/time",
    ]
    request = peer.requests_to("/fapi/v3/account")[0]
    assert request.api_key == KEY and request.body == ""
    assert list(request.params) == ["timestamp", "recvWindow", "signature"]
    assert request.params["recvWindow"] == "10000"


# ----- leverage, margin mode, position mode ----------------------------------------------


def test_set_leverage_and_its_bounds(peer: BinanceUsdmPeer) -> None:
    async def scenario(ex: Any) -> Any:
        answer = await ex.set_leverage(10, BTC)
        return answer, await ex.fetch_leverage(BTC)

    answer, leverage = drive(peer, scenario)
    assert answer == {"leverage": 10, "maxNotionalValue": "50000000", "symbol": "BTCUSDT"}
    assert (leverage["longLeverage"], leverage["shortLeverage"]) == (10, 10)
    assert leverage["marginMode"] == "cross"
    assert peer.settings(KEY, "BTCUSDT").leverage == 10
    (post,) = peer.requests_to("/fapi/v1/leverage", "POST")
    assert post.query_string == "" and post.params["leverage"] == "10"
    assert peer.requests_to("/fapi/v1/symbolConfig")  # fetch_leverage reads symbolConfig

    # ccxt refuses 0 and anything above 125 itself: nothing is sent.
    sent = len(peer.requests_to("/fapi/v1/leverage"))
    for bad in (0, 126):
        error = raised(peer, lambda ex, bad=bad: ex.set_leverage(bad, BTC))
        assert type(error) is ccxt.BadRequest
        assert "between 1 and 125" in str(error)
    assert len(peer.requests_to("/fapi/v1/leverage")) == sent

    # Within 1..125 but above the symbol's bracket (ETHUSDT: 100x here): Binance's -4028.
    error = raised(peer, lambda ex: ex.set_leverage(110, ETH))
    assert type(error) is ccxt.BadRequest
    request = last_refusal(peer, -4028)
    assert request.response["msg"] == "Leverage 110 is not valid"
    assert at_binance(request) is ccxt.BadRequest
    assert peer.settings(KEY, "ETHUSDT").leverage == 20  # Binance's default, unchanged


def test_set_margin_mode_and_no_need_to_change(peer: BinanceUsdmPeer) -> None:
    async def scenario(ex: Any) -> Any:
        first = await ex.set_margin_mode("isolated", BTC)
        mode = await ex.fetch_margin_mode(BTC)
        return first, mode

    first, mode = drive(peer, scenario)
    assert first == {"code": 200, "msg": "success"}
    assert mode["marginMode"] == "isolated"
    assert peer.settings(KEY, "BTCUSDT").margin_type == "ISOLATED"
    (post,) = peer.requests_to("/fapi/v1/marginType", "POST")
    assert post.params["marginType"] == "ISOLATED"
    assert peer.requests_to("/fapi/v1/symbolConfig")[0].params["symbol"] == "BTCUSDT"

    # The same mode again: Binance's -4046, which ccxt 4.5.90 raises by default
    # (options.setMarginMode.throwMarginModeAlreadySet is True in binance.describe()).
    error = raised(peer, lambda ex: ex.set_margin_mode("isolated", BTC))
    assert type(error) is ccxt.MarginModeAlreadySet
    assert isinstance(error, ccxt.OperationRejected)
    request = last_refusal(peer, -4046)
    assert request.response["msg"] == "No need to change margin type."
    assert at_binance(request) is ccxt.MarginModeAlreadySet

    # With the option off, ccxt returns the refusal as the answer instead.
    again = drive(
        peer,
        lambda ex: ex.set_margin_mode("isolated", BTC),
        setMarginMode={"throwMarginModeAlreadySet": False},
    )
    assert again == {"code": -4046, "msg": "No need to change margin type."}
    # "cross" is sent as CROSSED.
    assert drive(peer, lambda ex: ex.set_margin_mode("cross", BTC))["code"] == 200
    assert peer.requests_to("/fapi/v1/marginType")[-1].params["marginType"] == "CROSSED"


def test_position_mode_set_and_fetch(peer: BinanceUsdmPeer) -> None:
    async def scenario(ex: Any) -> Any:
        before = await ex.fetch_position_mode()
        answer = await ex.set_position_mode(True)
        after = await ex.fetch_position_mode()
        return before, answer, after

    before, answer, after = drive(peer, scenario)
    assert before["hedged"] is False and before["info"] == {"dualSidePosition": False}
    assert answer == {"code": 200, "msg": "success"}
    assert after["hedged"] is True
    (post,) = peer.requests_to("/fapi/v1/positionSide/dual", "POST")
    assert post.params["dualSidePosition"] == "true"

    error = raised(peer, lambda ex: ex.set_position_mode(True))
    assert type(error) is ccxt.OperationRejected
    request = last_refusal(peer, -4059)
    assert request.response["msg"] == "No need to change position side."
    assert at_binance(request) is ccxt.OperationRejected


def test_modes_cannot_change_while_a_position_or_an_order_is_open(
    peer: BinanceUsdmPeer,
) -> None:
    drive(peer, order(BTC, "buy", 0.01))
    assert peer.position(KEY, "BTCUSDT").amount == Decimal("0.010")

    error = raised(peer, lambda ex: ex.set_margin_mode("isolated", BTC))
    assert type(error) is ccxt.OperationRejected
    assert last_refusal(peer, -4048).response["msg"] == (
        "Margin type cannot be changed if there exists position."
    )
    error = raised(peer, lambda ex: ex.set_position_mode(True))
    assert type(error) is ccxt.OperationRejected
    assert last_refusal(peer, -4068).response["msg"] == (
        "Position side cannot be changed if there exists position."
    )

    # Close the position; a resting limit order blocks both changes as well.
    drive(peer, order(BTC, "sell", 0.01, reduceOnly=True))
    resting = drive(peer, order(BTC, "buy", 0.002, 50000))
    assert resting["status"] == "open"
    error = raised(peer, lambda ex: ex.set_margin_mode("isolated", BTC))
    assert type(error) is ccxt.OperationRejected
    assert last_refusal(peer, -4047).response["msg"] == (
        "Margin type cannot be changed if there exists open orders."
    )
    error = raised(peer, lambda ex: ex.set_position_mode(True))
    assert type(error) is ccxt.OperationRejected
    assert last_refusal(peer, -4067).response["msg"] == (
        "Position side cannot be changed if there exists open orders."
    )
    # Another symbol's margin type is free to change; the position mode is account-wide.
    assert drive(peer, lambda ex: ex.set_margin_mode("isolated", ETH))["code"] == 200

    drive(peer, lambda ex: ex.cancel_order(resting["id"], BTC))
    assert drive(peer, lambda ex: ex.set_margin_mode("isolated", BTC))["code"] == 200
    assert drive(peer, lambda ex: ex.set_position_mode(True))["code"] == 200
    assert peer.hedged(KEY) is True


# ----- one-way trading ---------------------------------------------------------------------


def test_one_way_open_increase_reduce_close_realises_pnl(peer: BinanceUsdmPeer) -> None:
    drive(peer, lambda ex: ex.set_leverage(10, BTC))

    opened = drive(peer, order(BTC, "buy", 0.01, clientOrderId=CLIENT_ID))
    assert (opened["status"], opened["filled"], opened["average"]) == ("closed", 0.01, 60000.0)
    assert (opened["clientOrderId"], opened["reduceOnly"], opened["side"]) == (
        CLIENT_ID,
        False,
        "buy",
    )
    post = peer.requests_to("/fapi/v1/order", "POST")[0]
    assert post.query_string == ""
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert list(post.params) == [
        "timestamp",
        "symbol",
        "side",
        "newClientOrderId",
        "newOrderRespType",
        "type",
        "quantity",
        "recvWindow",
        "signature",
    ]
    assert (post.params["newClientOrderId"], post.params["newOrderRespType"]) == (
        CLIENT_ID,
        "RESULT",
    )
    assert (post.params["side"], post.params["type"], post.params["quantity"]) == (
        "BUY",
        "MARKET",
        "0.01",
    )

    peer.set_price("BTCUSDT", 62000)
    drive(peer, order(BTC, "buy", 0.01))  # increase: entry is the weighted average
    position = peer.position(KEY, "BTCUSDT")
    assert (position.amount, position.entry_price) == (Decimal("0.020"), Decimal(61000))

    async def look(ex: Any) -> Any:
        return await ex.fetch_positions([BTC]), await ex.fetch_balance()

    (pos,), balance = drive(peer, look)
    assert (pos["contracts"], pos["side"], pos["entryPrice"]) == (0.02, "long", 61000.0)
    assert (pos["unrealizedPnl"], pos["markPrice"], pos["notional"]) == (20.0, 62000.0, 1240.0)
    assert (pos["initialMargin"], pos["marginMode"], pos["hedged"]) == (124.0, "cross", False)
    # total = wallet + unrealised PnL, used = initial margin, free = available.
    assert balance["USDT"] == {"free": 9896.0, "used": 124.0, "total": 10020.0}

    peer.set_price("BTCUSDT", 63000)
    partial = drive(peer, order(BTC, "sell", 0.005, reduceOnly=True))
    assert partial["reduceOnly"] is True
    assert peer.requests_to("/fapi/v1/order", "POST")[-1].params["reduceOnly"] == "true"
    assert peer.balance(KEY)["walletBalance"] == Decimal(10010)  # (63000 - 61000) * 0.005
    position = peer.position(KEY, "BTCUSDT")
    assert (position.amount, position.entry_price) == (Decimal("0.015"), Decimal(61000))

    drive(peer, order(BTC, "sell", 0.015, reduceOnly=True))
    assert peer.positions(KEY) == []

    async def after(ex: Any) -> Any:
        positions = await ex.fetch_positions()
        balance = await ex.fetch_balance()
        trades = await ex.fetch_my_trades(BTC)
        return positions, balance, trades

    positions, balance, trades = drive(peer, after)
    assert positions == []
    assert balance["USDT"] == {"free": 10040.0, "used": 0.0, "total": 10040.0}
    assert [(t["side"], t["amount"], t["price"]) for t in trades] == [
        ("buy", 0.01, 60000.0),
        ("buy", 0.01, 62000.0),
        ("sell", 0.005, 63000.0),
        ("sell", 0.015, 63000.0),
    ]
    assert [t["info"]["realizedPnl"] for t in trades] == [
        "0.00000000",
        "0.00000000",
        "10.00000000",
        "30.00000000",
    ]
    assert trades[0]["order"] == opened["id"]
    assert peer.requests_to("/fapi/v1/userTrades")[0].params["symbol"] == "BTCUSDT"


def test_reduce_only_that_would_flip_or_increase_is_rejected(peer: BinanceUsdmPeer) -> None:
    # Nothing to reduce.
    error = raised(peer, order(BTC, "sell", 0.01, reduceOnly=True))
    assert type(error) is ccxt.ExchangeError  # through the peer: ccxt's linear table unused
    request = last_refusal(peer, -2022)
    assert request.response["msg"] == "ReduceOnly Order is rejected."
    assert at_binance(request) is ccxt.InvalidOrder

    drive(peer, order(BTC, "buy", 0.01))
    for scenario in (
        order(BTC, "sell", 0.02, reduceOnly=True),  # would flip to short 0.01
        order(BTC, "buy", 0.01, reduceOnly=True),  # would increase
    ):
        error = raised(peer, scenario)
        assert type(error) is ccxt.ExchangeError
        assert at_binance(last_refusal(peer, -2022)) is ccxt.InvalidOrder
    assert peer.position(KEY, "BTCUSDT").amount == Decimal("0.010")

    # Without reduceOnly the same sell flips the position (one-way mode): close, then open.
    peer.set_price("BTCUSDT", 61000)
    drive(peer, order(BTC, "sell", 0.02))
    position = peer.position(KEY, "BTCUSDT")
    assert (position.amount, position.entry_price) == (Decimal("-0.010"), Decimal(61000))
    assert peer.balance(KEY)["walletBalance"] == Decimal(10010)


def test_min_notional_precision_and_filters(peer: BinanceUsdmPeer) -> None:
    error = raised(peer, order(BTC, "buy", 0.001))  # 60 USDT < 100
    assert type(error) is ccxt.ExchangeError
    request = last_refusal(peer, -4164)
    assert request.response["msg"] == (
        "Order's notional must be no smaller than 100 (unless you choose reduce only)."
    )
    assert at_binance(request) is ccxt.InvalidOrder

    # Reduce-only orders are exempt from MIN_NOTIONAL.
    drive(peer, order(BTC, "buy", 0.002))
    closed = drive(peer, order(BTC, "sell", 0.001, reduceOnly=True))
    assert closed["status"] == "closed"

    # ccxt rounds amounts and prices to the market's precision before sending, so the
    # peer's precision and tick checks are reached through the implicit API only.
    def raw(**params: Any) -> Callable[[Any], Awaitable[Any]]:
        return lambda ex: ex.fapiPrivatePostOrder({"symbol": "BTCUSDT", **params})

    error = raised(peer, raw(side="BUY", type="MARKET", quantity="0.0101"))
    assert type(error) is ccxt.BadRequest
    assert last_refusal(peer, -1111).response["msg"] == (
        "Precision is over the maximum defined for this asset."
    )
    error = raised(
        peer, raw(side="BUY", type="LIMIT", quantity="0.01", price="50000.05", timeInForce="GTC")
    )
    assert type(error) is ccxt.BadRequest  # 2 decimals allowed, but the tick is 0.1
    assert last_refusal(peer, -4014).response["msg"] == "Price not increased by tick size."
    error = raised(peer, order(BTC, "buy", 121))  # MARKET_LOT_SIZE maxQty 120
    assert type(error) is ccxt.BadRequest
    assert last_refusal(peer, -4005).response["msg"] == "Quantity greater than max quantity."
    assert peer.position(KEY, "BTCUSDT").amount == Decimal("0.001")


def test_insufficient_margin(peer: BinanceUsdmPeer) -> None:
    peer.set_balance(KEY, 1000)
    # 0.4 BTC at 60000 = 24000 USDT; at the default 20x that is 1200 of initial margin.
    error = raised(peer, order(BTC, "buy", 0.4))
    assert type(error) is ccxt.ExchangeError  # not InsufficientFunds through the peer
    request = last_refusal(peer, -2019)
    assert request.response["msg"] == "Margin is insufficient."
    assert at_binance(request) is ccxt.InsufficientFunds
    assert peer.orders(KEY) == [] and peer.positions(KEY) == []

    drive(peer, lambda ex: ex.set_leverage(50, BTC))  # 480 of initial margin now
    assert drive(peer, order(BTC, "buy", 0.4))["status"] == "closed"
    assert peer.balance(KEY)["availableBalance"] == Decimal(520)
    # A resting order reserves its initial margin too: 1 ETH at 2900, 20x: 145.
    assert drive(peer, order(ETH, "buy", 1, 2900))["status"] == "open"
    assert peer.balance(KEY)["availableBalance"] == Decimal(375)
    error = raised(peer, order(BTC, "buy", 0.4, 59000))  # needs 472
    assert type(error) is ccxt.ExchangeError
    assert at_binance(last_refusal(peer, -2019)) is ccxt.InsufficientFunds


# ----- hedge mode --------------------------------------------------------------------------


def test_hedge_mode_long_and_short_on_the_same_symbol(peer: BinanceUsdmPeer) -> None:
    drive(peer, lambda ex: ex.set_position_mode(True))

    # Without positionSide (BOTH) in hedge mode: -4061.
    error = raised(peer, order(BTC, "buy", 0.01))
    assert type(error) is ccxt.OperationRejected
    request = last_refusal(peer, -4061)
    assert request.response["msg"] == "Order's position side does not match user's setting."
    assert at_binance(request) is ccxt.OperationRejected

    long = drive(peer, order(BTC, "buy", 0.01, positionSide="LONG"))
    short = drive(peer, order(BTC, "sell", 0.02, positionSide="SHORT"))
    assert (long["info"]["positionSide"], short["info"]["positionSide"]) == ("LONG", "SHORT")
    peer.set_price("BTCUSDT", 61000)

    positions = drive(peer, lambda ex: ex.fetch_positions([BTC]))
    by_side = {p["side"]: p for p in positions}
    assert set(by_side) == {"long", "short"}
    assert (by_side["long"]["contracts"], by_side["long"]["unrealizedPnl"]) == (0.01, 10.0)
    assert (by_side["short"]["contracts"], by_side["short"]["unrealizedPnl"]) == (0.02, -20.0)
    assert by_side["short"]["info"]["positionAmt"] == "-0.020"
    assert all(p["hedged"] is True and p["entryPrice"] == 60000.0 for p in positions)

    # reduceOnly is not accepted in hedge mode (what a one-way close would send).
    error = raised(peer, order(BTC, "sell", 0.01, positionSide="LONG", reduceOnly=True))
    assert type(error) is ccxt.BadRequest
    assert last_refusal(peer, -1106).response["msg"] == (
        "Parameter 'reduceonly' sent when not required."
    )
    # ccxt's `hedged` param: a reduce-only sell becomes SELL + positionSide LONG, no reduceOnly.
    closed = drive(peer, order(BTC, "sell", 0.01, hedged=True, reduceOnly=True))
    assert closed["status"] == "closed"
    post = peer.requests_to("/fapi/v1/order", "POST")[-1]
    assert (post.params["side"], post.params["positionSide"]) == ("SELL", "LONG")
    assert "reduceOnly" not in post.params
    assert peer.position(KEY, "BTCUSDT", "LONG").amount == 0
    assert peer.balance(KEY)["walletBalance"] == Decimal(10010)

    # Closing more than the SHORT holds is refused like a reduce-only order.
    error = raised(peer, order(BTC, "buy", 0.03, positionSide="SHORT"))
    assert type(error) is ccxt.ExchangeError
    assert at_binance(last_refusal(peer, -2022)) is ccxt.InvalidOrder
    assert peer.position(KEY, "BTCUSDT", "SHORT").amount == Decimal("-0.020")
    # And back to one-way is refused while the SHORT is open.
    error = raised(peer, lambda ex: ex.set_position_mode(False))
    assert type(error) is ccxt.OperationRejected
    last_refusal(peer, -4068)


# ----- orders ------------------------------------------------------------------------------


def test_fetch_order_by_client_order_id_cancel_and_open_orders(peer: BinanceUsdmPeer) -> None:
    async def place(ex: Any) -> Any:
        created = await ex.create_order(
            BTC, "limit", "buy", 0.01, 55000, {"clientOrderId": CLIENT_ID}
        )
        found = await ex.fetch_order(None, BTC, {"clientOrderId": CLIENT_ID})
        open_orders = await ex.fetch_open_orders(BTC)
        return created, found, open_orders

    created, found, open_orders = drive(peer, place)
    assert (created["status"], created["price"], created["timeInForce"]) == ("open", 55000.0, "GTC")
    assert (found["id"], found["clientOrderId"], found["status"]) == (
        created["id"],
        CLIENT_ID,
        "open",
    )
    assert [o["id"] for o in open_orders] == [created["id"]]
    (get,) = peer.requests_to("/fapi/v1/order", "GET")
    assert get.params["origClientOrderId"] == CLIENT_ID  # ccxt renames clientOrderId
    assert "orderId" not in get.params and "clientOrderId" not in get.params

    # The same id is refused while that order is open.
    error = raised(peer, order(BTC, "buy", 0.01, 54000, clientOrderId=CLIENT_ID))
    assert type(error) is ccxt.ExchangeError
    request = last_refusal(peer, -4116)
    assert request.response["msg"] == "clientOrderId is duplicated."
    assert at_binance(request) is ccxt.InvalidOrder

    async def cancel(ex: Any) -> Any:
        canceled = await ex.cancel_order(created["id"], BTC)
        again = await ex.fetch_order(None, BTC, {"clientOrderId": CLIENT_ID})
        return canceled, again

    canceled, again = drive(peer, cancel)
    assert canceled["status"] == "canceled" and again["status"] == "canceled"
    assert peer.requests_to("/fapi/v1/order", "DELETE")[0].params["orderId"] == created["id"]

    error = raised(peer, lambda ex: ex.cancel_order(created["id"], BTC))
    assert type(error) is ccxt.OrderNotFound
    assert last_refusal(peer, -2011).response["msg"] == "Unknown order sent."
    error = raised(peer, lambda ex: ex.fetch_order(None, BTC, {"clientOrderId": "TSnope"}))
    assert type(error) is ccxt.OrderNotFound
    assert last_refusal(peer, -2013).response["msg"] == "Order does not exist."

    # A resting order fills at its limit price when the mark crosses it.
    resting = drive(peer, order(BTC, "buy", 0.01, 59000))
    peer.set_price("BTCUSDT", 58500)
    filled = drive(peer, lambda ex: ex.fetch_order(resting["id"], BTC))
    assert (filled["status"], filled["average"], filled["filled"]) == ("closed", 59000.0, 0.01)
    position = peer.position(KEY, "BTCUSDT")
    assert (position.amount, position.entry_price) == (Decimal("0.010"), Decimal(59000))


def test_post_only_that_would_take_is_refused(peer: BinanceUsdmPeer) -> None:
    error = raised(peer, order(BTC, "buy", 0.01, 61000, postOnly=True))
    assert type(error) is ccxt.InvalidOrder
    request = last_refusal(peer, -5022)
    assert request.params["timeInForce"] == "GTX"
    assert at_binance(request) is ccxt.OrderNotFillable


# ----- positions ---------------------------------------------------------------------------


def test_fetch_positions_shapes_v3_and_v2(peer: BinanceUsdmPeer) -> None:
    async def setup(ex: Any) -> Any:
        await ex.set_leverage(5, BTC)
        await ex.set_leverage(10, ETH)
        await ex.set_margin_mode("isolated", ETH)
        await ex.create_order(BTC, "market", "buy", 0.01)
        await ex.create_order(ETH, "market", "sell", 0.1)

    drive(peer, setup)
    peer.set_price("ETHUSDT", 2900)

    async def read(ex: Any) -> Any:
        v3 = await ex.fetch_positions()
        v2 = await ex.fetch_positions(None, {"useV2": True})
        return v3, v2

    v3, v2 = drive(peer, read)
    # ccxt loads the leverage brackets (signed) before reading positions.
    assert peer.requests_to("/fapi/v1/leverageBracket")[0].status == 200
    v3_by_symbol = {p["symbol"]: p for p in v3}
    btc, eth = v3_by_symbol[BTC], v3_by_symbol[ETH]
    assert (btc["contracts"], btc["side"], btc["entryPrice"], btc["contractSize"]) == (
        0.01,
        "long",
        60000.0,
        1.0,
    )
    assert (eth["contracts"], eth["side"], eth["entryPrice"]) == (0.1, "short", 3000.0)
    # v3 has no leverage field: ccxt reports None, and the mode from isolatedMargin != 0.
    assert (btc["leverage"], eth["leverage"]) == (None, None)
    assert (btc["marginMode"], eth["marginMode"]) == ("cross", "isolated")
    assert eth["unrealizedPnl"] == 10.0  # (2900 - 3000) * -0.1
    assert eth["collateral"] == 40.0  # isolated wallet 30 (0.1 * 3000 / 10) + 10 of PnL
    assert btc["maintenanceMarginPercentage"] == 0.004  # from the leverage bracket
    assert peer.requests_to("/fapi/v3/positionRisk")

    v2_by_symbol = {p["symbol"]: p for p in v2}
    assert set(v2_by_symbol) == {BTC, ETH}  # v2 lists every symbol; ccxt drops the empty ones
    assert (v2_by_symbol[BTC]["leverage"], v2_by_symbol[ETH]["leverage"]) == (5, 10)
    assert (v2_by_symbol[BTC]["marginMode"], v2_by_symbol[ETH]["marginMode"]) == (
        "cross",
        "isolated",
    )
    assert len(peer.requests_to("/fapi/v2/positionRisk")[0].response) == 3

    balance = drive(peer, lambda ex: ex.fetch_balance())
    # wallet 10000, unrealised +10; used = 120 (BTC 600/5) + 29 (ETH 290/10).
    assert balance["USDT"]["total"] == 10010.0
    assert balance["USDT"]["used"] == 149.0
    # free = cross wallet 9970 (30 is in ETH's isolated wallet) - BTC's 120.
    assert balance["USDT"]["free"] == 9850.0


def test_a_position_opened_on_the_website_is_seen_and_closed_through_ccxt(
    peer: BinanceUsdmPeer,
) -> None:
    peer.open_position_directly(KEY, "ETHUSDT", "SELL", "0.5")
    peer.set_price("ETHUSDT", 2800)

    (position,) = drive(peer, lambda ex: ex.fetch_positions([ETH]))
    assert (position["side"], position["contracts"], position["unrealizedPnl"]) == (
        "short",
        0.5,
        100.0,
    )
    closed = drive(peer, order(ETH, "buy", 0.5, reduceOnly=True, clientOrderId=CLIENT_ID))
    assert closed["status"] == "closed"
    assert peer.positions(KEY) == []
    assert peer.balance(KEY)["walletBalance"] == Decimal(10100)
    trades = drive(peer, lambda ex: ex.fetch_my_trades(ETH))
    assert [t["info"]["realizedPnl"] for t in trades] == ["0.00000000", "100.00000000"]
    assert peer.orders(KEY)[0].client_order_id.startswith("web_")


# ----- authentication and temporary errors ---------------------------------------------


def test_bad_key_bad_signature_and_clock(peer: BinanceUsdmPeer) -> None:
    error = raised(peer, lambda ex: ex.fetch_balance(), key="nobody")
    assert type(error) is ccxt.AuthenticationError
    request = last_refusal(peer, -2015)
    assert request.status == 401
    assert request.response["msg"] == "Invalid API-key, IP, or permissions for action."
    assert at_binance(request) is ccxt.AuthenticationError

    error = raised(peer, lambda ex: ex.fetch_balance(), secret="not-the-secret")
    assert type(error) is ccxt.AuthenticationError
    request = last_refusal(peer, -1022)
    assert request.response["msg"] == "Signature for this request is not valid."

    error = raised(peer, order(BTC, "buy", 0.01), secret="not-the-secret")
    assert type(error) is ccxt.AuthenticationError
    assert peer.orders(KEY) == []

    peer.clock_skew_ms = 20_000  # recvWindow is 10 s
    error = raised(peer, lambda ex: ex.fetch_balance())
    assert type(error) is ccxt.InvalidNonce
    last_refusal(peer, -1021)
    peer.clock_skew_ms = 0

    # Unlike spot (/api/v3), a fapi success does not make ccxt read -2015 as a ban.
    async def revoked_midway(ex: Any) -> Any:
        await ex.fetch_balance()
        peer.remove_key(KEY)
        await ex.fetch_balance()

    error = raised(peer, revoked_midway)
    assert type(error) is ccxt.AuthenticationError


def test_key_without_futures_permission_cannot_trade(peer: BinanceUsdmPeer) -> None:
    peer.add_key("reader", "reader-secret", "500", enableFutures=False)
    assert drive(peer, lambda ex: ex.fetch_balance(), "reader", "reader-secret")["USDT"][
        "free"
    ] == (500.0)
    error = raised(peer, order(BTC, "buy", 0.01), "reader", "reader-secret")
    assert type(error) is ccxt.AuthenticationError
    assert last_refusal(peer, -2015).status == 401
    assert peer.orders("reader") == []


def test_temporary_errors(peer: BinanceUsdmPeer) -> None:
    peer.fail_next(1, 503, path_prefix="/fapi/v1/order")
    error = raised(peer, order(BTC, "buy", 0.01))
    assert type(error) is ccxt.OperationFailed
    assert peer.orders(KEY) == []
    peer.fail_next(1, 429)
    error = raised(peer, lambda ex: ex.fetch_time())
    assert type(error) is ccxt.DDoSProtection
    assert drive(peer, order(BTC, "buy", 0.01))["status"] == "closed"
