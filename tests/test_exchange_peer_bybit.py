"""The real `ccxt.async_support.bybit` (ccxt 4.5.90) against the local Bybit v5 peer.

No mocks: ccxt signs and sends real HTTP requests to `tests/exchange_peer/bybit.py`, which
checks the signature, key, permissions and receive window the way Bybit does and answers
in Bybit's envelope (HTTP 200, the outcome in `retCode`). These tests pin what ccxt sends
and which ccxt exception each Bybit answer becomes, so the product's connector can rely
on it:

  Bybit answer (retCode retMsg)                          ccxt 4.5.90 raises
  10003 API key is invalid.                              AuthenticationError
  10004 error sign! origin_string[...]                   AuthenticationError
  10002 invalid request, please check your server        InvalidNonce (a NetworkError!)
        timestamp or recv_window param ...
  10005 Permission denied, please check your API key     PermissionDenied (an
        permissions.                                     AuthenticationError)
  10001 position idx not match position mode (any        BadRequest
        10001 parameter error)
  110007 ab not enough for new order                     InsufficientFunds
  110017 current position is zero, cannot fix            InvalidOrder
         reduce-only order qty / ReduceOnly rule not
         satisified.
  110072 OrderLinkedID is duplicate                      InvalidOrder
  110094 Order does not meet minimum order value         InvalidOrder
  110001 order not exists or too late to cancel          OrderNotFound
  110043 Set leverage not modified                       BadRequest (not NoChange!)
  110013 cannot set leverage ... by risk limit           BadRequest
  110025 Position mode is not modified                   NoChange (an OperationRejected)
  110024 You have an existing position, so position      BadRequest
         mode cannot be switched
  set-margin-mode to the current mode                    no error: retCode 0 "Request
                                                         accepted" (110026 is not used
                                                         by the UTA endpoint)
  3400045 Set margin mode failed (positions or orders)   ExchangeError
  10016 Internal System Error.                           ExchangeError (exactly)
  10016 Request timeout, please try again later          RequestTimeout (matched on text)
  10006 Too many visits!                                 RateLimitExceeded
  HTTP 403 (gateway IP rate limit, text body)            RateLimitExceeded
  170131 Insufficient balance. (spot)                    InsufficientFunds
  fetch_order(None, symbol, {"clientOrderId": ...})      ArgumentsRequired before any
                                                         request; with acknowledged=True
                                                         OrderNotFound (see below)
  options fetchMarkets.types ["swap"]                    ExchangeError before any request

Surprises pinned below: ccxt sends a missing order id as the literal `orderId=None`, so
fetch_order / fetch_open_order / fetch_closed_order cannot look an order up by client
id; `fetch_open_orders(symbol, params={"orderLinkId": ...})` can, and returns the order
whatever its status. `fetch_open_order(id)` returns closed orders too.
`cancel_order(None, symbol, {"orderLinkId": ...})` does work (ccxt leaves a None id out
there). With `hedged=True`, ccxt drops `reduceOnly` and relies on `positionIdx`; without
it, an order in hedge mode is refused (10001). `fetch_balance`'s free USDT is the wallet
minus position and order margin: unrealised P&L is not in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from http.client import HTTPConnection
from typing import Any

import ccxt  # type: ignore[import-untyped]
import pytest

from tests.exchange_peer.bybit import BybitPeer, bybit_client

KEY = "bybit-peer-key-1"
SECRET = "bybit-peer-secret-1"
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


@pytest.fixture
def peer() -> Iterator[BybitPeer]:
    peer = BybitPeer()
    peer.add_key(KEY, SECRET, "10000")
    peer.start()
    yield peer
    peer.stop()


def drive(
    peer: BybitPeer,
    scenario: Callable[[Any], Awaitable[Any]],
    key: str = KEY,
    secret: str = SECRET,
    **options: Any,
) -> Any:
    """Run `scenario(exchange)` with a fresh ccxt client on its own event loop."""

    async def main() -> Any:
        exchange = bybit_client(peer, key, secret, **options)
        try:
            return await scenario(exchange)
        finally:
            await exchange.close()

    return asyncio.run(main())


def raised(
    peer: BybitPeer,
    scenario: Callable[[Any], Awaitable[Any]],
    key: str = KEY,
    secret: str = SECRET,
    **options: Any,
) -> BaseException:
    with pytest.raises(ccxt.BaseError) as info:
        drive(peer, scenario, key, secret, **options)
    error: BaseException = info.value
    return error


def ret_code(error: BaseException) -> int:
    """The retCode in the Bybit answer ccxt quotes in its message."""
    body = str(error).split(" ", 1)[1]
    code: int = json.loads(body)["retCode"]
    return code


def last_body(peer: BybitPeer, path: str) -> dict[str, Any]:
    request = peer.requests_to(path, "POST")[-1]
    body: dict[str, Any] = json.loads(request.body)
    return body


# ----- markets ------------------------------------------------------------------------


def test_load_markets_reads_linear_instruments(peer: BybitPeer) -> None:
    markets = drive(peer, lambda ex: ex.load_markets())

    btc = markets[BTC]
    assert (btc["id"], btc["type"], btc["linear"], btc["settle"]) == (
        "BTCUSDT",
        "swap",
        True,
        "USDT",
    )
    assert btc["contractSize"] == 1.0
    assert btc["precision"] == {"amount": 0.001, "price": 0.1}
    assert btc["limits"]["amount"] == {"min": 0.001, "max": 1190.0}
    assert btc["limits"]["price"] == {"min": 0.1, "max": 1999999.8}
    assert btc["limits"]["cost"] == {"min": 5.0, "max": None}  # minNotionalValue
    assert btc["limits"]["leverage"] == {"min": 1.0, "max": 100.0}
    assert markets[ETH]["precision"] == {"amount": 0.01, "price": 0.01}
    assert "BTC/USDT" not in markets  # spot not asked for
    # Two public instrument lists (Trading and PreLaunch), both unsigned, limit 1000 ...
    info = peer.requests_to("/v5/market/instruments-info")
    assert sorted(r.query_string for r in info) == [
        "category=linear&limit=1000",
        "category=linear&limit=1000&status=PreLaunch",
    ]
    assert all(r.api_key is None for r in info)
    # ... and, because a key is set, the signed coin list: options["fetchCurrencies"] = False
    # does not stop ccxt's bybit (a bad key therefore fails load_markets already).
    (coins,) = peer.requests_to("/v5/asset/coin/query-info")
    assert coins.api_key == KEY and coins.ret_code == 0


def test_markets_load_without_credentials(peer: BybitPeer) -> None:
    markets = drive(peer, lambda ex: ex.load_markets(), key="", secret="")
    assert BTC in markets
    assert {r.path for r in peer.requests} == {"/v5/market/instruments-info"}


def test_spot_markets_when_asked_for(peer: BybitPeer) -> None:
    markets = drive(peer, lambda ex: ex.load_markets(), fetchMarkets={"types": ["linear", "spot"]})
    spot = markets["BTC/USDT"]
    assert (spot["id"], spot["spot"], spot["contractSize"]) == ("BTCUSDT", True, None)
    assert spot["precision"] == {"amount": 0.000001, "price": 0.1}
    assert spot["limits"]["amount"] == {"min": 0.000048, "max": 71.73956243}
    assert spot["limits"]["cost"] == {"min": 1.0, "max": 4000000.0}
    assert BTC in markets


def test_swap_is_not_a_market_type_for_bybit_fetch_markets(peer: BybitPeer) -> None:
    """ccxt's bybit knows spot, linear, inverse and option; "swap" raises before any request."""
    error = raised(peer, lambda ex: ex.load_markets(), fetchMarkets={"types": ["swap"]})
    assert type(error) is ccxt.ExchangeError
    assert 'fetchMarkets "swap" is not a supported market type' in str(error)
    assert [r.path for r in peer.requests] == ["/v5/asset/coin/query-info"]


