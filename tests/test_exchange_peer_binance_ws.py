"""The real `ccxt.pro.binance` (ccxt 4.5.90) against the peer's spot user data websockets.

No mocks: ccxt connects over real websockets to `tests/exchange_peer` (same port
as the REST peer), signs `userDataStream.subscribe.signature`, and the peer
checks that signature the way Binance does before it pushes Binance's
`executionReport` / `outboundAccountPosition` events. What these tests pin
for master detection:

- For spot, ccxt 4.5.90 never uses a listenKey: `watch_my_trades`,
  `watch_orders` and `watch_balance` (with or without a symbol) share one
  connection to `urls.api.ws.ws-api.spot` (`/ws-api/v3`) and one
  `userDataStream.subscribe.signature` request (apiKey, recvWindow 10000,
  timestamp, signature).
- A trade from `watch_my_trades` carries Binance's trade id (`id`, the same id
  as REST `myTrades`), `order`, side, amount, price, cost and fee; the client
  order id is only in `info["c"]`. `watch_orders` gives `clientOrderId` (for a
  cancel, the original id: ccxt reads `C` before `c`).
- Reconnects: when the server drops the connection, every pending `watch_*`
  raises `ccxt.NetworkError` ("Connection closed by remote server, closing
  code 1000", or 1006 without a close frame). Nothing is raised if no watch
  was pending. The next `watch_*` call opens a new connection and subscribes
  again by itself; events in between are lost, so the caller resynchronises
  with REST `fetch_my_trades(symbol, since=...)` and de-duplicates by trade id.
  While the peer is down, `watch_*` raises `NetworkError` ("Cannot connect").
- A watch resolves on the next event only. Events that arrive while no watch is
  pending go into ccxt's cache and come back with the next event, not before
  (a lone fill between two `watch_my_trades` calls waits for the next fill).
  "New updates" are counted per view: `watch_orders()` and
  `watch_orders(symbol)` each return the same update once.
- `eventStreamTerminated` resolves nothing: a pending watch keeps waiting
  until some caller calls `watch_*` again (which subscribes again).
- A refused subscription does not raise a ccxt error: ccxt 4.5.90 raises a bare
  `KeyError('spot')` from `ensure_user_data_stream_ws_subscribe_signature`, with
  the real error as `__context__`, and every later `watch_*` on that exchange
  object waits forever (its "authenticate" future is never settled):

  peer answer on the WebSocket API                    KeyError.__context__
  400 -1022 Signature for this request is not valid.  AuthenticationError
  401 -2015 Invalid API-key, IP, or permissions ...   AuthenticationError
            (after a successful REST call: ...)       DDoSProtection
  400 -1021 Timestamp ... outside of the recvWindow.  InvalidNonce
  handshake refused (HTTP 503)                        (no KeyError) NetworkError
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt  # type: ignore[import-untyped]
import pytest

from tests.conftest import wait_for
from tests.exchange_peer.binance import BinanceSpotPeer, binance_pro_client
from tests.exchange_peer.binance_ws import signature_payload

KEY = "peer-ws-key-1"
SECRET = "peer-ws-secret-1"
CLIENT_ID = "TS0123456789abcdef0123456789ab"
SUBSCRIBE = "userDataStream.subscribe.signature"

# Binance's documented executionReport fields, in its order (user-data-stream.md).
EXECUTION_REPORT_FIELDS = [
    "e", "E", "s", "c", "S", "o", "f", "q", "p", "P", "F", "g", "C", "x", "X", "r", "i",
    "l", "z", "L", "n", "N", "T", "t", "I", "w", "m", "M", "O", "Z", "Y", "Q", "W", "V",
]  # fmt: skip


@pytest.fixture
def peer() -> Iterator[BinanceSpotPeer]:
    peer = BinanceSpotPeer()
    peer.add_key(KEY, SECRET, {"USDT": "10000", "BTC": "0.5", "ETH": "2"})
    peer.start()
    yield peer
    peer.stop()


def run(
    peer: BinanceSpotPeer,
    scenario: Callable[[Any], Awaitable[Any]],
    key: str = KEY,
    secret: str = SECRET,
    **options: Any,
) -> Any:
    """Run `scenario(exchange)` with a fresh `ccxt.pro.binance` on its own event loop."""
    options.setdefault("fetchMargins", False)

    async def main() -> Any:
        exchange = binance_pro_client(peer, key, secret, **options)
        try:
            return await scenario(exchange)
        finally:
            await exchange.close()

    return asyncio.run(main())


async def until(condition: Callable[[], Any], what: str, timeout_s: float = 5.0) -> Any:
    """Poll `condition` without blocking the event loop (ccxt runs on it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


async def watching(peer: BinanceSpotPeer, call: Awaitable[Any], key: str = KEY) -> asyncio.Task:
    """Start a `watch_*` call and return once the peer holds a subscription for `key`."""
    task = asyncio.ensure_future(call)
    await until(lambda: peer.ws_subscriptions(key) or task.done(), "the subscription")
    if task.done():
        task.result()  # raise what ccxt raised
    return task


async def result(task: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(task, 5)


async def after(call: Awaitable[Any], action: Callable[[], Any]) -> Any:
    """Start `call` (a `watch_*`), then do `action` (sync or async), then await the call.

    ccxt resolves a watch on the next event only: an event that arrives while
    no watch is pending is cached, but waits for the one after it.
    """
    task = asyncio.ensure_future(call)
    await asyncio.sleep(0)  # the watch registers its future before the action
    outcome = action()
    if inspect.isawaitable(outcome):
        await outcome
    return await result(task)


async def subscribed(peer: BinanceSpotPeer, ex: Any) -> None:
    """Subscribe `ex` (through a watch that is then cancelled)."""
    (await watching(peer, ex.watch_my_trades())).cancel()


# ----- the signature ---------------------------------------------------------------------


def test_signature_payload_is_binances_documented_example() -> None:
    # web-socket-api.md, "SIGNED request example (HMAC)": params in any order, signed sorted.
    params = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01000000",
        "price": "52000.00",
        "newOrderRespType": "ACK",
        "recvWindow": 100,
        "timestamp": 1645423376532,
        "apiKey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
        "signature": "------ FILL ME ------",
    }
    payload = signature_payload(params)
    assert payload == (
        "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
        "&newOrderRespType=ACK&price=52000.00&quantity=0.01000000&recvWindow=100"
        "&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
    )
    secret = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    assert hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest() == (
        "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
    )


async def raw_request(
    ws: aiohttp.ClientWebSocketResponse, request: dict[str, Any] | str
) -> dict[str, Any]:
    await ws.send_str(request if isinstance(request, str) else json.dumps(request))
    reply: dict[str, Any] = json.loads((await ws.receive(timeout=5)).data)
    return reply


def signed(params: dict[str, Any], secret: str = SECRET, *, sort: bool = True) -> dict[str, Any]:
    text = signature_payload(params) if sort else "&".join(f"{k}={v}" for k, v in params.items())
    return {**params, "signature": hmac.new(secret.encode(), text.encode(), "sha256").hexdigest()}


def test_ws_api_checks_the_signature_over_the_sorted_params(peer: BinanceSpotPeer) -> None:
    url = peer.base_url.replace("http://", "ws://") + "/ws-api/v3"

    async def main() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            now = int(time.time() * 1000)
            # Param order in the JSON does not matter; the signature covers them sorted.
            params = {"timestamp": now, "apiKey": KEY, "recvWindow": 5000}
            replies = [
                await raw_request(ws, {"id": 7, "method": SUBSCRIBE, "params": signed(params)})
            ]
            await raw_request(ws, {"id": 8, "method": "userDataStream.unsubscribe"})
            await ws.receive(timeout=5)  # the unsubscribe response (after eventStreamTerminated)
            for bad in (
                signed(params, sort=False),  # signed in the sent order, not sorted
                signed(params, "not-the-secret"),
                signed({**params, "apiKey": "nobody"}),
                signed({**params, "timestamp": now - 6000}),
                signed({"apiKey": KEY}),
                {"apiKey": KEY, "timestamp": now},
            ):
                replies.append(
                    await raw_request(ws, {"id": "x", "method": SUBSCRIBE, "params": bad})
                )
            return replies

    ok, *refused = asyncio.run(main())
    assert ok["id"] == 7 and ok["status"] == 200 and ok["result"] == {"subscriptionId": 0}
    bad_signature = {"code": -1022, "msg": "Signature for this request is not valid."}
    missing = "Mandatory parameter '{}' was not sent, was empty/null, or malformed."
    assert [(r["id"], r["status"], r["error"]) for r in refused] == [
        ("x", 400, bad_signature),
        ("x", 400, bad_signature),
        ("x", 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}),
        (
            "x",
            400,
            {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
        ),
        ("x", 400, {"code": -1102, "msg": missing.format("timestamp")}),
        ("x", 400, {"code": -1102, "msg": missing.format("signature")}),
    ]
    assert all(r["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT" for r in refused)
    assert peer.ws_subscriptions() == []


# ----- what ccxt sends --------------------------------------------------------------------


def test_ccxt_subscribes_once_through_the_ws_api_for_all_spot_watches(
    peer: BinanceSpotPeer,
) -> None:
    async def scenario(ex: Any) -> Any:
        trades = await watching(peer, ex.watch_my_trades())
        orders = asyncio.ensure_future(ex.watch_orders())
        btc = asyncio.ensure_future(ex.watch_my_trades("BTC/USDT"))
        balance = asyncio.ensure_future(ex.watch_balance())
        await asyncio.sleep(0)
        await ex.create_order("BTC/USDT", "market", "buy", 0.01)
        return [await result(t) for t in (trades, orders, btc, balance)]

    trades, orders, btc, balance = run(peer, scenario)

    assert len(trades) == len(btc) == len(orders) == 1
    assert balance["BTC"]["free"] == 0.51
    # One connection, one subscription, on Binance's WebSocket API path; no listenKey.
    wait_for(lambda: peer.ws_clients() == 0, what="ccxt's close to end the connection")
    (handshake,) = peer.requests_to("/ws-api/v3", "GET")
    assert handshake.status == 101
    assert peer.requests_to("/api/v3/userDataStream") == []
    (request,) = peer.ws_requests()
    assert request["id"] == "1" and request["method"] == SUBSCRIBE
    assert list(request["params"]) == ["apiKey", "recvWindow", "timestamp", "signature"]
    assert request["params"]["apiKey"] == KEY and request["params"]["recvWindow"] == 10000
    ack = peer.ws_frames("out")[0].data
    assert ack["id"] == "1" and ack["status"] == 200 and ack["result"] == {"subscriptionId": 0}
    assert ack["rateLimits"][0]["interval"] == "MINUTE"


# ----- fills and orders -------------------------------------------------------------------


def test_a_rest_fill_arrives_through_watch_my_trades(peer: BinanceSpotPeer) -> None:
    peer.commission_rate = Decimal("0.001")

    async def scenario(ex: Any) -> Any:
        watch = await watching(peer, ex.watch_my_trades())
        order = await ex.create_order(
            "BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": CLIENT_ID}
        )
        return order, await result(watch), await ex.fetch_my_trades("BTC/USDT")

    order, (trade,), (rest_trade,) = run(peer, scenario)

    assert trade["id"] == rest_trade["id"] == "500001"  # Binance's trade id, as in myTrades
    assert trade["order"] == order["id"] == "1000001"
    assert trade["info"]["c"] == CLIENT_ID  # ccxt's trade has no clientOrderId field
    assert (trade["symbol"], trade["side"], trade["type"]) == ("BTC/USDT", "buy", "market")
    assert (trade["amount"], trade["price"], trade["cost"]) == (0.01, 60000.0, 600.0)
    assert trade["fee"] == {"currency": "BTC", "cost": 0.00001}
    assert trade["takerOrMaker"] == "taker"
    assert trade["timestamp"] == rest_trade["timestamp"]

    new, filled = peer.ws_events("executionReport")
    assert list(new) == list(filled) == EXECUTION_REPORT_FIELDS
    assert (new["x"], new["X"], new["t"], new["l"], new["N"]) == (
        "NEW",
        "NEW",
        -1,
        "0.00000000",
        None,
    )
    assert (filled["x"], filled["X"], filled["t"]) == ("TRADE", "FILLED", 500001)
    assert (filled["l"], filled["L"], filled["z"], filled["Y"], filled["Z"]) == (
        "0.01000000", "60000.00000000", "0.01000000", "600.00000000", "600.00000000",
    )  # fmt: skip
    assert (filled["n"], filled["N"], filled["m"]) == ("0.00001000", "BTC", False)
    (position,) = peer.ws_events("outboundAccountPosition")
    assert position["B"] == [
        {"a": "BTC", "f": "0.50999000", "l": "0.00000000"},
        {"a": "USDT", "f": "9400.00000000", "l": "0.00000000"},
    ]
    # The wrapper of the WebSocket API subscription.
    assert {"subscriptionId", "event"} == set(peer.ws_frames("out")[1].data)


def test_a_website_trade_arrives_and_is_in_the_rest_history(peer: BinanceSpotPeer) -> None:
    async def scenario(ex: Any) -> Any:
        watch = await watching(peer, ex.watch_my_trades("BTC/USDT"))
        peer.trade_on_website(KEY, "ETHUSDT", "BUY", "0.1")  # another symbol: not for this watch
        await until(lambda: len(peer.ws_events("outboundAccountPosition")) == 1, "the ETH fill")
        assert not watch.done()
        web_order = peer.trade_on_website(KEY, "BTCUSDT", "SELL", "0.1")
        trades = await result(watch)
        return (
            web_order,
            trades,
            await ex.fetch_my_trades("BTC/USDT"),
            await ex.fetch_orders("BTC/USDT"),
        )

    web_order, (trade,), (rest_trade,), (rest_order,) = run(peer, scenario)

    assert web_order.client_order_id.startswith("web_") and len(web_order.client_order_id) == 36
    assert trade["id"] == rest_trade["id"] == "500002"
    assert trade["order"] == rest_trade["order"] == rest_order["id"] == str(web_order.order_id)
    assert trade["info"]["c"] == rest_order["clientOrderId"] == web_order.client_order_id
    assert (trade["side"], trade["amount"], trade["price"]) == ("sell", 0.1, 60000.0)
    assert rest_order["status"] == "closed"
    assert peer.balance(KEY, "BTC") == (Decimal("0.4"), Decimal(0))
    assert peer.requests_to("/api/v3/order", "POST") == []  # not an API order


def test_watch_orders_sees_new_filled_and_canceled(peer: BinanceSpotPeer) -> None:
    async def orders(ex: Any, action: Callable[[], Any], symbol: str | None = None) -> Any:
        seen = await after(ex.watch_orders(symbol), action)
        return [(o["id"], o["clientOrderId"], o["status"], o["filled"]) for o in seen]

    async def scenario(ex: Any) -> Any:
        eth = await watching(peer, ex.watch_orders("ETH/USDT"))
        placed: dict[str, Any] = {}

        async def place(name: str, price: int) -> None:
            placed[name] = await ex.create_order(
                "BTC/USDT", "limit", "buy", 0.01, price, params={"clientOrderId": name}
            )

        seen = [await orders(ex, lambda: place("TSbuy", 50000))]
        seen.append(await orders(ex, lambda: peer.set_price("BTCUSDT", "49000"), "BTC/USDT"))
        seen.append(await orders(ex, lambda: place("TSlow", 40000)))
        seen.append(await orders(ex, lambda: ex.cancel_order(placed["TSlow"]["id"], "BTC/USDT")))

        def on_website() -> None:
            placed["web"] = peer.trade_on_website(
                KEY, "BTCUSDT", "BUY", "0.01", order_type="LIMIT", price="45000"
            )

        seen.append(await orders(ex, on_website))
        web = placed["web"]
        seen.append(await orders(ex, lambda: peer.cancel_on_website(KEY, "BTCUSDT", web.order_id)))
        assert not eth.done()  # no ETH order so far
        eth.cancel()
        return placed["TSbuy"], placed["TSlow"], web, seen

    buy, low, web, seen = run(peer, scenario)

    web_id = web.client_order_id
    assert seen == [
        [(buy["id"], "TSbuy", "open", 0.0)],
        [(buy["id"], "TSbuy", "closed", 0.01)],  # watch_orders("BTC/USDT")
        # ccxt counts "new updates" per view: the fill that watch_orders("BTC/USDT") returned
        # is still new to watch_orders(), so it comes again. Deduplicate by (id, status, filled).
        [(buy["id"], "TSbuy", "closed", 0.01), (low["id"], "TSlow", "open", 0.0)],
        [(low["id"], "TSlow", "canceled", 0.0)],  # ccxt reads C (the original id) first
        [(str(web.order_id), web_id, "open", 0.0)],
        [(str(web.order_id), web_id, "canceled", 0.0)],
    ]
    canceled = [e for e in peer.ws_events("executionReport") if e["x"] == "CANCELED"]
    assert [(e["c"], e["C"]) for e in canceled] == [
        (f"cancel{low['id']}", "TSlow"),
        (f"cancel{web.order_id}", web_id),
    ]
    maker_fill = next(e for e in peer.ws_events("executionReport") if e["x"] == "TRADE")
    assert (maker_fill["L"], maker_fill["m"]) == ("50000.00000000", True)


def test_a_fill_between_two_watches_waits_in_ccxt_for_the_next_fill(
    peer: BinanceSpotPeer,
) -> None:
    async def scenario(ex: Any) -> Any:
        await subscribed(peer, ex)
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.01")  # no watch pending
        # ccxt reads it into its cache (read only here)...
        await until(lambda: ex.myTrades is not None and len(ex.myTrades) == 1, "ccxt's cache")
        later = asyncio.ensure_future(ex.watch_my_trades())
        done, _ = await asyncio.wait({later}, timeout=0.3)
        assert not done  # ...but the next watch waits for another fill
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.02")
        return await result(later)

    assert [t["id"] for t in run(peer, scenario)] == ["500001", "500002"]


def test_watch_balance_follows_outbound_account_position(peer: BinanceSpotPeer) -> None:
    async def scenario(ex: Any) -> Any:
        watch = await watching(peer, ex.watch_balance())
        await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 50000)  # locks 500 USDT
        return await result(watch)

    balance = run(peer, scenario)
    assert balance["USDT"] == {"free": 9500.0, "used": 500.0, "total": 10000.0}
    assert balance["BTC"]["free"] == 0.5


