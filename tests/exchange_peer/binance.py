"""A local Binance SPOT REST peer: Binance's wire format and signature checks, in memory.

Test code only (product code must never import it). It is a real HTTP server
(see `server.py`) that answers the subset of https://api.binance.com that ccxt's
`binance` class uses for spot trading:

public   GET  /api/v3/ping, /api/v3/time, /api/v3/exchangeInfo,
              /api/v3/ticker/price, /api/v3/ticker/bookTicker, /api/v3/ticker/24hr
signed   GET  /api/v3/account, /sapi/v1/account/apiRestrictions,
              /sapi/v1/margin/allPairs, /sapi/v1/margin/isolated/allPairs (both empty),
              /api/v3/order, /api/v3/openOrders, /api/v3/allOrders, /api/v3/myTrades
         POST /api/v3/order          DELETE /api/v3/order

Signed requests are checked the way Binance documents them: header
`X-MBX-APIKEY`, params `timestamp`, optional `recvWindow` (default 5000, at
most 60000) and `signature` = hex HMAC-SHA256, keyed by the secret, of the
exact query string concatenated with the exact request body, with the
`signature` parameter itself left out. If a parameter is sent in both, the
query string wins. Errors are Binance's `{"code": ..., "msg": ...}` bodies with
Binance's HTTP statuses.

Order semantics (deliberately small, but Binance's rules where they matter):
- filters checked before balance: PRICE_FILTER (limit), LOT_SIZE, MARKET_LOT_SIZE
  (market), NOTIONAL (`-1013 Filter failure: <NAME>`);
- MARKET orders fill at once, in full, at the symbol's last price
  (`set_price`), by `quantity` or by `quoteOrderQty` (quantity rounded down to
  the step);
- LIMIT orders fill at once at the last price if marketable, else rest (GTC) or
  expire (IOC/FOK); a later `set_price` that crosses a resting order fills it
  at its limit price;
- `newClientOrderId`: Binance documents it as "a unique id among open orders";
  an order with the same id is accepted again once the previous one is no
  longer open. That is the default (`duplicate_client_order_ids = "open"`);
  set it to `"any"` to reject every reuse;
- the commission is `commission_rate` (default 0) of the received asset.

User data stream (websockets on the same port, see `binance_ws.py`):
              /ws-api/v3 (WebSocket API: userDataStream.subscribe.signature, ...),
              /ws/<listenKey> and /stream?streams=<listenKey> (legacy), fed by
              POST/PUT/DELETE /api/v3/userDataStream (API key only).
Every order status change of an account (REST orders, resting orders crossed by
`set_price`, website orders) is pushed to its subscriptions as `executionReport`,
then `outboundAccountPosition`.

Test hooks (Python, not HTTP): `add_key`, `set_permissions`, `remove_key`,
`set_balance`, `balance`, `set_price`, `requests` / `requests_to`,
`fail_next`, `clock_skew_ms`, `start` / `stop`; the account owner on Binance's
website: `trade_on_website`, `cancel_on_website`; websockets: `ws_clients`,
`ws_subscriptions`, `ws_requests`, `ws_events`, `ws_frames`, `ws_pongs`,
`ws_disconnect_all`, `ws_terminate`, `ws_ping_interval_s`, `ws_pong_timeout_s`.
A `fail_next` without `path_prefix` never fails a websocket handshake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from .binance_ws import UserDataStreams, WsFrame
from .server import ThreadedServer

D = Decimal
ZERO = D(0)

# Binance's exact messages.
MSG_INVALID_KEY = "Invalid API-key, IP, or permissions for action."
MSG_BAD_SIGNATURE = "Signature for this request is not valid."
MSG_RECV_WINDOW = "Timestamp for this request is outside of the recvWindow."
MSG_DUPLICATE = "Duplicate order sent."
MSG_INSUFFICIENT = "Account has insufficient balance for requested action."
MSG_NO_ORDER = "Order does not exist."
MSG_UNKNOWN_ORDER = "Unknown order sent."

DEFAULT_PERMISSIONS: dict[str, Any] = {
    "ipRestrict": False,
    "enableReading": True,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "enableMargin": False,
    "enableFutures": False,
    "permitsUniversalTransfer": False,
    "enableVanillaOptions": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": False,
    "enableSpotAndMarginTrading": True,
    "enablePortfolioMarginTrading": False,
}

# Endpoints that need the spot trading permission.
TRADE_ENDPOINTS = {("POST", "/api/v3/order"), ("DELETE", "/api/v3/order")}


def fmt(value: Decimal) -> str:
    """Binance prints decimals with 8 places."""
    return f"{value:.8f}"


def now_ms() -> int:
    return int(time.time() * 1000)


RAW_BODY = web.RequestKey("raw_body", str)
PARAMS = web.RequestKey("params", dict)


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg

    def response(self) -> web.Response:
        return web.json_response({"code": self.code, "msg": self.msg}, status=self.status)


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        400,
        -1102,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


# SymbolSpec defaults (module constants: Decimal is immutable).
D_0 = D("0")
D_0_00001 = D("0.00001")
D_0_01 = D("0.01")
D_100 = D("100")
D_1000000 = D("1000000")
D_5 = D("5")
D_9000 = D("9000")
D_9000000 = D("9000000")


@dataclass
class SymbolSpec:
    symbol: str
    base: str
    quote: str
    tick_size: D = D_0_01
    min_price: D = D_0_01
    max_price: D = D_1000000
    step_size: D = D_0_00001
    min_qty: D = D_0_00001
    max_qty: D = D_9000
    market_min_qty: D = D_0
    market_max_qty: D = D_100
    market_step_size: D = D_0
    min_notional: D = D_5
    max_notional: D = D_9000000
    apply_min_to_market: bool = True
    apply_max_to_market: bool = False
    status: str = "TRADING"

    def info(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "status": self.status,
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "amendAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(self.min_price),
                    "maxPrice": fmt(self.max_price),
                    "tickSize": fmt(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(self.min_qty),
                    "maxQty": fmt(self.max_qty),
                    "stepSize": fmt(self.step_size),
                },
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": fmt(self.market_min_qty),
                    "maxQty": fmt(self.market_max_qty),
                    "stepSize": fmt(self.market_step_size),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt(self.min_notional),
                    "applyMinToMarket": self.apply_min_to_market,
                    "maxNotional": fmt(self.max_notional),
                    "applyMaxToMarket": self.apply_max_to_market,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT", "MARGIN"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": [
                "EXPIRE_TAKER",
                "EXPIRE_MAKER",
                "EXPIRE_BOTH",
                "DECREMENT",
            ],
        }


DEFAULT_SYMBOLS = [
    SymbolSpec("BTCUSDT", "BTC", "USDT"),
    SymbolSpec(
        "ETHUSDT",
        "ETH",
        "USDT",
        step_size=D("0.0001"),
        min_qty=D("0.0001"),
        max_qty=D("9000"),
        market_max_qty=D("1000"),
    ),
    SymbolSpec(
        "ETHBTC",
        "ETH",
        "BTC",
        tick_size=D("0.00001"),
        min_price=D("0.00001"),
        max_price=D("922327"),
        step_size=D("0.0001"),
        min_qty=D("0.0001"),
        max_qty=D("100000"),
        min_notional=D("0.0001"),
    ),
]
DEFAULT_PRICES = {"BTCUSDT": D("60000"), "ETHUSDT": D("3000"), "ETHBTC": D("0.05")}


@dataclass
class Order:
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: D
    orig_qty: D
    orig_quote_qty: D
    time: int
    executed_qty: D = ZERO
    cumm_quote_qty: D = ZERO
    status: str = "NEW"
    update_time: int = 0
    locked_asset: str = ""
    locked: D = ZERO
    fills: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in {"NEW", "PARTIALLY_FILLED"}

    def query_shape(self) -> dict[str, Any]:
        """The shape of GET /api/v3/order, openOrders and allOrders."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed_qty),
            "cummulativeQuoteQty": fmt(self.cumm_quote_qty),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": fmt(ZERO),
            "icebergQty": fmt(ZERO),
            "time": self.time,
            "updateTime": self.update_time,
            "isWorking": True,
            "workingTime": self.time,
            "origQuoteOrderQty": fmt(self.orig_quote_qty),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def new_order_shape(self, resp_type: str) -> dict[str, Any]:
        """The shape of POST /api/v3/order for newOrderRespType ACK, RESULT or FULL."""
        ack = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "transactTime": self.time,
        }
        if resp_type == "ACK":
            return ack
        result = {
            **ack,
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed_qty),
            "origQuoteOrderQty": fmt(self.orig_quote_qty),
            "cummulativeQuoteQty": fmt(self.cumm_quote_qty),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "workingTime": self.time,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if resp_type == "FULL":
            result["fills"] = [
                {
                    "price": f["price"],
                    "qty": f["qty"],
                    "commission": f["commission"],
                    "commissionAsset": f["commissionAsset"],
                    "tradeId": f["id"],
                }
                for f in self.fills
            ]
        return result