# ----- balance, key, signature ----------------------------------------------------------


def test_fetch_balance_detects_the_unified_account_then_reads_the_wallet(
    peer: BybitPeer,
) -> None:
    async def scenario(ex: Any) -> Any:
        first = await ex.fetch_balance()
        second = await ex.fetch_balance()
        return first, second, ex.options["enableUnifiedAccount"], ex.options["unifiedMarginStatus"]

    first, second, uta, status = drive(peer, scenario)

    assert first["USDT"] == {"free": 10000.0, "used": 0.0, "total": 10000.0, "debt": 0.0}
    assert second["USDT"]["total"] == 10000.0
    assert (uta, status) == (True, 5)
    # query-api and account/info once (ccxt caches the answer), wallet-balance per call.
    assert len(peer.requests_to("/v5/user/query-api")) == 1
    assert len(peer.requests_to("/v5/account/info")) == 1
    wallets = peer.requests_to("/v5/account/wallet-balance", "GET")
    assert [r.query_string for r in wallets] == ["accountType=UNIFIED"] * 2
    headers = wallets[0].headers
    assert headers["X-BAPI-API-KEY"] == KEY
    assert headers["X-BAPI-RECV-WINDOW"] == "5000"
    origin = headers["X-BAPI-TIMESTAMP"] + KEY + "5000" + "accountType=UNIFIED"
    assert (
        headers["X-BAPI-SIGN"]
        == hmac.new(SECRET.encode(), origin.encode(), hashlib.sha256).hexdigest()
    )
    # availableToWithdraw is "" on UTA (deprecated by Bybit): ccxt derives free = total - used.
    coin = wallets[0].response["result"]["list"][0]["coin"][0]
    assert (coin["coin"], coin["availableToWithdraw"], coin["walletBalance"]) == (
        "USDT",
        "",
        "10000",
    )