# ----- refused subscriptions ----------------------------------------------------------------


def refused(
    peer: BinanceSpotPeer, before: Callable[[Any], Awaitable[Any]] | None = None, **kw: Any
) -> BaseException:
    async def scenario(ex: Any) -> Any:
        if before is not None:
            await before(ex)
        await asyncio.wait_for(ex.watch_my_trades(), 5)

    with pytest.raises(BaseException) as info:
        run(peer, scenario, **kw)
    error: BaseException = info.value
    return error


def test_a_bad_secret_makes_ccxt_raise_key_error_with_authentication_error_inside(
    peer: BinanceSpotPeer,
) -> None:
    error = refused(peer, secret="not-the-secret")

    assert type(error) is KeyError and error.args == ("spot",)  # a ccxt 4.5.90 bug
    assert type(error.__context__) is ccxt.AuthenticationError
    assert "-1022" in str(error.__context__)
    reply = peer.ws_frames("out")[-1].data
    assert (reply["status"], reply["error"]["code"]) == (400, -1022)
    assert peer.ws_subscriptions() == []


@pytest.mark.parametrize(
    ("setup", "status", "code", "inner"),
    [
        ("unknown key", 401, -2015, ccxt.AuthenticationError),
        ("clock", 400, -1021, ccxt.InvalidNonce),
        ("revoked after REST", 401, -2015, ccxt.DDoSProtection),
    ],
)
def test_other_refusals(
    peer: BinanceSpotPeer, setup: str, status: int, code: int, inner: type
) -> None:
    key, before = KEY, None
    if setup == "unknown key":
        key = "nobody"
    elif setup == "clock":
        peer.clock_skew_ms = 20_000  # recvWindow is 10 s
    else:

        async def before(ex: Any) -> None:
            await ex.fetch_balance()  # ccxt remembers a successful authenticated call
            peer.remove_key(KEY)

    error = refused(peer, before, key=key)
    assert type(error) is KeyError and type(error.__context__) is inner
    reply = peer.ws_frames("out")[-1].data
    assert (reply["status"], reply["error"]["code"]) == (status, code)