@dataclass
class ApiKey:
    key: str
    secret: str
    account: Account
    permissions: dict[str, Any]


@dataclass
class Account:
    uid: int
    balances: dict[str, list[D]] = field(default_factory=dict)  # asset -> [free, locked]
    orders: list[Order] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)

    def free(self, asset: str) -> D:
        return self.balances.get(asset, [ZERO, ZERO])[0]

    def move(self, asset: str, free_delta: D = ZERO, locked_delta: D = ZERO) -> None:
        entry = self.balances.setdefault(asset, [ZERO, ZERO])
        entry[0] += free_delta
        entry[1] += locked_delta


@dataclass
class ReceivedRequest:
    """One HTTP request as the peer received it."""

    method: str
    path: str
    query_string: str
    body: str
    params: dict[str, str]  # body params overlaid by query params, as Binance reads them
    headers: dict[str, str]
    api_key: str | None
    status: int = 0  # the HTTP status the peer answered with
    response: Any = None  # the decoded JSON the peer answered with (None for text)


@dataclass
class InjectedFailure:
    remaining: int
    status: int
    body: str
    content_type: str
    headers: dict[str, str]
    path_prefix: str | None


DEFAULT_FAILURE_BODIES = {
    # Binance: "Internal error; unable to process your request. Please try again."
    503: {
        "code": -1001,
        "msg": "Internal error; unable to process your request. Please try again.",
    },
    429: {
        "code": -1003,
        "msg": "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
        "Please use the websocket for live updates to avoid polling the API.",
    },
    418: {"code": -1003, "msg": "Way too much request weight used; IP banned until 1700000000000."},
}