def test_query_api_reports_permissions_and_read_only(peer: BybitPeer) -> None:
    peer.add_key("ro-key", "ro-secret", "50", read_only=True)
    info = drive(peer, lambda ex: ex.privateGetV5UserQueryApi(), "ro-key", "ro-secret")
    result = info["result"]
    assert result["readOnly"] == 1
    assert result["permissions"]["ContractTrade"] == ["Order", "Position"]
    assert result["permissions"]["Spot"] == ["SpotTrade"]
    assert (result["uta"], result["unified"], result["apiKey"]) == (1, 0, "ro-key")


def test_the_peer_verifies_the_signature_over_the_exact_query_and_body(
    peer: BybitPeer,
) -> None:
    port = int(peer.base_url.rsplit(":", 1)[1])

    def call(method: str, path_query: str, body: str, payload: str, ts: int) -> dict[str, Any]:
        sign = hmac.new(
            SECRET.encode(), f"{ts}{KEY}5000{payload}".encode(), hashlib.sha256
        ).hexdigest()
        conn = HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request(
                method,
                path_query,
                body=body or None,
                headers={
                    "X-BAPI-API-KEY": KEY,
                    "X-BAPI-TIMESTAMP": str(ts),
                    "X-BAPI-RECV-WINDOW": "5000",
                    "X-BAPI-SIGN": sign,
                    "Content-Type": "application/json",
                },
            )
            response = conn.getresponse()
            assert response.status == 200  # Bybit answers errors with HTTP 200 too
            answer: dict[str, Any] = json.loads(response.read())
            return answer
        finally:
            conn.close()

    now = int(time.time() * 1000)
    query = "category=linear&symbol=BTCUSDT"
    assert call("GET", f"/v5/position/list?{query}", "", query, now)["retCode"] == 0
    reordered = "symbol=BTCUSDT&category=linear"
    assert call("GET", f"/v5/position/list?{reordered}", "", query, now)["retCode"] == 10004
    body = '{"category":"linear","symbol":"BTCUSDT","buyLeverage":"3","sellLeverage":"3"}'
    spaced = body.replace(",", ", ")  # same JSON, other bytes: the signature no longer fits
    assert call("POST", "/v5/position/set-leverage", spaced, body, now)["retCode"] == 10004
    assert call("POST", "/v5/position/set-leverage", body, body, now)["retCode"] == 0
    assert call("GET", f"/v5/position/list?{query}", "", query, now - 6000)["retCode"] == 10002
    assert call("GET", f"/v5/position/list?{query}", "", query, now + 2000)["retCode"] == 10002


def test_unknown_key_raises_authentication_error(peer: BybitPeer) -> None:
    error = raised(peer, lambda ex: ex.fetch_balance(), key="nobody")
    assert type(error) is ccxt.AuthenticationError
    assert ret_code(error) == 10003
    assert "API key is invalid." in str(error)


def test_wrong_secret_raises_authentication_error(peer: BybitPeer) -> None:
    error = raised(peer, lambda ex: ex.fetch_balance(), secret="not-the-secret")
    assert type(error) is ccxt.AuthenticationError
    assert ret_code(error) == 10004
    # It already fails in load_markets, on the signed coin list.
    assert [r.path for r in peer.requests if r.api_key] == ["/v5/asset/coin/query-info"]


def test_clock_outside_the_receive_window_raises_invalid_nonce(peer: BybitPeer) -> None:
    peer.clock_skew_ms = 20_000  # our clock is 20 s behind Bybit's; recv_window is 5 s
    error = raised(peer, lambda ex: ex.fetch_balance())
    assert type(error) is ccxt.InvalidNonce
    assert isinstance(error, ccxt.NetworkError)  # careful: generic NetworkError retries catch it
    assert ret_code(error) == 10002

    async def adjusted(ex: Any) -> Any:
        await ex.load_time_difference()  # GET /v5/market/time; nonce() = now - difference
        return await ex.fetch_balance()

    assert drive(peer, adjusted)["USDT"]["total"] == 10000.0
    peer.clock_skew_ms = -3_000  # our clock 3 s ahead: Bybit allows only 1 s into the future
    assert type(raised(peer, lambda ex: ex.fetch_balance())) is ccxt.InvalidNonce