def test_after_a_refusal_the_same_exchange_object_never_subscribes_again(
    peer: BinanceSpotPeer,
) -> None:
    async def scenario(ex: Any) -> Any:
        with pytest.raises(KeyError):
            await asyncio.wait_for(ex.watch_my_trades(), 5)
        second = asyncio.ensure_future(ex.watch_orders())
        done, _ = await asyncio.wait({second}, timeout=0.5)
        second.cancel()
        return done

    assert run(peer, scenario, secret="not-the-secret") == set()  # still waiting
    assert len(peer.ws_requests(SUBSCRIBE)) == 1  # and nothing was sent again
    # A new exchange object (with the right secret) subscribes normally.
    run(peer, lambda ex: subscribed(peer, ex))
    assert len(peer.ws_requests(SUBSCRIBE)) == 2


def test_a_refused_handshake_raises_network_error(peer: BinanceSpotPeer) -> None:
    peer.fail_next(1, 503, path_prefix="/ws-api/v3")

    async def scenario(ex: Any) -> Any:
        with pytest.raises(ccxt.BaseError) as info:
            await asyncio.wait_for(ex.watch_my_trades(), 5)
        await subscribed(peer, ex)  # the next call dials again, after ccxt's dial backoff
        return info.value

    error = run(peer, scenario)
    assert type(error) is ccxt.NetworkError and "503" in str(error)
    wait_for(lambda: peer.ws_clients() == 0, what="the connection to end")
    assert [r.status for r in peer.requests_to("/ws-api/v3")] == [503, 101]


