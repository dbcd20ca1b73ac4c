"""The real `ccxt.async_support.binance` (ccxt 4.5.90) against the local Binance spot peer.

No mocks: ccxt signs and sends real HTTP requests to `tests/exchange_peer`, which
checks the signature the way Binance does and answers in Binance's wire format.
These tests pin what ccxt sends and which ccxt exception each Binance error
becomes, so the product's connector can rely on it:

  Binance answer                                         ccxt 4.5.90 raises
  401 -2015 Invalid API-key, IP, or permissions ...      AuthenticationError (exactly), but
                                                         DDoSProtection once any /api/v3 call
                                                         on that exchange object succeeded
  400 -1022 Signature for this request is not valid.     AuthenticationError
  400 -1021 Timestamp ... outside of the recvWindow.     InvalidNonce (a NetworkError!)
  400 -2010 Duplicate order sent.                        InvalidOrder
  400 -2010 Account has insufficient balance ...         InsufficientFunds
  400 -1013 Filter failure: LOT_SIZE, MARKET_LOT_SIZE,   InvalidOrder (ccxt matches the
            PRICE_FILTER                                 substrings LOT_SIZE / PRICE_FILTER)
  400 -1013 Filter failure: NOTIONAL (or MIN_NOTIONAL)   BadRequest (not InvalidOrder)
  400 -2013 Order does not exist.                        OrderNotFound
  400 -2011 Unknown order sent.                          OrderNotFound
  503 {"code":-1001,...}                                 OperationFailed (not a NetworkError)
  503 without a JSON code (text)                         ExchangeNotAvailable
  429 / 418 (any body)                                   DDoSProtection
  connection refused (peer stopped)                      ExchangeNotAvailable (a NetworkError)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import ccxt  # type: ignore[import-untyped]
import pytest

from tests.conftest import wait_for
from tests.exchange_peer.binance import BinanceSpotPeer, binance_client

KEY = "peer-test-key-1"
SECRET = "peer-test-secret-1"
CLIENT_ID = "TS0123456789abcdef"


@pytest.fixture
def peer() -> Iterator[BinanceSpotPeer]:
    peer = BinanceSpotPeer()
    peer.add_key(KEY, SECRET, {"USDT": "10000", "BTC": "0.5"})
    peer.start()
    yield peer
    peer.stop()


def drive(
    peer: BinanceSpotPeer,
    scenario: Callable[[Any], Awaitable[Any]],
    key: str = KEY,
    secret: str = SECRET,
    **options: Any,
) -> Any:
    """Run `scenario(exchange)` with a fresh ccxt client on its own event loop."""

    async def main() -> Any:
        exchange = binance_client(peer, key, secret, **options)
        try:
            return await scenario(exchange)
        finally:
            await exchange.close()

    return asyncio.run(main())


def raised(
    peer: BinanceSpotPeer,
    scenario: Callable[[Any], Awaitable[Any]],
    key: str = KEY,
    secret: str = SECRET,
    **options: Any,
) -> BaseException:
    with pytest.raises(ccxt.BaseError) as info:
        drive(peer, scenario, key, secret, **options)
    error: BaseException = info.value
    return error


def test_load_markets_reads_exchange_info(peer: BinanceSpotPeer) -> None:
    markets = drive(peer, lambda ex: ex.load_markets())

    btc = markets["BTC/USDT"]
    assert btc["id"] == "BTCUSDT"
    assert btc["spot"] is True
    assert btc["active"] is True
    assert btc["precision"]["amount"] == 0.00001  # LOT_SIZE stepSize
    assert btc["precision"]["price"] == 0.01  # PRICE_FILTER tickSize
    assert btc["limits"]["amount"] == {"min": 0.00001, "max": 9000.0}
    assert btc["limits"]["price"] == {"min": 0.01, "max": 1000000.0}
    assert btc["limits"]["cost"] == {"min": 5.0, "max": 9000000.0}  # NOTIONAL
    assert btc["limits"]["market"] == {"min": 0.0, "max": 100.0}  # MARKET_LOT_SIZE
    assert markets["ETH/USDT"]["precision"]["amount"] == 0.0001
    # ccxt asked for spot exchangeInfo, unsigned, plus the two signed margin-pair lists
    # (options["fetchMargins"], on by default, needs a valid key to load markets).
    info = peer.requests_to("/api/v3/exchangeInfo", "GET")
    assert len(info) == 1 and info[0].params == {} and info[0].api_key is None
    assert [r.status for r in peer.requests_to("/sapi/v1/margin/allPairs")] == [200]
    assert [r.status for r in peer.requests_to("/sapi/v1/margin/isolated/allPairs")] == [200]


def test_markets_load_without_credentials_when_margins_are_off(peer: BinanceSpotPeer) -> None:
    markets = drive(peer, lambda ex: ex.load_markets(), key="", secret="", fetchMargins=False)
    assert "BTC/USDT" in markets
    assert [r.path for r in peer.requests] == ["/api/v3/exchangeInfo"]


def test_fetch_balance_with_a_good_key(peer: BinanceSpotPeer) -> None:
    balance = drive(peer, lambda ex: ex.fetch_balance())

    assert balance["USDT"] == {"free": 10000.0, "used": 0.0, "total": 10000.0}
    assert balance["BTC"]["free"] == 0.5
    (request,) = peer.requests_to("/api/v3/account", "GET")
    assert request.status == 200
    assert request.api_key == KEY
    assert request.body == ""
    # GET: everything in the query string, signature last, ccxt's recvWindow is 10000.
    assert list(request.params) == ["timestamp", "recvWindow", "signature"]
    assert request.params["recvWindow"] == "10000"
    assert request.query_string.endswith("&signature=" + request.params["signature"])


def test_the_peer_rejects_a_tampered_query_like_binance(peer: BinanceSpotPeer) -> None:
    """The signature covers the exact query string: reordering it breaks the signature."""
    import hashlib
    import hmac
    import time
    from http.client import HTTPConnection

    query = f"recvWindow=5000&timestamp={int(time.time() * 1000)}"
    good = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()

    def get(q: str) -> tuple[int, bytes]:
        conn = HTTPConnection("127.0.0.1", int(peer.base_url.rsplit(":", 1)[1]), timeout=5)
        try:
            conn.request("GET", f"/api/v3/account?{q}", headers={"X-MBX-APIKEY": KEY})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    assert get(f"{query}&signature={good}")[0] == 200
    reordered = "&".join(reversed(query.split("&")))
    assert get(f"{reordered}&signature={good}") == (
        400,
        b'{"code": -1022, "msg": "Signature for this request is not valid."}',
    )
    old = f"recvWindow=5000&timestamp={int(time.time() * 1000) - 6000}"
    old_sig = hmac.new(SECRET.encode(), old.encode(), hashlib.sha256).hexdigest()
    status, body = get(f"{old}&signature={old_sig}")
    assert (status, b"-1021" in body) == (400, True)


def test_wrong_secret_raises_authentication_error(peer: BinanceSpotPeer) -> None:
    error = raised(peer, lambda ex: ex.fetch_balance(), secret="not-the-secret", fetchMargins=False)

    assert type(error) is ccxt.AuthenticationError
    assert "-1022" in str(error)
    (request,) = peer.requests_to("/api/v3/account")
    assert request.status == 400
    assert request.response == {"code": -1022, "msg": "Signature for this request is not valid."}


def test_unknown_key_raises_authentication_error_not_permission_denied(
    peer: BinanceSpotPeer,
) -> None:
    error = raised(peer, lambda ex: ex.fetch_balance(), key="nobody", fetchMargins=False)

    assert type(error) is ccxt.AuthenticationError  # -2015: exactly this, not PermissionDenied
    (request,) = peer.requests_to("/api/v3/account")
    assert request.status == 401
    assert request.response == {
        "code": -2015,
        "msg": "Invalid API-key, IP, or permissions for action.",
    }


def test_clock_outside_recv_window_raises_invalid_nonce(peer: BinanceSpotPeer) -> None:
    peer.clock_skew_ms = 20_000  # our clock is 20 s behind the exchange's; recvWindow is 10 s
    error = raised(peer, lambda ex: ex.fetch_balance(), fetchMargins=False)

    assert type(error) is ccxt.InvalidNonce
    assert isinstance(error, ccxt.NetworkError)  # careful: generic NetworkError retries catch it
    assert peer.requests_to("/api/v3/account")[0].response["code"] == -1021

    async def adjusted(ex: Any) -> Any:
        await ex.load_time_difference()  # GET /api/v3/time, then nonce() = now - difference
        return await ex.fetch_balance()

    assert drive(peer, adjusted, fetchMargins=False)["USDT"]["free"] == 10000.0


def test_market_order_with_client_order_id_fills_and_moves_balances(
    peer: BinanceSpotPeer,
) -> None:
    async def scenario(ex: Any) -> Any:
        order = await ex.create_order(
            "BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": CLIENT_ID}
        )
        return order, await ex.fetch_balance(), await ex.fetch_my_trades("BTC/USDT")

    order, balance, trades = drive(peer, scenario)

    (request,) = peer.requests_to("/api/v3/order", "POST")
    assert request.query_string == ""  # POST: everything in the urlencoded body
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert list(request.params) == [
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
    assert request.params["newClientOrderId"] == CLIENT_ID
    assert request.params["symbol"] == "BTCUSDT"
    assert (request.params["side"], request.params["type"]) == ("BUY", "MARKET")
    assert request.params["quantity"] == "0.01"
    assert request.params["newOrderRespType"] == "FULL"
    assert request.response["fills"][0]["price"] == "60000.00000000"

    assert order["clientOrderId"] == CLIENT_ID
    assert order["id"] == str(request.response["orderId"])
    assert order["status"] == "closed"
    assert order["filled"] == 0.01
    assert order["cost"] == 600.0
    assert order["average"] == 60000.0

    assert peer.balance(KEY, "BTC") == (Decimal("0.51"), Decimal(0))
    assert peer.balance(KEY, "USDT") == (Decimal("9400"), Decimal(0))
    assert balance["BTC"]["free"] == 0.51
    assert balance["USDT"]["free"] == 9400.0
    assert [(t["order"], t["amount"], t["price"], t["side"]) for t in trades] == [
        (order["id"], 0.01, 60000.0, "buy")
    ]


def test_market_buy_with_a_price_is_sent_as_quote_order_qty(peer: BinanceSpotPeer) -> None:
    order = drive(peer, lambda ex: ex.create_order("BTC/USDT", "market", "buy", 0.01, 50000))

    (request,) = peer.requests_to("/api/v3/order", "POST")
    assert "quantity" not in request.params
    assert request.params["quoteOrderQty"] == "500"  # amount * price, in USDT
    assert request.params["newClientOrderId"].startswith("x-TKT5PX2F")  # ccxt's own id
    assert order["filled"] == pytest.approx(500 / 60000, abs=1e-5)  # filled at the last price


def test_duplicate_client_order_id_of_an_open_order_raises_invalid_order(
    peer: BinanceSpotPeer,
) -> None:
    async def scenario(ex: Any) -> Any:
        first = await ex.create_order(
            "BTC/USDT", "limit", "buy", 0.01, 50000, params={"clientOrderId": CLIENT_ID}
        )
        assert first["status"] == "open"
        await ex.create_order(
            "BTC/USDT", "limit", "buy", 0.01, 50000, params={"clientOrderId": CLIENT_ID}
        )

    error = raised(peer, scenario)

    assert type(error) is ccxt.InvalidOrder
    assert "Duplicate order sent." in str(error)
    second = peer.requests_to("/api/v3/order", "POST")[1]
    assert (second.status, second.response) == (
        400,
        {"code": -2010, "msg": "Duplicate order sent."},
    )
    assert len(peer.orders(KEY)) == 1


def test_binance_accepts_the_client_order_id_of_a_filled_order_again(
    peer: BinanceSpotPeer,
) -> None:
    """Binance: newClientOrderId is "a unique id among open orders". Not an idempotency key."""

    async def twice(ex: Any) -> Any:
        params = {"clientOrderId": CLIENT_ID}
        first = await ex.create_order("BTC/USDT", "market", "buy", 0.01, params=params)
        second = await ex.create_order("BTC/USDT", "market", "buy", 0.01, params=params)
        return first, second

    first, second = drive(peer, twice)
    assert first["id"] != second["id"]
    assert peer.balance(KEY, "BTC")[0] == Decimal("0.52")  # bought twice

    peer.duplicate_client_order_ids = "any"  # the stricter rule, for tests that want it
    error = raised(
        peer,
        lambda ex: ex.create_order(
            "BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": CLIENT_ID}
        ),
    )
    assert type(error) is ccxt.InvalidOrder and "Duplicate order sent." in str(error)


def test_fetch_order_by_client_order_id(peer: BinanceSpotPeer) -> None:
    async def scenario(ex: Any) -> Any:
        created = await ex.create_order(
            "BTC/USDT", "market", "sell", 0.1, params={"clientOrderId": CLIENT_ID}
        )
        by_orig = await ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": CLIENT_ID})
        by_unified = await ex.fetch_order(None, "BTC/USDT", {"clientOrderId": CLIENT_ID})
        by_id = await ex.fetch_order(created["id"], "BTC/USDT")
        return created, by_orig, by_unified, by_id

    created, by_orig, by_unified, by_id = drive(peer, scenario)

    for fetched in (by_orig, by_unified, by_id):
        assert fetched["id"] == created["id"]
        assert fetched["clientOrderId"] == CLIENT_ID
        assert fetched["status"] == "closed"
        assert fetched["filled"] == 0.1
        assert fetched["side"] == "sell"
    gets = peer.requests_to("/api/v3/order", "GET")
    assert gets[0].params["origClientOrderId"] == CLIENT_ID and "orderId" not in gets[0].params
    assert gets[1].params["origClientOrderId"] == CLIENT_ID  # ccxt renames clientOrderId
    assert gets[2].params["orderId"] == created["id"]
    assert peer.balance(KEY, "USDT")[0] == Decimal("16000")

    error = raised(peer, lambda ex: ex.fetch_order(None, "BTC/USDT", {"clientOrderId": "nope"}))
    assert type(error) is ccxt.OrderNotFound
    assert peer.requests[-1].response == {"code": -2013, "msg": "Order does not exist."}


def test_insufficient_balance_raises_insufficient_funds(peer: BinanceSpotPeer) -> None:
    error = raised(peer, lambda ex: ex.create_order("BTC/USDT", "market", "buy", 1))

    assert type(error) is ccxt.InsufficientFunds
    assert peer.requests[-1].response == {
        "code": -2010,
        "msg": "Account has insufficient balance for requested action.",
    }
    assert peer.balance(KEY, "USDT") == (Decimal("10000"), Decimal(0))
    assert peer.orders(KEY) == []


def test_filter_failures(peer: BinanceSpotPeer) -> None:
    # LOT_SIZE: above maxQty (ccxt itself truncates to the step and only checks precision).
    error = raised(peer, lambda ex: ex.create_order("BTC/USDT", "limit", "sell", 9001, 60000))
    assert type(error) is ccxt.InvalidOrder
    assert peer.requests[-1].response == {"code": -1013, "msg": "Filter failure: LOT_SIZE"}

    # PRICE_FILTER: above maxPrice.
    error = raised(peer, lambda ex: ex.create_order("BTC/USDT", "limit", "sell", 0.01, 2_000_000))
    assert type(error) is ccxt.InvalidOrder
    assert peer.requests[-1].response == {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}

    # NOTIONAL: below minNotional. ccxt maps it by the code -1013 only: BadRequest.
    error = raised(peer, lambda ex: ex.create_order("BTC/USDT", "market", "buy", 0.00005))
    assert type(error) is ccxt.BadRequest
    assert peer.requests[-1].response == {"code": -1013, "msg": "Filter failure: NOTIONAL"}

    # MARKET_LOT_SIZE: market quantity above its maxQty. InvalidOrder, because ccxt
    # looks for the substring "LOT_SIZE" in the body before the code.
    error = raised(peer, lambda ex: ex.create_order("BTC/USDT", "market", "sell", 101))
    assert type(error) is ccxt.InvalidOrder
    assert peer.requests[-1].response == {"code": -1013, "msg": "Filter failure: MARKET_LOT_SIZE"}
    assert peer.orders(KEY) == []


def test_limit_order_rests_locks_balance_fills_on_price_and_cancels(
    peer: BinanceSpotPeer,
) -> None:
    async def place(ex: Any) -> Any:
        a = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 50000)
        b = await ex.create_order("BTC/USDT", "limit", "buy", 0.02, 40000)
        return a, b, await ex.fetch_open_orders("BTC/USDT")

    a, b, open_orders = drive(peer, place)
    assert {o["id"] for o in open_orders} == {a["id"], b["id"]}
    assert peer.balance(KEY, "USDT") == (Decimal("8700"), Decimal("1300"))

    peer.set_price("BTCUSDT", "49000")  # crosses a (buy at 50000), not b

    async def after(ex: Any) -> Any:
        filled = await ex.fetch_order(a["id"], "BTC/USDT")
        canceled = await ex.cancel_order(b["id"], "BTC/USDT")
        again = await ex.fetch_orders("BTC/USDT")
        return filled, canceled, again

    filled, canceled, all_orders = drive(peer, after)
    assert (filled["status"], filled["average"]) == ("closed", 50000.0)  # maker, at its limit
    assert canceled["status"] == "canceled"
    assert peer.requests_to("/api/v3/order", "DELETE")[0].params["orderId"] == b["id"]
    assert [o["status"] for o in all_orders] == ["closed", "canceled"]
    assert peer.balance(KEY, "USDT") == (Decimal("9500"), Decimal(0))
    assert peer.balance(KEY, "BTC") == (Decimal("0.51"), Decimal(0))

    error = raised(peer, lambda ex: ex.cancel_order(b["id"], "BTC/USDT"))
    assert type(error) is ccxt.OrderNotFound  # -2011 Unknown order sent.
    assert peer.requests[-1].response == {"code": -2011, "msg": "Unknown order sent."}


def test_temporary_errors(peer: BinanceSpotPeer) -> None:
    # 503 with Binance's JSON: ccxt maps the JSON code (-1001), not the HTTP status.
    peer.fail_next(1, 503)
    error = raised(peer, lambda ex: ex.fetch_balance(), fetchMargins=False)
    assert type(error) is ccxt.OperationFailed
    assert not isinstance(error, ccxt.NetworkError)

    # 503 without a JSON code: the HTTP status decides.
    peer.fail_next(1, 503, "Service Unavailable.")
    error = raised(peer, lambda ex: ex.fetch_balance(), fetchMargins=False)
    assert type(error) is ccxt.ExchangeNotAvailable
    assert isinstance(error, ccxt.NetworkError)

    # 429 and 418: DDoSProtection whatever the body (checked before the JSON code).
    for status in (429, 418):
        peer.fail_next(1, status)
        error = raised(peer, lambda ex: ex.fetch_balance(), fetchMargins=False)
        assert type(error) is ccxt.DDoSProtection
        assert peer.requests[-1].status == status

    # Injected failures have no effect, and the next request goes through.
    peer.fail_next(2, 503, path_prefix="/api/v3/order")
    for _ in range(2):
        error = raised(peer, lambda ex: ex.create_order("BTC/USDT", "market", "buy", 0.01))
        assert type(error) is ccxt.OperationFailed
    assert peer.orders(KEY) == []
    order = drive(peer, lambda ex: ex.create_order("BTC/USDT", "market", "buy", 0.01))
    assert order["status"] == "closed"


def test_stopped_peer_raises_network_error_and_comes_back(peer: BinanceSpotPeer) -> None:
    async def scenario(ex: Any) -> Any:
        await ex.fetch_balance()  # a pooled keep-alive connection exists now
        peer.stop()
        with pytest.raises(ccxt.NetworkError) as info:
            await ex.fetch_balance()
        peer.start()  # same port
        return info.value, await ex.fetch_balance()

    error, balance = drive(peer, scenario, fetchMargins=False)
    assert type(error) is ccxt.ExchangeNotAvailable
    assert balance["USDT"]["free"] == 10000.0
    wait_for(lambda: peer.running, what="the peer to run again")


def test_api_restrictions_report_permissions_per_key(peer: BinanceSpotPeer) -> None:
    peer.add_key("reader", "reader-secret", enableSpotAndMarginTrading=False)
    peer.set_permissions(KEY, enableWithdrawals=True)

    mine = drive(peer, lambda ex: ex.sapi_get_account_apirestrictions())
    reader = drive(
        peer, lambda ex: ex.sapi_get_account_apirestrictions(), "reader", "reader-secret"
    )

    assert mine["enableReading"] is True
    assert mine["enableSpotAndMarginTrading"] is True
    assert mine["enableWithdrawals"] is True
    assert reader["enableSpotAndMarginTrading"] is False
    assert reader["enableWithdrawals"] is False
    assert isinstance(mine["createTime"], int) and mine["ipRestrict"] is False
    request = peer.requests_to("/sapi/v1/account/apiRestrictions")[0]
    assert list(request.params) == ["timestamp", "recvWindow", "signature"]


def test_key_without_trading_permission(peer: BinanceSpotPeer) -> None:
    peer.add_key("reader", "reader-secret", {"USDT": 1000}, enableSpotAndMarginTrading=False)

    def order(ex: Any) -> Any:
        return ex.create_order("BTC/USDT", "market", "buy", 0.001)

    # First private call on a fresh exchange object: -2015 is AuthenticationError.
    error = raised(peer, order, "reader", "reader-secret")
    assert type(error) is ccxt.AuthenticationError
    assert peer.requests[-1].status == 401

    # After any successful /api/v3 call on the same object, ccxt reads -2015 as a
    # temporary ban: DDoSProtection.
    async def read_then_trade(ex: Any) -> Any:
        await ex.fetch_balance()
        await order(ex)

    error = raised(peer, read_then_trade, "reader", "reader-secret")
    assert type(error) is ccxt.DDoSProtection
    assert peer.requests[-1].response["code"] == -2015
    assert peer.orders("reader") == []