def test_read_only_key_can_read_but_not_trade(peer: BybitPeer) -> None:
    peer.add_key("ro-key", "ro-secret", "5000", read_only=True)
    assert drive(peer, lambda ex: ex.fetch_balance(), "ro-key", "ro-secret")["USDT"]["total"] == (
        5000.0
    )
    error = raised(
        peer, lambda ex: ex.create_order(BTC, "market", "buy", 0.01), "ro-key", "ro-secret"
    )
    assert type(error) is ccxt.PermissionDenied
    assert isinstance(error, ccxt.AuthenticationError)
    assert ret_code(error) == 10005
    assert peer.orders("ro-key") == []


def test_a_key_without_contract_permission_cannot_set_leverage(peer: BybitPeer) -> None:
    peer.add_key("spot-only", "so-secret", "5000", permissions={"ContractTrade": []})
    error = raised(peer, lambda ex: ex.set_leverage(3, BTC), "spot-only", "so-secret")
    assert type(error) is ccxt.PermissionDenied


# ----- leverage, margin mode, position mode ---------------------------------------------


def test_leverage_and_its_not_modified_answer(peer: BybitPeer) -> None:
    answer = drive(peer, lambda ex: ex.set_leverage(5, BTC))
    assert answer["retCode"] == 0  # ccxt returns Bybit's raw envelope
    assert last_body(peer, "/v5/position/set-leverage") == {
        "symbol": "BTCUSDT",
        "buyLeverage": "5",
        "sellLeverage": "5",
        "category": "linear",
    }
    same = raised(peer, lambda ex: ex.set_leverage(5, BTC))
    assert type(same) is ccxt.BadRequest  # 110043: ccxt maps it to BadRequest, not NoChange
    assert ret_code(same) == 110043
    too_high = raised(peer, lambda ex: ex.set_leverage(101, BTC))
    assert type(too_high) is ccxt.BadRequest and ret_code(too_high) == 110013
    positions = drive(peer, lambda ex: ex.fetch_positions([BTC]))
    assert [p["leverage"] for p in positions] == [5.0]


def test_margin_mode_is_account_wide_and_idempotent(peer: BybitPeer) -> None:
    async def scenario(ex: Any) -> Any:
        first = await ex.set_margin_mode("isolated", BTC)
        again = await ex.set_margin_mode("isolated", BTC)
        mode = await ex.fetch_margin_mode(ETH)
        return first, again, mode

    first, again, mode = drive(peer, scenario)
    assert first["retMsg"] == again["retMsg"] == "Request accepted"
    assert again["result"] == {"reasons": []}
    assert mode["marginMode"] == "isolated"
    assert [json.loads(r.body) for r in peer.requests_to("/v5/account/set-margin-mode")] == [
        {"setMarginMode": "ISOLATED_MARGIN"}
    ] * 2

    drive(peer, lambda ex: ex.create_order(BTC, "market", "buy", 0.01))
    busy = raised(peer, lambda ex: ex.set_margin_mode("cross", BTC))
    assert type(busy) is ccxt.ExchangeError and ret_code(busy) == 3400045


def test_position_mode_switch_and_its_not_modified_answer(peer: BybitPeer) -> None:
    drive(peer, lambda ex: ex.set_position_mode(True, BTC))
    assert last_body(peer, "/v5/position/switch-mode") == {
        "mode": 3,
        "symbol": "BTCUSDT",
        "category": "linear",
    }
    same = raised(peer, lambda ex: ex.set_position_mode(True, BTC))
    assert type(same) is ccxt.NoChange and ret_code(same) == 110025
    # Without a symbol ccxt switches the whole settle coin.
    drive(peer, lambda ex: ex.set_position_mode(True))
    assert last_body(peer, "/v5/position/switch-mode") == {
        "mode": 3,
        "coin": "USDT",
        "category": "linear",
    }
    positions = drive(peer, lambda ex: ex.fetch_positions([ETH]))
    assert [(p["info"]["positionIdx"], p["hedged"]) for p in positions] == [(1, True), (2, True)]
    # ccxt has no fetch_position_mode for bybit.
    assert type(raised(peer, lambda ex: ex.fetch_position_mode(BTC))) is ccxt.NotSupported