def test_rest_failures_without_a_prefix_leave_websocket_handshakes_alone(
    peer: BinanceSpotPeer,
) -> None:
    async def scenario(ex: Any) -> Any:
        await ex.load_markets()
        peer.fail_next(1, 503)
        await subscribed(peer, ex)
        with pytest.raises(ccxt.OperationFailed):
            await ex.fetch_balance()

    run(peer, scenario)


# ----- reconnects ----------------------------------------------------------------------------


def test_a_dropped_connection_fails_pending_watches_and_the_next_call_resubscribes(
    peer: BinanceSpotPeer,
) -> None:
    async def scenario(ex: Any) -> Any:
        first = await watching(peer, ex.watch_my_trades())
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.01")
        (seen,) = await result(first)

        trades, orders = (
            asyncio.ensure_future(ex.watch_my_trades()),
            asyncio.ensure_future(ex.watch_orders()),
        )
        await asyncio.sleep(0)
        assert peer.ws_disconnect_all() == 1
        errors = await asyncio.gather(trades, orders, return_exceptions=True)
        await until(lambda: peer.ws_clients() == 0, "the peer to drop the connection")

        missed = peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.02")  # nobody is subscribed
        again = await watching(peer, ex.watch_my_trades())
        assert peer.ws_clients() == 1
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.03")
        after = await result(again)
        # Resynchronise: REST from the last trade seen, de-duplicated by trade id.
        rest = await ex.fetch_my_trades("BTC/USDT", since=seen["timestamp"])
        return seen, errors, missed, after, rest

    seen, errors, missed, after, rest = run(peer, scenario)

    for error in errors:
        assert type(error) is ccxt.NetworkError
        assert str(error) == "Connection closed by remote server, closing code 1000"
    assert [t["amount"] for t in after] == [0.03]  # the fill made while away never arrives
    assert [t["id"] for t in rest] == [seen["id"], "500002", after[0]["id"]]
    assert rest[1]["order"] == str(missed.order_id) and rest[1]["amount"] == 0.02
    assert len(peer.requests_to("/ws-api/v3")) == 2  # a new connection
    assert [r["id"] for r in peer.ws_requests(SUBSCRIBE)] == ["1", "2"]  # and a new subscription