class BinanceSpotPeer:
    """In-memory Binance spot exchange behind a real local HTTP server."""

    def __init__(
        self,
        symbols: list[SymbolSpec] | None = None,
        prices: dict[str, D | str | float] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.symbols = {s.symbol: s for s in (symbols or DEFAULT_SYMBOLS)}
        self.prices: dict[str, D] = {
            k: D(str(v)) for k, v in (prices or DEFAULT_PRICES).items() if k in self.symbols
        }
        self.keys: dict[str, ApiKey] = {}
        self.requests: list[ReceivedRequest] = []
        self.failures: list[InjectedFailure] = []
        self.clock_skew_ms = 0  # added to the peer's clock (serverTime and the recvWindow check)
        self.commission_rate = ZERO
        self.duplicate_client_order_ids = "open"  # "open" (Binance's rule) or "any"
        self._next_order_id = 1000001
        self._next_trade_id = 500001
        self._next_uid = 100000001
        self.user_streams = UserDataStreams(self)
        self._server = ThreadedServer(self.make_app)

    # ----- lifecycle -------------------------------------------------------------------

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def running(self) -> bool:
        return self._server.running

    # ----- test hooks --------------------------------------------------------------------

    def add_key(
        self,
        key: str,
        secret: str,
        balances: dict[str, D | str | float] | None = None,
        *,
        share_account_with: str | None = None,
        **permissions: Any,
    ) -> ApiKey:
        """Create an API key (with its own account, or sharing another key's account)."""
        with self._lock:
            if share_account_with is not None:
                account = self.keys[share_account_with].account
            else:
                account = Account(uid=self._next_uid)
                self._next_uid += 1
            api_key = ApiKey(key, secret, account, {**DEFAULT_PERMISSIONS, **permissions})
            api_key.permissions.setdefault("createTime", now_ms())
            self.keys[key] = api_key
            for asset, amount in (balances or {}).items():
                self.set_balance(key, asset, amount)
            return api_key

    def set_permissions(self, key: str, **permissions: Any) -> None:
        with self._lock:
            self.keys[key].permissions.update(permissions)

    def remove_key(self, key: str) -> None:
        with self._lock:
            del self.keys[key]

    def set_balance(self, key: str, asset: str, free: D | str | float, locked: Any = 0) -> None:
        with self._lock:
            self.keys[key].account.balances[asset] = [D(str(free)), D(str(locked))]

    def balance(self, key: str, asset: str) -> tuple[D, D]:
        """(free, locked) of an asset in the key's account."""
        with self._lock:
            free, locked = self.keys[key].account.balances.get(asset, [ZERO, ZERO])
            return free, locked

    def orders(self, key: str) -> list[Order]:
        with self._lock:
            return list(self.keys[key].account.orders)

    def set_price(self, symbol: str, price: D | str | float) -> None:
        """Set the last price; resting limit orders that it crosses fill at their price."""
        with self._lock:
            self.prices[symbol] = D(str(price))
            spec = self.symbols[symbol]
            for api_key in {id(k.account): k for k in self.keys.values()}.values():
                account = api_key.account
                filled = False
                for order in account.orders:
                    if order.symbol != symbol or not order.is_open:
                        continue
                    crosses = (order.side == "BUY" and self.prices[symbol] <= order.price) or (
                        order.side == "SELL" and self.prices[symbol] >= order.price
                    )
                    if crosses:
                        self._fill(account, order, order.price, maker=True)
                        filled = True
                if filled:
                    self.user_streams.account_position(account, [spec.base, spec.quote])

    def trade_on_website(
        self,
        key: str,
        symbol: str,
        side: str,
        quantity: D | str | float | None = None,
        *,
        order_type: str = "MARKET",
        price: D | str | float | None = None,
        time_in_force: str = "GTC",
        quote_order_qty: D | str | float | None = None,
        client_order_id: str | None = None,
    ) -> Order:
        """The account owner places an order on Binance's website (not through the API).

        It takes the same path as `POST /api/v3/order` (filters, balance, fills, the
        user data stream, `myTrades` and `allOrders`) without a signature and without
        the key's trading permission; the key only names the account. The client
        order id is in the style of Binance's web orders (`web_` and 32 hex digits)
        unless given. A refusal raises `BinanceError`.
        """
        params = {
            "symbol": symbol,
            "side": side.upper(),
            "type": order_type.upper(),
            "newClientOrderId": client_order_id or f"web_{secrets.token_hex(16)}",
            "newOrderRespType": "ACK",
        }
        if quantity is not None:
            params["quantity"] = str(quantity)
        if quote_order_qty is not None:
            params["quoteOrderQty"] = str(quote_order_qty)
        if params["type"] == "LIMIT":
            params["timeInForce"] = time_in_force
            if price is not None:
                params["price"] = str(price)
        with self._lock:
            api_key = self.keys[key]
            ack = self._new_order(api_key, params)
            return next(o for o in api_key.account.orders if o.order_id == ack["orderId"])

    def cancel_on_website(self, key: str, symbol: str, order_id: int) -> Order:
        """The account owner cancels an open order on the website (same path as DELETE)."""
        with self._lock:
            api_key = self.keys[key]
            self._cancel_order(api_key, {"symbol": symbol, "orderId": str(order_id)})
            return next(o for o in api_key.account.orders if o.order_id == order_id)

    # ----- websocket test hooks --------------------------------------------------------------

    @property
    def ws_ping_interval_s(self) -> float | None:
        """How often the peer pings each websocket (Binance: 20 s); None: never."""
        return self.user_streams.ping_interval_s

    @ws_ping_interval_s.setter
    def ws_ping_interval_s(self, value: float | None) -> None:
        self.user_streams.ping_interval_s = value

    @property
    def ws_pong_timeout_s(self) -> float:
        """A websocket without a pong for this long is closed (Binance: one minute)."""
        return self.user_streams.pong_timeout_s

    @ws_pong_timeout_s.setter
    def ws_pong_timeout_s(self, value: float) -> None:
        self.user_streams.pong_timeout_s = value

    def ws_clients(self, path: str | None = None) -> int:
        """How many websocket connections the peer still serves (optionally on `path`).

        A connection the peer drops counts until its close frame (or TCP abort) is
        out. The client may read that close frame a little later.
        """
        with self._lock:
            return sum(
                1 for c in self.user_streams.connections.values() if path is None or c.path == path
            )

    def ws_subscriptions(self, key: str | None = None) -> list[dict[str, Any]]:
        """Active WebSocket API user data subscriptions: connection, subscriptionId, key."""
        with self._lock:
            return [
                {"connection": s.connection.id, "subscriptionId": s.id, "key": s.api_key}
                for s in self.user_streams.subscriptions
                if key is None or s.api_key == key
            ]

    def ws_pongs(self) -> dict[int, int]:
        """Pongs received so far, per open connection id."""
        with self._lock:
            return {c.id: c.pongs_received for c in self.user_streams.connections.values()}

    def ws_frames(
        self, direction: str | None = None, connection: int | None = None
    ) -> list[WsFrame]:
        """Text frames seen on the websockets ("in": from clients, "out": sent by the peer)."""
        with self._lock:
            return [
                f
                for f in self.user_streams.frames
                if (direction is None or f.direction == direction)
                and (connection is None or f.connection == connection)
            ]

    def ws_requests(self, method: str | None = None) -> list[dict[str, Any]]:
        """WebSocket API requests received, decoded (optionally only those with `method`)."""
        return [
            f.data
            for f in self.ws_frames("in")
            if isinstance(f.data, dict) and (method is None or f.data.get("method") == method)
        ]

    def ws_events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """User data events sent, unwrapped (`e` = `event_type` if given), in sending order."""
        events = []
        for f in self.ws_frames("out"):
            data = f.data
            if isinstance(data, dict) and isinstance(data.get("event"), dict):
                data = data["event"]
            elif isinstance(data, dict) and isinstance(data.get("data"), dict):
                data = data["data"]
            if isinstance(data, dict) and "e" in data:
                if event_type is None or data["e"] == event_type:
                    events.append(data)
        return events

    def ws_disconnect_all(self, code: int = 1000, *, abort: bool = False) -> int:
        """Drop every websocket: a close frame with `code` once pending frames are sent,
        or (`abort`) a TCP abort with no close frame. Returns how many were dropped;
        the drop itself happens on the server's loop (poll `ws_clients()`)."""
        return self.user_streams.disconnect_all(code, abort)

    def ws_terminate(self, key: str) -> int:
        """End `key`'s WebSocket API subscriptions with `eventStreamTerminated`."""
        return self.user_streams.terminate(key)

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        body: dict[str, Any] | str | None = None,
        *,
        headers: dict[str, str] | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next `count` requests (optionally only under `path_prefix`) with an error.

        `body` None: Binance's JSON error for the status (503 -> -1001, 429/418 -> -1003);
        a dict is sent as JSON; a str as text/plain (e.g. "Service Unavailable.").
        The failed requests are recorded but have no effect on the state.
        """
        if body is None:
            body = DEFAULT_FAILURE_BODIES.get(status, {"code": -1000, "msg": "Unknown error."})
        extra = dict(headers or {})
        if status in (418, 429):
            extra.setdefault("Retry-After", "1")
        with self._lock:
            if isinstance(body, str):
                self.failures.append(
                    InjectedFailure(count, status, body, "text/plain", extra, path_prefix)
                )
            else:
                self.failures.append(
                    InjectedFailure(
                        count, status, json.dumps(body), "application/json", extra, path_prefix
                    )
                )

    def requests_to(self, path: str, method: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path == path and (method is None or r.method == method.upper())
            ]

    def server_time(self) -> int:
        return now_ms() + self.clock_skew_ms

    # ----- HTTP ----------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        public = [
            ("GET", "/api/v3/ping", self._ping),
            ("GET", "/api/v3/time", self._time),
            ("GET", "/api/v3/exchangeInfo", self._exchange_info),
            ("GET", "/api/v3/ticker/price", self._ticker_price),
            ("GET", "/api/v3/ticker/bookTicker", self._book_ticker),
            ("GET", "/api/v3/ticker/24hr", self._ticker_24hr),
        ]
        signed = [
            ("GET", "/api/v3/account", self._account),
            ("GET", "/sapi/v1/account/apiRestrictions", self._api_restrictions),
            ("GET", "/sapi/v1/margin/allPairs", self._margin_pairs),
            ("GET", "/sapi/v1/margin/isolated/allPairs", self._margin_pairs),
            ("POST", "/api/v3/order", self._new_order),
            ("GET", "/api/v3/order", self._query_order),
            ("DELETE", "/api/v3/order", self._cancel_order),
            ("GET", "/api/v3/openOrders", self._open_orders),
            ("GET", "/api/v3/allOrders", self._all_orders),
            ("GET", "/api/v3/myTrades", self._my_trades),
        ]
        for method, path, public_handler in public:
            app.router.add_route(method, path, self._public(public_handler))
        for method, path, signed_handler in signed:
            app.router.add_route(method, path, self._signed(signed_handler))
        self.user_streams.add_routes(app)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.text() if request.can_read_body else ""
        query_string = request.rel_url.raw_query_string
        params = dict(parse_qsl(body, keep_blank_values=True))
        params.update(parse_qsl(query_string, keep_blank_values=True))
        received = ReceivedRequest(
            method=request.method,
            path=request.path,
            query_string=query_string,
            body=body,
            params=params,
            headers=dict(request.headers),
            api_key=request.headers.get("X-MBX-APIKEY"),
        )
        request[RAW_BODY] = body
        request[PARAMS] = params
        with self._lock:
            self.requests.append(received)
            upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
            failure = next(
                (
                    f
                    for f in self.failures
                    if f.remaining > 0
                    and (
                        request.path.startswith(f.path_prefix)
                        if f.path_prefix is not None
                        else not upgrade  # only an explicit prefix fails a websocket handshake
                    )
                ),
                None,
            )
            if failure is not None:
                failure.remaining -= 1
                if failure.remaining == 0:
                    self.failures.remove(failure)
        response: web.StreamResponse
        if failure is not None:
            response = web.Response(
                status=failure.status,
                text=failure.body,
                content_type=failure.content_type,
                headers=failure.headers,
            )
        else:
            try:
                response = await handler(request)
            except BinanceError as e:
                response = e.response()
        received.status = response.status  # 101 for a websocket, once it has ended
        if (
            isinstance(response, web.Response)
            and response.content_type == "application/json"
            and isinstance(response.body, bytes)
        ):
            received.response = json.loads(response.body)
        return response

    def _public(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.Response:
            with self._lock:
                return web.json_response(handler(request[PARAMS]))

        return wrapped

    def _signed(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.Response:
            with self._lock:
                api_key = self._authenticate(request)
                if (request.method, request.path) in TRADE_ENDPOINTS and not api_key.permissions[
                    "enableSpotAndMarginTrading"
                ]:
                    raise BinanceError(401, -2015, MSG_INVALID_KEY)
                return web.json_response(handler(api_key, request[PARAMS]))

        return wrapped

    def _authenticate(self, request: web.Request) -> ApiKey:
        payload = _without_signature(request.rel_url.raw_query_string) + _without_signature(
            request[RAW_BODY]
        )
        return self.verify_signed(request.headers.get("X-MBX-APIKEY"), request[PARAMS], payload)

    def verify_signed(
        self,
        key: str | None,
        params: dict[str, str],
        payload: str,
        *,
        key_param: str | None = None,
    ) -> ApiKey:
        """Binance's SIGNED checks: the key, `timestamp`, the HMAC of `payload`, recvWindow.

        `key` comes from the X-MBX-APIKEY header (REST) or the `apiKey` param
        (WebSocket API, `key_param` names it for the missing-parameter error).
        """
        if not key:
            if key_param is not None:
                raise mandatory(key_param)
            raise BinanceError(401, -2014, "API-key format invalid.")
        api_key = self.keys.get(key)
        if api_key is None or not api_key.permissions.get("enableReading", True):
            raise BinanceError(401, -2015, MSG_INVALID_KEY)
        if not params.get("timestamp"):
            raise mandatory("timestamp")
        if not params.get("signature"):
            raise mandatory("signature")
        expected = hmac.new(api_key.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params["signature"].lower()):
            raise BinanceError(400, -1022, MSG_BAD_SIGNATURE)
        try:
            timestamp = int(params["timestamp"])
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError as e:
            raise mandatory("timestamp") from e
        if recv_window > 60000:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        server_time = self.server_time()
        if not (timestamp < server_time + 1000 and server_time - timestamp <= recv_window):
            raise BinanceError(400, -1021, MSG_RECV_WINDOW)
        return api_key

    # ----- public endpoints ----------------------------------------------------------------

    def _ping(self, params: dict[str, str]) -> Any:
        return {}

    def _time(self, params: dict[str, str]) -> Any:
        return {"serverTime": self.server_time()}

    def _exchange_info(self, params: dict[str, str]) -> Any:
        wanted = self._symbols_param(params)
        return {
            "timezone": "UTC",
            "serverTime": self.server_time(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {
                    "rateLimitType": "RAW_REQUESTS",
                    "interval": "MINUTE",
                    "intervalNum": 5,
                    "limit": 61000,
                },
            ],
            "exchangeFilters": [],
            "symbols": [self.symbols[s].info() for s in wanted],
        }

    def _symbols_param(self, params: dict[str, str]) -> list[str]:
        if "symbol" in params:
            if params["symbol"] not in self.symbols:
                raise BinanceError(400, -1121, "Invalid symbol.")
            return [params["symbol"]]
        if "symbols" in params:
            wanted = json.loads(params["symbols"])
            for s in wanted:
                if s not in self.symbols:
                    raise BinanceError(400, -1121, "Invalid symbol.")
            return list(wanted)
        return list(self.symbols)

    def _ticker_price(self, params: dict[str, str]) -> Any:
        rows = [{"symbol": s, "price": fmt(self.prices[s])} for s in self._symbols_param(params)]
        return rows[0] if "symbol" in params else rows

    def _book_ticker(self, params: dict[str, str]) -> Any:
        rows = []
        for s in self._symbols_param(params):
            price, tick = self.prices[s], self.symbols[s].tick_size
            rows.append(
                {
                    "symbol": s,
                    "bidPrice": fmt(price - tick),
                    "bidQty": fmt(D(10)),
                    "askPrice": fmt(price),
                    "askQty": fmt(D(10)),
                }
            )
        return rows[0] if "symbol" in params else rows

    def _ticker_24hr(self, params: dict[str, str]) -> Any:
        rows = []
        now = self.server_time()
        for s in self._symbols_param(params):
            price, tick = self.prices[s], self.symbols[s].tick_size
            rows.append(
                {
                    "symbol": s,
                    "priceChange": fmt(ZERO),
                    "priceChangePercent": "0.000",
                    "weightedAvgPrice": fmt(price),
                    "prevClosePrice": fmt(price),
                    "lastPrice": fmt(price),
                    "lastQty": fmt(D("0.001")),
                    "bidPrice": fmt(price - tick),
                    "bidQty": fmt(D(10)),
                    "askPrice": fmt(price),
                    "askQty": fmt(D(10)),
                    "openPrice": fmt(price),
                    "highPrice": fmt(price),
                    "lowPrice": fmt(price),
                    "volume": fmt(ZERO),
                    "quoteVolume": fmt(ZERO),
                    "openTime": now - 86400000,
                    "closeTime": now,
                    "firstId": -1,
                    "lastId": -1,
                    "count": 0,
                }
            )
        return rows[0] if "symbol" in params else rows

    # ----- signed endpoints ----------------------------------------------------------------

    def _account(self, api_key: ApiKey, params: dict[str, str]) -> Any:
        account = api_key.account
        omit_zero = params.get("omitZeroBalances") == "true"
        balances = [
            {"asset": asset, "free": fmt(free), "locked": fmt(locked)}
            for asset, (free, locked) in sorted(account.balances.items())
            if not (omit_zero and free == ZERO and locked == ZERO)
        ]
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": fmt(self.commission_rate),
                "taker": fmt(self.commission_rate),
                "buyer": fmt(ZERO),
                "seller": fmt(ZERO),
            },
            "canTrade": bool(api_key.permissions["enableSpotAndMarginTrading"]),
            "canWithdraw": bool(api_key.permissions["enableWithdrawals"]),
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.server_time(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": account.uid,
        }

    def _api_restrictions(self, api_key: ApiKey, params: dict[str, str]) -> Any:
        return dict(api_key.permissions)

    def _margin_pairs(self, api_key: ApiKey, params: dict[str, str]) -> Any:
        # ccxt's load_markets asks for these (signed) when options["fetchMargins"] is on,
        # its default. No symbol is margin-enabled on this peer.
        return []

    def _spec(self, params: dict[str, str]) -> SymbolSpec:
        symbol = params.get("symbol")
        if not symbol:
            raise mandatory("symbol")
        if symbol not in self.symbols:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return self.symbols[symbol]

    def _new_order(self, api_key: ApiKey, params: dict[str, str]) -> Any:
        spec = self._spec(params)
        account = api_key.account
        side = params.get("side", "")
        order_type = params.get("type", "")
        if side not in ("BUY", "SELL"):
            raise mandatory("side")
        if order_type not in ("MARKET", "LIMIT"):
            if not order_type:
                raise mandatory("type")
            raise BinanceError(400, -1116, "Invalid orderType.")
        client_order_id = params.get("newClientOrderId") or f"peer{self._next_order_id}"
        if not re.fullmatch(r"[\.A-Z:/a-z0-9_-]{1,36}", client_order_id):
            raise BinanceError(
                400,
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; "
                "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        resp_type = params.get("newOrderRespType", "FULL")
        last = self.prices[spec.symbol]
        quantity = _decimal(params, "quantity")
        quote_qty = _decimal(params, "quoteOrderQty")
        price = _decimal(params, "price")

        if order_type == "LIMIT":
            tif = params.get("timeInForce")
            if not tif:
                raise mandatory("timeInForce")
            if quantity is None:
                raise mandatory("quantity")
            if price is None:
                raise mandatory("price")
            if not (
                spec.min_price <= price <= spec.max_price
                and (price - spec.min_price) % spec.tick_size == 0
            ):
                raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
            _check_lot(quantity, spec.min_qty, spec.max_qty, spec.step_size, "LOT_SIZE")
            notional = price * quantity
            if notional < spec.min_notional or notional > spec.max_notional:
                raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
        else:
            tif = "GTC"
            if quantity is None and quote_qty is None:
                raise BinanceError(
                    400,
                    -1102,
                    "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                )
            if quantity is not None and quote_qty is not None:
                raise BinanceError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
            if quantity is None:
                assert quote_qty is not None
                step = spec.step_size
                quantity = (quote_qty / last).quantize(step, rounding=ROUND_DOWN)
            _check_lot(quantity, spec.min_qty, spec.max_qty, spec.step_size, "LOT_SIZE")
            _check_lot(
                quantity,
                spec.market_min_qty,
                spec.market_max_qty,
                spec.market_step_size,
                "MARKET_LOT_SIZE",
            )
            notional = last * quantity
            if (spec.apply_min_to_market and notional < spec.min_notional) or (
                spec.apply_max_to_market and notional > spec.max_notional
            ):
                raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
            price = ZERO

        duplicates = [o for o in account.orders if o.client_order_id == client_order_id]
        if any(o.is_open for o in duplicates) or (
            duplicates and self.duplicate_client_order_ids == "any"
        ):
            raise BinanceError(400, -2010, MSG_DUPLICATE)

        # Balance: what the order needs now (limit orders lock it while they rest).
        marketable = order_type == "MARKET" or (
            (side == "BUY" and price >= last) or (side == "SELL" and price <= last)
        )
        if side == "BUY":
            need_asset, need = spec.quote, (price if order_type == "LIMIT" else last) * quantity
        else:
            need_asset, need = spec.base, quantity
        if account.free(need_asset) < need:
            raise BinanceError(400, -2010, MSG_INSUFFICIENT)

        now = self.server_time()
        order = Order(
            symbol=spec.symbol,
            order_id=self._next_order_id,
            client_order_id=client_order_id,
            side=side,
            type=order_type,
            time_in_force=tif,
            price=price,
            orig_qty=quantity,
            orig_quote_qty=quote_qty or ZERO,
            time=now,
            update_time=now,
        )
        self._next_order_id += 1
        account.orders.append(order)
        rests = not marketable and tif == "GTC"
        self.user_streams.order_update(account, order, "NEW", on_book=rests)
        if marketable:
            self._fill(account, order, last, maker=False)
        elif tif in ("IOC", "FOK"):
            order.status = "EXPIRED"
            self.user_streams.order_update(account, order, "EXPIRED")
        else:
            order.locked_asset, order.locked = need_asset, need
            account.move(need_asset, -need, need)
        if marketable or rests:
            self.user_streams.account_position(account, [spec.base, spec.quote])
        return order.new_order_shape(resp_type)

    def _fill(self, account: Account, order: Order, price: D, *, maker: bool) -> None:
        spec = self.symbols[order.symbol]
        qty = order.orig_qty - order.executed_qty
        quote = price * qty
        if order.locked:
            account.move(order.locked_asset, order.locked, -order.locked)
            order.locked = ZERO
        if order.side == "BUY":
            commission, commission_asset = qty * self.commission_rate, spec.base
            account.move(spec.quote, -quote)
            account.move(spec.base, qty - commission)
        else:
            commission, commission_asset = quote * self.commission_rate, spec.quote
            account.move(spec.base, -qty)
            account.move(spec.quote, quote - commission)
        now = self.server_time()
        trade = {
            "symbol": order.symbol,
            "id": self._next_trade_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "price": fmt(price),
            "qty": fmt(qty),
            "quoteQty": fmt(quote),
            "commission": fmt(commission),
            "commissionAsset": commission_asset,
            "time": now,
            "isBuyer": order.side == "BUY",
            "isMaker": maker,
            "isBestMatch": True,
        }
        self._next_trade_id += 1
        account.trades.append(trade)
        order.fills.append(trade)
        order.executed_qty += qty
        order.cumm_quote_qty += quote
        order.status = "FILLED"
        order.update_time = now
        self.user_streams.order_update(account, order, "TRADE", trade=trade)

    def _find_order(self, api_key: ApiKey, params: dict[str, str], not_found: str) -> Order:
        spec = self._spec(params)
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            raise BinanceError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        candidates = [o for o in api_key.account.orders if o.symbol == spec.symbol]
        if order_id:
            candidates = [o for o in candidates if str(o.order_id) == order_id]
        if client_id:
            candidates = [o for o in candidates if o.client_order_id == client_id]
        if not candidates:
            code = -2013 if not_found == MSG_NO_ORDER else -2011
            raise BinanceError(400, code, not_found)
        return candidates[-1]

    def _query_order(self, api_key: ApiKey, params: dict[str, str]) -> Any:
        return self._find_order(api_key, params, MSG_NO_ORDER).query_shape()

    def _cancel_order(self, api_key: ApiKey, params: dict[str, str]) -> Any:
        order = self._find_order(api_key, params, MSG_UNKNOWN_ORDER)
        if not order.is_open:
            raise BinanceError(400, -2011, MSG_UNKNOWN_ORDER)
        account = api_key.account
        if order.locked:
            account.move(order.locked_asset, order.locked, -order.locked)
            order.locked = ZERO
        order.status = "CANCELED"
        order.update_time = self.server_time()
        cancel_id = params.get("newClientOrderId") or f"cancel{order.order_id}"
        self.user_streams.order_update(
            account,
            order,
            "CANCELED",
            client_order_id=cancel_id,
            orig_client_order_id=order.client_order_id,
        )
        spec = self.symbols[order.symbol]
        self.user_streams.account_position(account, [spec.base, spec.quote])
        shape = order.query_shape()
        return {
            "symbol": order.symbol,
            "origClientOrderId": order.client_order_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": cancel_id,
            "transactTime": order.update_time,
            **{
                k: shape[k]
                for k in (
                    "price",
                    "origQty",
                    "executedQty",
                    "cummulativeQuoteQty",
                    "status",
                    "timeInForce",
                    "type",
                    "side",
                    "selfTradePreventionMode",
                )
            },
        }

    def _open_orders(self, api_key: ApiKey, params: dict[str, str]) -> Any:
        symbol = params.get("symbol")
        if symbol:
            self._spec(params)
        return [
            o.query_shape()
            for o in api_key.account.orders
            if o.is_open and (not symbol or o.symbol == symbol)
        ]

    def _all_orders(self, api_key: ApiKey, params: dict[str, str]) -> Any:
        spec = self._spec(params)
        rows = [o for o in api_key.account.orders if o.symbol == spec.symbol]
        if params.get("orderId"):
            rows = [o for o in rows if o.order_id >= int(params["orderId"])]
        if params.get("startTime"):
            rows = [o for o in rows if o.time >= int(params["startTime"])]
        if params.get("endTime"):
            rows = [o for o in rows if o.time <= int(params["endTime"])]
        limit = min(int(params.get("limit") or 500), 1000)
        return [o.query_shape() for o in rows[:limit]]

    def _my_trades(self, api_key: ApiKey, params: dict[str, str]) -> Any:
        spec = self._spec(params)
        rows = [t for t in api_key.account.trades if t["symbol"] == spec.symbol]
        if params.get("orderId"):
            rows = [t for t in rows if t["orderId"] == int(params["orderId"])]
        if params.get("fromId"):
            rows = [t for t in rows if t["id"] >= int(params["fromId"])]
        if params.get("startTime"):
            rows = [t for t in rows if t["time"] >= int(params["startTime"])]
        if params.get("endTime"):
            rows = [t for t in rows if t["time"] <= int(params["endTime"])]
        limit = min(int(params.get("limit") or 500), 1000)
        return rows[:limit]


def _without_signature(raw: str) -> str:
    """`raw` with its `signature=` parameter removed, everything else byte for byte."""
    parts = raw.split("&") if raw else []
    return "&".join(p for p in parts if not p.startswith("signature="))


def _decimal(params: dict[str, str], name: str) -> D | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        result = D(value)
    except ArithmeticError as e:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.") from e
    if not result.is_finite() or result <= 0:
        raise BinanceError(400, -1013, "Invalid quantity." if name != "price" else "Invalid price.")
    return result


def _check_lot(qty: D, min_qty: D, max_qty: D, step: D, name: str) -> None:
    if qty < min_qty or (max_qty > 0 and qty > max_qty) or (step > 0 and (qty - min_qty) % step):
        raise BinanceError(400, -1013, f"Filter failure: {name}")


def _peer_urls(urls: dict[str, Any], base: str) -> None:
    """Point every URL in `urls` (nested dicts too) at `base`, keeping each path."""
    for name, url in list(urls.items()):
        if isinstance(url, str):
            urls[name] = base + urlsplit(url).path
        elif isinstance(url, dict):
            _peer_urls(url, base)


def binance_client(peer: BinanceSpotPeer, key: str, secret: str, **options: Any) -> Any:
    """A real `ccxt.async_support.binance` whose every REST base URL points at `peer`.

    Every entry of `exchange.urls["api"]` (public, private, v1, sapi*, fapi*, dapi*,
    eapi*, papi*) keeps its path and gets the peer's scheme, host and port, so
    nothing can leak to the real exchange. Markets are loaded for spot only. The
    caller must `await exchange.close()`.
    """
    import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]

    exchange = ccxt_async.binance(
        {
            "apiKey": key,
            "secret": secret,
            "options": {
                "defaultType": "spot",
                "fetchCurrencies": False,
                "fetchMarkets": {"types": ["spot"]},
                **options,
            },
        }
    )
    api_urls = exchange.urls["api"]
    rest = {k: v for k, v in api_urls.items() if isinstance(v, str)}
    _peer_urls(rest, peer.base_url)
    api_urls.update(rest)
    return exchange


def binance_pro_client(peer: BinanceSpotPeer, key: str, secret: str, **options: Any) -> Any:
    """A real `ccxt.pro.binance` whose REST and websocket URLs all point at `peer`.

    REST URLs as in `binance_client`; every websocket URL under
    `exchange.urls["api"]["ws"]` (stream URLs and the nested `ws-api` ones) keeps
    its path on `ws://127.0.0.1:<port>`, so the spot WebSocket API is
    `ws://127.0.0.1:<port>/ws-api/v3`. The caller must `await exchange.close()`.
    """
    import ccxt.pro as ccxt_pro  # type: ignore[import-untyped]

    exchange = ccxt_pro.binance(
        {
            "apiKey": key,
            "secret": secret,
            "options": {
                "defaultType": "spot",
                "fetchCurrencies": False,
                "fetchMarkets": {"types": ["spot"]},
                **options,
            },
        }
    )
    api_urls = exchange.urls["api"]
    rest = {k: v for k, v in api_urls.items() if isinstance(v, str)}
    _peer_urls(rest, peer.base_url)
    api_urls.update(rest)
    _peer_urls(api_urls["ws"], "ws://" + peer.base_url.split("://", 1)[1])
    return exchange