# ----- orders and positions -------------------------------------------------------------


def test_market_open_partial_and_full_close_realise_pnl_into_the_wallet(
    peer: BybitPeer,
) -> None:
    async def open_(ex: Any) -> Any:
        await ex.set_leverage(5, BTC)
        order = await ex.create_order(BTC, "market", "buy", 0.1, None, {"clientOrderId": "TS-open"})
        return order, await ex.fetch_positions([BTC]), await ex.fetch_balance()

    order, positions, balance = drive(peer, open_)
    # The create answer is only {orderId, orderLinkId}: no status, no fill.
    assert order["clientOrderId"] == "TS-open" and order["id"]
    assert (order["status"], order["filled"]) == (None, None)
    assert last_body(peer, "/v5/order/create") == {
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Market",
        "orderLinkId": "TS-open",
        "category": "linear",
        "qty": "0.1",
    }
    (long,) = positions
    assert (long["side"], long["contracts"], long["entryPrice"], long["leverage"]) == (
        "long",
        0.1,
        60000.0,
        5.0,
    )
    assert (long["initialMargin"], long["hedged"]) == (1200.0, False)
    assert balance["USDT"] == {"free": 8800.0, "used": 1200.0, "total": 10000.0, "debt": 0.0}

    peer.set_price("BTCUSDT", "61000")

    async def reduce(ex: Any) -> Any:
        await ex.create_order(
            BTC, "market", "sell", 0.04, None, {"clientOrderId": "TS-reduce", "reduceOnly": True}
        )
        return await ex.fetch_positions([BTC]), await ex.fetch_balance()

    (long,), balance = drive(peer, reduce)
    assert last_body(peer, "/v5/order/create")["reduceOnly"] is True
    assert (long["contracts"], long["entryPrice"]) == (0.06, 60000.0)
    assert (long["realizedPnl"], long["unrealizedPnl"]) == (40.0, 60.0)
    assert peer.balance(KEY)["USDT"] == Decimal("10040")
    # free = wallet - position IM (0.06 * 60000 / 5): the 60 USDT of unrealised P&L is only
    # in Bybit's equity, which ccxt does not use.
    assert balance["USDT"] == {"free": 9320.0, "used": 720.0, "total": 10040.0, "debt": 0.0}
    assert balance["info"]["result"]["list"][0]["coin"][0]["equity"] == "10100"

    peer.set_price("BTCUSDT", "59000")

    async def close(ex: Any) -> Any:
        await ex.create_order(
            BTC, "market", "sell", 0.06, None, {"clientOrderId": "TS-close", "reduceOnly": True}
        )
        return (
            await ex.fetch_positions([BTC]),
            await ex.fetch_positions(),
            await ex.fetch_balance(),
            await ex.fetch_my_trades(BTC),
        )

    by_symbol, open_positions, balance, trades = drive(peer, close)
    assert [p["contracts"] for p in by_symbol] == [0.0]  # with a symbol Bybit lists it flat
    assert open_positions == []  # by settle coin only sizes > 0
    assert peer.positions(KEY) == []
    assert balance["USDT"] == {"free": 9980.0, "used": 0.0, "total": 9980.0, "debt": 0.0}
    assert peer.balance(KEY)["USDT"] == Decimal("9980")  # 10000 + 40 - 60
    assert sorted((t["side"], t["amount"], t["price"]) for t in trades) == [
        ("buy", 0.1, 60000.0),
        ("sell", 0.04, 61000.0),
        ("sell", 0.06, 59000.0),
    ]
    assert {t["info"]["orderLinkId"] for t in trades} == {"TS-open", "TS-reduce", "TS-close"}


def test_adding_to_a_position_averages_the_entry_price(peer: BybitPeer) -> None:
    async def scenario(ex: Any) -> Any:
        await ex.create_order(BTC, "market", "buy", 0.1)
        peer.set_price("BTCUSDT", "62000")
        await ex.create_order(BTC, "market", "buy", 0.3)
        return await ex.fetch_positions([BTC])

    (long,) = drive(peer, scenario)
    assert (long["contracts"], long["entryPrice"]) == (0.4, 61500.0)
    assert long["unrealizedPnl"] == 200.0  # (62000 - 61500) * 0.4