def test_a_drop_while_nobody_watches_raises_nothing(peer: BinanceSpotPeer) -> None:
    async def scenario(ex: Any) -> Any:
        first = await watching(peer, ex.watch_my_trades())
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.01")
        await result(first)
        peer.ws_disconnect_all()
        await until(lambda: peer.ws_clients() == 0, "the drop")
        # A watch_* call made before ccxt has read the close frame would return onto the
        # dying connection and fail with NetworkError ("closing code 1000"). ccxt forgets a
        # connection the server closed once it has read the close frame (read only here).
        await until(lambda: not ex.clients, "ccxt to read the close frame")
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.02")
        again = await watching(peer, ex.watch_my_trades())  # silently a new connection
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.03")
        return await result(again)

    assert [t["id"] for t in run(peer, scenario)] == ["500003"]
    assert len(peer.ws_requests(SUBSCRIBE)) == 2


def test_a_watch_racing_the_close_frame_fails_once(peer: BinanceSpotPeer) -> None:
    async def scenario(ex: Any) -> Any:
        await subscribed(peer, ex)
        peer.ws_disconnect_all()
        # Called at once: ccxt still holds the subscribed connection, so no new request is
        # made, and the close frame then fails the call.
        with pytest.raises(ccxt.NetworkError, match="closing code 1000"):
            await asyncio.wait_for(ex.watch_my_trades(), 5)
        await subscribed(peer, ex)  # the call after that reconnects

    run(peer, scenario)
    assert len(peer.ws_requests(SUBSCRIBE)) == 2