def test_reduce_only_that_cannot_reduce_is_rejected(peer: BybitPeer) -> None:
    flat = raised(
        peer, lambda ex: ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    )
    assert type(flat) is ccxt.InvalidOrder and ret_code(flat) == 110017
    assert "current position is zero, cannot fix reduce-only order qty" in str(flat)

    drive(peer, lambda ex: ex.create_order(BTC, "market", "buy", 0.05))
    same_side = raised(
        peer, lambda ex: ex.create_order(BTC, "market", "buy", 0.01, None, {"reduceOnly": True})
    )
    assert type(same_side) is ccxt.InvalidOrder and ret_code(same_side) == 110017
    assert [p.size for p in peer.positions(KEY)] == [Decimal("0.05")]


def test_reduce_only_beyond_the_position_is_cut_or_rejected(peer: BybitPeer) -> None:
    drive(peer, lambda ex: ex.create_order(BTC, "market", "buy", 0.05))

    # Bybit "fixes" the reduce-only quantity to the position: it closes, never flips.
    async def overshoot(ex: Any) -> Any:
        placed = await ex.create_order(
            BTC, "market", "sell", 0.08, None, {"reduceOnly": True, "clientOrderId": "TS-x"}
        )
        (found,) = await ex.fetch_open_orders(BTC, params={"orderLinkId": "TS-x"})
        return placed, found

    _placed, found = drive(peer, overshoot)
    assert (found["amount"], found["filled"], found["status"]) == (0.05, 0.05, "closed")
    assert peer.positions(KEY) == []

    peer.reduce_only_excess = "reject"
    drive(peer, lambda ex: ex.create_order(BTC, "market", "buy", 0.05))
    error = raised(
        peer, lambda ex: ex.create_order(BTC, "market", "sell", 0.08, None, {"reduceOnly": True})
    )
    assert type(error) is ccxt.InvalidOrder and ret_code(error) == 110017

    # Without reduceOnly the same sell flips the one-way position.
    drive(peer, lambda ex: ex.create_order(BTC, "market", "sell", 0.08))
    (short,) = peer.positions(KEY)
    assert (short.side, short.size, short.position_idx) == ("Sell", Decimal("0.03"), 0)


def test_hedge_mode_holds_long_and_short_at_once(peer: BybitPeer) -> None:
    async def scenario(ex: Any) -> Any:
        await ex.set_position_mode(True, BTC)
        await ex.create_order(BTC, "market", "buy", 0.02, None, {"hedged": True})
        long_body = last_body(peer, "/v5/order/create")
        await ex.create_order(BTC, "market", "sell", 0.03, None, {"hedged": True})
        short_body = last_body(peer, "/v5/order/create")
        both = await ex.fetch_positions([BTC])
        # Closing the long: ccxt drops reduceOnly and sends Sell on positionIdx 1.
        await ex.create_order(
            BTC, "market", "sell", 0.02, None, {"hedged": True, "reduceOnly": True}
        )
        close_body = last_body(peer, "/v5/order/create")
        return long_body, short_body, both, close_body

    long_body, short_body, both, close_body = drive(peer, scenario)
    assert (long_body["side"], long_body["positionIdx"]) == ("Buy", 1)
    assert (short_body["side"], short_body["positionIdx"]) == ("Sell", 2)
    assert sorted((p["side"], p["contracts"], p["hedged"]) for p in both) == [
        ("long", 0.02, True),
        ("short", 0.03, True),
    ]
    assert (close_body["side"], close_body["positionIdx"]) == ("Sell", 1)
    assert "reduceOnly" not in close_body
    assert [(p.side, p.size, p.position_idx) for p in peer.positions(KEY)] == [
        ("Sell", Decimal("0.03"), 2)
    ]

    # An order without positionIdx does not fit hedge mode; a switch with positions is refused.
    no_idx = raised(peer, lambda ex: ex.create_order(BTC, "market", "buy", 0.01))
    assert type(no_idx) is ccxt.BadRequest and ret_code(no_idx) == 10001
    assert "position idx not match position mode" in str(no_idx)
    back = raised(peer, lambda ex: ex.set_position_mode(False, BTC))
    assert type(back) is ccxt.BadRequest and ret_code(back) == 110024