def test_an_aborted_connection_and_a_stopped_peer(peer: BinanceSpotPeer) -> None:
    async def scenario(ex: Any) -> Any:
        errors = []
        pending = await watching(peer, ex.watch_my_trades())
        peer.ws_disconnect_all(abort=True)  # no close frame
        errors.append(await asyncio.gather(pending, return_exceptions=True))
        pending = await watching(peer, ex.watch_my_trades())
        peer.stop()
        errors.append(await asyncio.gather(pending, return_exceptions=True))
        errors.append(await asyncio.gather(ex.watch_my_trades(), return_exceptions=True))
        peer.start()  # same port
        again = await watching(peer, ex.watch_my_trades())  # after ccxt's dial backoff
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.01")
        return errors, await result(again)

    ((aborted,), (stopped,), (down,)), trades = run(peer, scenario)
    assert type(aborted) is ccxt.NetworkError and str(aborted).endswith("closing code 1006")
    assert type(stopped) is ccxt.NetworkError and str(stopped).endswith("closing code 1006")
    assert type(down) is ccxt.NetworkError and "Cannot connect" in str(down)
    assert [t["amount"] for t in trades] == [0.01]


def test_event_stream_terminated_leaves_a_pending_watch_waiting(peer: BinanceSpotPeer) -> None:
    async def scenario(ex: Any) -> Any:
        pending = await watching(peer, ex.watch_my_trades())
        assert peer.ws_terminate(KEY) == 1
        assert peer.ws_frames("out")[-1].data["event"]["e"] == "eventStreamTerminated"
        # ccxt forgets the subscription when it reads the event. A watch_* call made before
        # that (the frame still in flight) returns onto the dead stream and never resubscribes;
        # read ccxt's own state to wait for it (read only).
        (client,) = ex.clients.values()
        await until(lambda: "spot" not in client.subscriptions, "ccxt to read the event")
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.01")  # not delivered: no subscription
        assert peer.ws_events("executionReport") == [] and not pending.done()
        second = await watching(peer, ex.watch_my_trades())  # subscribes again
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.02")
        return await result(pending), await result(second)

    first, second = run(peer, scenario)
    assert [t["id"] for t in first] == [t["id"] for t in second] == ["500002"]
    assert len(peer.ws_requests(SUBSCRIBE)) == 2 and peer.ws_clients() == 0