def test_looking_an_order_up_by_client_order_id(peer: BybitPeer) -> None:
    placed = drive(
        peer,
        lambda ex: ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "TS-f"}),
    )

    # The product's way (fetch_order with clientOrderId) does not work on bybit:
    needs_ack = raised(peer, lambda ex: ex.fetch_order(None, BTC, {"clientOrderId": "TS-f"}))
    assert type(needs_ack) is ccxt.ArgumentsRequired
    assert peer.requests_to("/v5/order/realtime") == []
    not_found = raised(
        peer, lambda ex: ex.fetch_order(None, BTC, {"clientOrderId": "TS-f", "acknowledged": True})
    )
    assert type(not_found) is ccxt.OrderNotFound
    (request,) = peer.requests_to("/v5/order/realtime")
    # ccxt sends the missing id as "None" and does not rename clientOrderId.
    assert request.params["orderId"] == "None"
    assert request.params["clientOrderId"] == "TS-f"
    assert "orderLinkId" not in request.params
    by_link = raised(peer, lambda ex: ex.fetch_open_order(None, BTC, {"orderLinkId": "TS-f"}))
    assert type(by_link) is ccxt.OrderNotFound  # orderId=None wins over orderLinkId

    # What works: the order lists with orderLinkId (any status on realtime).
    async def lookups(ex: Any) -> Any:
        realtime = await ex.fetch_open_orders(BTC, params={"orderLinkId": "TS-f"})
        history = await ex.fetch_canceled_and_closed_orders(BTC, params={"orderLinkId": "TS-f"})
        by_id = await ex.fetch_open_order(placed["id"], BTC)
        closed = await ex.fetch_closed_order(placed["id"], BTC)
        return realtime, history, by_id, closed

    realtime, history, by_id, closed = drive(peer, lookups)
    for found in (*realtime, *history, by_id, closed):
        assert (found["id"], found["clientOrderId"]) == (placed["id"], "TS-f")
        assert (found["status"], found["filled"], found["average"]) == ("closed", 0.01, 60000.0)
    assert len(realtime) == len(history) == 1
    # fetch_open_order returned a filled order: Bybit ignores openOnly when given an id.


def test_a_client_order_id_can_never_be_used_twice(peer: BybitPeer) -> None:
    drive(
        peer,
        lambda ex: ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "TS-d"}),
    )
    error = raised(
        peer,
        lambda ex: ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "TS-d"}),
    )
    assert type(error) is ccxt.InvalidOrder
    assert ret_code(error) == 110072 and "OrderLinkedID is duplicate" in str(error)
    assert len(peer.orders(KEY)) == 1
    assert [p.size for p in peer.positions(KEY)] == [Decimal("0.01")]


def test_insufficient_margin_and_minimum_order_value(peer: BybitPeer) -> None:
    # 10000 USDT at leverage 10 opens at most 100000 USDT of notional: 1.7 BTC is 102000.
    error = raised(peer, lambda ex: ex.create_order(BTC, "market", "buy", 1.7))
    assert type(error) is ccxt.InsufficientFunds and ret_code(error) == 110007
    assert peer.orders(KEY) == []
    assert drive(peer, lambda ex: ex.create_order(BTC, "market", "buy", 1.6))["id"]
    # 400 USDT left: 2 ETH (600 of margin) is too much ...
    more = raised(peer, lambda ex: ex.create_order(ETH, "market", "buy", 2))
    assert type(more) is ccxt.InsufficientFunds
    # ... but a reduce-only close needs no margin.
    drive(peer, lambda ex: ex.create_order(BTC, "market", "sell", 1.6, None, {"reduceOnly": True}))
    assert peer.positions(KEY) == []

    peer.set_price("ETHUSDT", "100")  # 0.01 ETH is now 1 USDT, below minNotionalValue 5
    tiny = raised(peer, lambda ex: ex.create_order(ETH, "market", "buy", 0.01))
    assert type(tiny) is ccxt.InvalidOrder and ret_code(tiny) == 110094


def test_limit_order_rests_reserves_margin_and_fills_when_crossed(peer: BybitPeer) -> None:
    async def place(ex: Any) -> Any:
        await ex.create_order(BTC, "limit", "buy", 0.1, 59000, {"clientOrderId": "TS-l"})
        await ex.create_order(BTC, "limit", "buy", 0.1, 58000, {"clientOrderId": "TS-c"})
        return await ex.fetch_open_orders(BTC), await ex.fetch_balance()

    open_orders, balance = drive(peer, place)
    assert sorted((o["clientOrderId"], o["price"], o["status"]) for o in open_orders) == [
        ("TS-c", 58000.0, "open"),
        ("TS-l", 59000.0, "open"),
    ]
    assert balance["USDT"]["used"] == 1170.0  # order IM: (5900 + 5800) / 10

    peer.set_price("BTCUSDT", "58900")  # crosses TS-l only

    async def after(ex: Any) -> Any:
        (filled,) = await ex.fetch_open_orders(BTC, params={"orderLinkId": "TS-l"})
        cancelled = await ex.cancel_order(None, BTC, {"orderLinkId": "TS-c"})
        trades = await ex.fetch_my_trades(BTC)
        return filled, cancelled, trades, await ex.fetch_open_orders(BTC)

    filled, cancelled, trades, still_open = drive(peer, after)
    assert (filled["status"], filled["average"]) == ("closed", 59000.0)  # at its limit price
    assert cancelled["clientOrderId"] == "TS-c"
    assert [(t["price"], t["takerOrMaker"]) for t in trades] == [(59000.0, "maker")]
    assert still_open == []
    (long,) = peer.positions(KEY)
    assert (long.size, long.avg_price) == (Decimal("0.1"), Decimal("59000"))

    gone = raised(peer, lambda ex: ex.cancel_order(None, BTC, {"orderLinkId": "TS-l"}))
    assert type(gone) is ccxt.OrderNotFound and ret_code(gone) == 110001