# ----- keep-alive ------------------------------------------------------------------------------


def test_the_peer_pings_and_ccxt_answers(peer: BinanceSpotPeer) -> None:
    peer.ws_ping_interval_s = 0.05

    async def scenario(ex: Any) -> Any:
        pending = await watching(peer, ex.watch_my_trades())
        await until(lambda: max(peer.ws_pongs().values(), default=0) >= 3, "three pongs")
        peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.01")
        return await result(pending)

    assert len(run(peer, scenario)) == 1


def test_a_client_that_does_not_pong_is_dropped(peer: BinanceSpotPeer) -> None:
    peer.ws_ping_interval_s = 0.05
    peer.ws_pong_timeout_s = 0.3
    url = peer.base_url.replace("http://", "ws://") + "/ws-api/v3"

    async def main() -> Any:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, autoping=False) as ws:
                kinds = []
                while True:
                    msg = await ws.receive(timeout=5)
                    kinds.append(msg.type)
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        return kinds
            # aiohttp answered the client's own ping (autoping) before; not here

    kinds = asyncio.run(main())
    assert aiohttp.WSMsgType.PING in kinds and kinds[-1] == aiohttp.WSMsgType.CLOSE


# ----- the WebSocket API envelope --------------------------------------------------------------


def test_ws_api_requests_responses_and_events(peer: BinanceSpotPeer) -> None:
    peer.add_key("other", "other-secret", {"USDT": "100"})
    url = peer.base_url.replace("http://", "ws://") + "/ws-api/v3"

    def subscribe(request_id: Any, key: str, secret: str) -> dict[str, Any]:
        params = signed({"apiKey": key, "timestamp": int(time.time() * 1000)}, secret)
        return {"id": request_id, "method": SUBSCRIBE, "params": params}

    async def main() -> Any:
        replies = []
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            for request in (
                {"id": 1, "method": "ping"},
                {"id": 2, "method": "v3/time", "params": {"returnRateLimits": False}},
                "not json",
                {"id": 3, "method": "order.place", "params": {}},
                subscribe("a", KEY, SECRET),
                subscribe("b", "other", "other-secret"),
                subscribe("c", KEY, SECRET),
                {"id": 4, "method": "session.subscriptions"},
            ):
                replies.append(await raw_request(ws, request))
            peer.trade_on_website("other", "BTCUSDT", "BUY", "0.001")
            events = [json.loads((await ws.receive(timeout=5)).data) for _ in range(3)]
            await ws.send_json(
                {"id": 5, "method": "userDataStream.unsubscribe", "params": {"subscriptionId": 1}}
            )
            events.append(json.loads((await ws.receive(timeout=5)).data))
            replies.append(json.loads((await ws.receive(timeout=5)).data))
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + "?returnRateLimits=false") as ws:
                replies.append(await raw_request(ws, {"id": 6, "method": "ping"}))
        return replies, events

    replies, events = asyncio.run(main())
    assert ["rateLimits" in r for r in replies] == [True, False] + [True] * 7 + [False]
    for reply in replies:
        reply.pop("rateLimits", None)
    (ping, time_, bad_json, unknown, sub_a, sub_b, twice, listed, unsub, quiet) = replies
    assert ping == {"id": 1, "status": 200, "result": {}}
    assert set(time_) == {"id", "status", "result"} and "serverTime" in time_["result"]
    assert bad_json == {
        "id": None,
        "status": 400,
        "error": {"code": -1135, "msg": "Invalid JSON Request"},
    }
    assert unknown["error"] == {"code": -1020, "msg": "This operation is not supported."}
    assert (sub_a["result"], sub_b["result"]) == ({"subscriptionId": 0}, {"subscriptionId": 1})
    assert twice["status"] == 400 and twice["error"]["code"] == -2035
    assert listed["result"] == [{"subscriptionId": 0}, {"subscriptionId": 1}]
    # The other account's fill comes with its own subscription id.
    assert [e["subscriptionId"] for e in events[:3]] == [1, 1, 1]
    assert [e["event"]["e"] for e in events[:3]] == [
        "executionReport",
        "executionReport",
        "outboundAccountPosition",
    ]
    assert events[3]["subscriptionId"] == 1 and events[3]["event"]["e"] == "eventStreamTerminated"
    assert unsub == {"id": 5, "status": 200, "result": {}}
    assert quiet == {"id": 6, "status": 200, "result": {}}  # no rateLimits


# ----- the legacy listenKey stream ---------------------------------------------------------------


def test_legacy_listen_key_streams(peer: BinanceSpotPeer) -> None:
    ws_base = peer.base_url.replace("http://", "ws://")

    async def scenario(ex: Any) -> Any:
        created = await ex.public_post_userdatastream()
        again = await ex.public_post_userdatastream()  # the account's active key again
        key = created["listenKey"]
        async with aiohttp.ClientSession() as session:
            async with (
                session.ws_connect(f"{ws_base}/ws/{key}") as bare,
                session.ws_connect(f"{ws_base}/stream?streams={key}") as combined,
            ):
                await until(lambda: peer.ws_clients() == 2, "two streams")
                peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.01")
                got = [json.loads((await bare.receive(timeout=5)).data) for _ in range(3)]
                wrapped = json.loads((await combined.receive(timeout=5)).data)
                kept = await ex.public_put_userdatastream({"listenKey": key})
                closed = await ex.public_delete_userdatastream({"listenKey": key})
                end = (await bare.receive(timeout=5)).type
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{ws_base}/ws/{key}")
        with pytest.raises(ccxt.BaseError) as unknown:
            await ex.public_put_userdatastream({"listenKey": key})
        return created, again, got, wrapped, kept, closed, end, refused.value, unknown.value

    created, again, got, wrapped, kept, closed, end, refused, unknown = run(peer, scenario)
    assert len(created["listenKey"]) == 60 and again == created
    assert [e["e"] for e in got] == [
        "executionReport",
        "executionReport",
        "outboundAccountPosition",
    ]
    assert list(got[1]) == EXECUTION_REPORT_FIELDS and got[1]["x"] == "TRADE"
    assert wrapped == {"stream": created["listenKey"], "data": got[0]}
    assert kept == {} and closed == {}
    assert end == aiohttp.WSMsgType.CLOSE  # DELETE closes the stream
    assert refused.status == 400
    assert type(unknown) is ccxt.AuthenticationError and "-1125" in str(unknown)
    post = peer.requests_to("/api/v3/userDataStream", "POST")[0]
    assert post.api_key == KEY and "signature" not in post.params  # USER_STREAM: key only