def test_trading_fees_are_charged_to_the_wallet(peer: BybitPeer) -> None:
    peer.taker_fee_rate = Decimal("0.00055")

    async def scenario(ex: Any) -> Any:
        await ex.create_order(BTC, "market", "buy", 0.1, None, {"clientOrderId": "TS-fee"})
        peer.set_price("BTCUSDT", "61000")
        await ex.create_order(BTC, "market", "sell", 0.1, None, {"reduceOnly": True})
        return await ex.fetch_my_trades(BTC), await ex.fetch_open_orders(
            BTC, params={"orderLinkId": "TS-fee"}
        )

    trades, (order,) = drive(peer, scenario)
    assert sorted(t["fee"]["cost"] for t in trades) == [3.3, 3.355]
    assert {t["fee"]["currency"] for t in trades} == {"USDT"}
    assert order["fee"] == {"cost": 3.3, "currency": "USDT"}
    assert peer.balance(KEY)["USDT"] == Decimal("10000") + 100 - Decimal("6.655")


# ----- failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, None, ccxt.ExchangeError),  # 10016 Internal System Error.
        (
            200,
            {"retCode": 10016, "retMsg": "Request timeout, please try again later"},
            ccxt.RequestTimeout,
        ),
        (200, {"retCode": 10006, "retMsg": "Too many visits!"}, ccxt.RateLimitExceeded),
        (403, None, ccxt.RateLimitExceeded),  # the gateway's IP limit, a text body
    ],
)
def test_system_and_rate_limit_answers(
    peer: BybitPeer, status: int, body: dict[str, Any] | None, expected: type
) -> None:
    if body is not None:
        body = {**body, "result": {}, "retExtInfo": {}, "time": int(time.time() * 1000)}
    peer.fail_next(status=status, body=body, path_prefix="/v5/account/wallet-balance")
    error = raised(peer, lambda ex: ex.fetch_balance())
    assert type(error) is expected
    assert drive(peer, lambda ex: ex.fetch_balance())["USDT"]["total"] == 10000.0


# ----- spot -----------------------------------------------------------------------------


def test_spot_orders_move_the_unified_wallet(peer: BybitPeer) -> None:
    options = {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}

    async def scenario(ex: Any) -> Any:
        await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "TS-s1"})
        buy_body = last_body(peer, "/v5/order/create")
        await ex.create_order("BTC/USDT", "limit", "sell", 0.004, 65000, {"clientOrderId": "TS-s2"})
        return buy_body, await ex.fetch_balance(), await ex.fetch_open_orders("BTC/USDT")

    buy_body, balance, open_orders = drive(peer, scenario, **options)
    assert (buy_body["category"], buy_body["marketUnit"], buy_body["qty"]) == (
        "spot",
        "baseCoin",
        "0.01",
    )
    assert balance["USDT"]["total"] == 9400.0
    assert balance["BTC"] == {"free": 0.006, "used": 0.004, "total": 0.01, "debt": 0.0}
    assert [(o["clientOrderId"], o["side"], o["status"]) for o in open_orders] == [
        ("TS-s2", "sell", "open")
    ]

    (resting,) = open_orders
    cancelled = drive(peer, lambda ex: ex.cancel_order(resting["id"], "BTC/USDT"), **options)
    assert cancelled["id"] == resting["id"]
    assert last_body(peer, "/v5/order/cancel") == {
        "symbol": "BTCUSDT",
        "orderFilter": "Order",
        "orderId": resting["id"],
        "category": "spot",
    }
    assert drive(peer, lambda ex: ex.fetch_balance(), **options)["BTC"]["free"] == 0.01

    poor = raised(peer, lambda ex: ex.create_order("BTC/USDT", "market", "buy", 1), **options)
    assert type(poor) is ccxt.InsufficientFunds and ret_code(poor) == 170131
