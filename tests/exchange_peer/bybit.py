"""A local Bybit v5 REST peer (Unified Trading Account): Bybit's wire format and checks, in memory.

Test code only (product code must never import it). It is a real HTTP server (see
`server.py`) that answers the subset of https://api.bybit.com that ccxt's `bybit` class
(4.5.90) uses for USDT perpetuals (`category=linear`) and spot:

public   GET  /v5/market/time, /v5/market/instruments-info (category linear | spot,
              `status` filter: only `Trading` instruments unless asked otherwise)
signed   GET  /v5/user/query-api, /v5/account/info, /v5/asset/coin/query-info,
              /v5/account/wallet-balance (accountType UNIFIED), /v5/position/list,
              /v5/order/realtime, /v5/order/history, /v5/execution/list
         POST /v5/position/set-leverage, /v5/position/switch-mode,
              /v5/account/set-margin-mode, /v5/order/create, /v5/order/cancel

Every answer is Bybit's envelope `{"retCode", "retMsg", "result", "retExtInfo", "time"}`
with HTTP 200, errors included (Bybit reports them in `retCode`, not in the status).

Signed requests are checked the way Bybit documents them: headers `X-BAPI-API-KEY`,
`X-BAPI-TIMESTAMP`, `X-BAPI-RECV-WINDOW` (default 5000) and `X-BAPI-SIGN` = lowercase
hex HMAC-SHA256, keyed by the secret, of timestamp + api key + recv window + (the raw
query string for GET | the raw JSON body for POST). Unknown key: 10003 "API key is
invalid."; timestamp outside `server_time - recv_window <= timestamp < server_time + 1000`:
10002; wrong signature: 10004 "error sign! origin_string[...]". The key's permissions
(`/v5/user/query-api`) are enforced: a read-only key, or one without ContractTrade
"Order" / "Position" (linear) or Spot "SpotTrade" (spot), gets 10005 on the endpoints
that need them.

The account is a UTA 2.0 account (`uta: 1`, `unifiedMarginStatus: 5`): one UNIFIED wallet
per key, USDT the only margin collateral. Semantics, deliberately small but Bybit's where
they matter:
- positions per (symbol, positionIdx): idx 0 in one-way mode, 1 (long) and 2 (short) in
  hedge mode; weighted-average entry price; realised P&L (and fees) go into the USDT
  wallet on every reduction; `curRealisedPnl` restarts when a position reopens;
- linear market orders fill at once, in full, at the price set by `set_price`
  (shown as an IOC order whose `price` is the 1% slippage bound, as Bybit shows it);
  limit orders fill at once at the last price when marketable, else rest (GTC; IOC/FOK
  are cancelled, PostOnly that would take is cancelled), and a later `set_price` that
  crosses them fills them at their limit price as maker;
- position mode: `switch-mode` by symbol or by settle coin (0 one-way, 3 hedge);
  110025 when nothing changes, 110024 / 110028 when the symbol has a position / open
  orders; `positionIdx` that does not fit the mode: 10001 "position idx not match
  position mode";
- reduce-only (and, in hedge mode, any order against its side's position): 110017
  "current position is zero, cannot fix reduce-only order qty" when there is nothing to
  reduce; a quantity above the position is cut to the position size (Bybit "fixes" the
  qty, `reduce_only_excess = "trim"`, the default) or refused with 110017 "ReduceOnly rule
  not satisfied." (`reduce_only_excess = "reject"`);
- opening quantity needs notional / leverage (+ taker fee) of available balance
  (wallet + unrealised P&L - position IM - order IM): 110007 "ab not enough for new
  order"; notional below `minNotionalValue`: 110094; `orderLinkId` reused (Bybit: "always
  unique"): 110072 "OrderLinkedID is duplicate" (spot: 170141);
- `set-leverage`: 110043 "Set leverage not modified" for the current value, 110013 above
  the instrument's maximum; `set-margin-mode` (REGULAR / ISOLATED / PORTFOLIO) is
  account-wide and accepted again for the current mode ("Request accepted"), refused with
  3400045 while positions or open orders exist or for PORTFOLIO below 1000 USD equity;
- wallet balance: `availableToWithdraw` and `availableToBorrow` are `""` (Bybit deprecated
  them for UNIFIED in January 2025); `locked`, `totalPositionIM`, `totalOrderIM`, `equity`,
  `unrealisedPnl` and the account totals are computed from the state;
- `/v5/order/realtime` returns open orders, or (`openOnly=1`) recent closed ones; given
  `orderId` or `orderLinkId` it returns that order whatever its status (Bybit ignores
  `openOnly` then), `orderId` taking priority over `orderLinkId`;
- spot (UTA): market orders by `marketUnit` baseCoin or quoteCoin (a Buy without it is by
  quote), limit orders lock the coin they spend; fee in the coin received.

Messages marked (approx.) in the code are plausible texts where Bybit's exact wording
could not be confirmed; the codes are Bybit's.

Test hooks (Python, not HTTP): `add_key`, `remove_key`, `set_permissions`, `set_balance`,
`balance`, `set_price`, `positions`, `orders`, `executions`, `requests` /
`requests_to`, `fail_next`, `clock_skew_ms`, `taker_fee_rate` / `maker_fee_rate`,
`reduce_only_excess`, `start` / `stop`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from .server import ThreadedServer

D = Decimal
ZERO = D(0)
ONE = D(1)

# Bybit's messages.
MSG_INVALID_KEY = "API key is invalid."
MSG_PERMISSION = "Permission denied, please check your API key permissions."
MSG_DUPLICATE_LINK_ID = "OrderLinkedID is duplicate"
MSG_NOT_ENOUGH = "ab not enough for new order"
MSG_RO_ZERO = "current position is zero, cannot fix reduce-only order qty"
MSG_RO_RULE = "ReduceOnly rule not satisified."
MSG_ORDER_NOT_EXISTS = "order not exists or too late to cancel"
MSG_LEVERAGE_NOT_MODIFIED = "Set leverage not modified"
MSG_MODE_NOT_MODIFIED = "Position mode is not modified"
MSG_MODE_POSITION = "You have an existing position, so position mode cannot be switched"
MSG_MODE_ORDERS = "Open orders exist, so you cannot change position mode"
MSG_IDX_MISMATCH = "position idx not match position mode"
MSG_SYSTEM_ERROR = "Internal System Error."

DEFAULT_PERMISSIONS: dict[str, list[str]] = {
    "ContractTrade": ["Order", "Position"],
    "Spot": ["SpotTrade"],
    "Wallet": ["AccountTransfer", "SubMemberTransfer"],
    "Options": ["OptionsTrade"],
    "Derivatives": ["DerivativesTrade"],
    "CopyTrading": [],
    "BlockTrade": [],
    "Exchange": ["ExchangeHistory"],
    "NFT": [],
    "Affiliate": [],
    "Earn": [],
}

MARGIN_MODES = ("REGULAR_MARGIN", "ISOLATED_MARGIN", "PORTFOLIO_MARGIN")
OPEN_STATUSES = ("New", "PartiallyFilled", "Untriggered")


def now_ms() -> int:
    return int(time.time() * 1000)


def plain(value: D) -> str:
    """A decimal without exponent or trailing zeros ("0" for zero)."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def money(value: D) -> str:
    """A balance or P&L amount: at most 8 decimals, no trailing zeros."""
    return plain(value.quantize(D("1E-8")))


def stepped(value: D, step: D) -> str:
    """`value` printed with as many decimals as `step` is written with ("0.10" -> 2)."""
    exponent = min(0, int(step.as_tuple().exponent))
    return str(value.quantize(D(1).scaleb(exponent)))


RAW_BODY = web.RequestKey("raw_body", str)
PARAMS = web.RequestKey("params", dict)


class BybitError(Exception):
    def __init__(self, code: int, msg: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.result = result if result is not None else {}


def params_error(msg: str = "Request parameter error.") -> BybitError:
    return BybitError(10001, msg)


# Instrument defaults (module constants: Decimal is immutable).
D_0_001 = D("0.001")
D_0_01 = D("0.01")
D_0_10 = D("0.10")
D_5 = D("5")
D_100 = D("100.00")


@dataclass(frozen=True)
class LinearSpec:
    """A USDT perpetual as `/v5/market/instruments-info?category=linear` lists it."""

    symbol: str
    base: str
    tick_size: D
    min_price: D
    max_price: D
    qty_step: D
    min_qty: D
    max_qty: D
    max_mkt_qty: D
    min_notional: D = D_5
    max_leverage: D = D_100
    leverage_step: D = D_0_01
    quote: str = "USDT"
    settle: str = "USDT"
    status: str = "Trading"
    launch_time: int = 1585526400000

    def info(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "contractType": "LinearPerpetual",
            "status": self.status,
            "baseCoin": self.base,
            "quoteCoin": self.quote,
            "launchTime": str(self.launch_time),
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": str(max(0, -int(self.tick_size.as_tuple().exponent))),
            "leverageFilter": {
                "minLeverage": "1",
                "maxLeverage": stepped(self.max_leverage, self.leverage_step),
                "leverageStep": str(self.leverage_step),
            },
            "priceFilter": {
                "minPrice": stepped(self.min_price, self.tick_size),
                "maxPrice": stepped(self.max_price, self.tick_size),
                "tickSize": str(self.tick_size),
            },
            "lotSizeFilter": {
                "maxOrderQty": stepped(self.max_qty, self.qty_step),
                "minOrderQty": stepped(self.min_qty, self.qty_step),
                "qtyStep": str(self.qty_step),
                "postOnlyMaxOrderQty": stepped(self.max_qty, self.qty_step),
                "maxMktOrderQty": stepped(self.max_mkt_qty, self.qty_step),
                "minNotionalValue": plain(self.min_notional),
            },
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
            "settleCoin": self.settle,
            "copyTrading": "both",
            "upperFundingRate": "0.005",
            "lowerFundingRate": "-0.005",
            "isPreListing": False,
            "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
            "displayName": "",
        }


@dataclass(frozen=True)
class SpotSpec:
    """A spot pair as `/v5/market/instruments-info?category=spot` lists it."""

    symbol: str
    base: str
    quote: str
    base_precision: D
    quote_precision: D
    min_qty: D
    max_qty: D
    min_amount: D
    max_amount: D
    tick_size: D
    status: str = "Trading"

    def info(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "baseCoin": self.base,
            "quoteCoin": self.quote,
            "innovation": "0",
            "status": self.status,
            "marginTrading": "utaOnly",
            "stTag": "0",
            "lotSizeFilter": {
                "basePrecision": str(self.base_precision),
                "quotePrecision": str(self.quote_precision),
                "minOrderQty": plain(self.min_qty),
                "maxOrderQty": plain(self.max_qty),
                "minOrderAmt": plain(self.min_amount),
                "maxOrderAmt": plain(self.max_amount),
            },
            "priceFilter": {"tickSize": str(self.tick_size)},
            "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
        }


DEFAULT_LINEAR = [
    LinearSpec(
        "BTCUSDT",
        "BTC",
        tick_size=D_0_10,
        min_price=D_0_10,
        max_price=D("1999999.80"),
        qty_step=D_0_001,
        min_qty=D_0_001,
        max_qty=D("1190.000"),
        max_mkt_qty=D("119.000"),
    ),
    LinearSpec(
        "ETHUSDT",
        "ETH",
        tick_size=D_0_01,
        min_price=D_0_01,
        max_price=D("199999.98"),
        qty_step=D_0_01,
        min_qty=D_0_01,
        max_qty=D("7240.00"),
        max_mkt_qty=D("724.00"),
    ),
]
DEFAULT_SPOT = [
    SpotSpec(
        "BTCUSDT",
        "BTC",
        "USDT",
        base_precision=D("0.000001"),
        quote_precision=D("0.00000001"),
        min_qty=D("0.000048"),
        max_qty=D("71.73956243"),
        min_amount=D("1"),
        max_amount=D("4000000"),
        tick_size=D("0.1"),
    ),
]
DEFAULT_PRICES = {"BTCUSDT": D("60000"), "ETHUSDT": D("3000")}
DEFAULT_LEVERAGE = D(10)


@dataclass
class Position:
    symbol: str
    position_idx: int
    leverage: D
    side: str = ""  # "Buy" (long), "Sell" (short), "" (flat)
    size: D = ZERO
    avg_price: D = ZERO
    cur_realised: D = ZERO
    cum_realised: D = ZERO
    created: int = 0
    updated: int = 0
    seq: int = -1


@dataclass
class Order:
    category: str
    symbol: str
    order_id: str
    order_link_id: str
    side: str
    order_type: str
    time_in_force: str
    price: D
    qty: D
    position_idx: int
    reduce_only: bool
    created: int
    last_price_on_created: D
    market_unit: str = ""
    status: str = "New"
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    cum_qty: D = ZERO
    cum_value: D = ZERO
    cum_fee: D = ZERO
    fee_coin: str = ""
    updated: int = 0
    order_im: D = ZERO  # margin reserved while a linear order rests
    locked_coin: str = ""  # coin a resting spot order locks
    locked: D = ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def leaves(self) -> D:
        return self.qty - self.cum_qty if self.is_open else ZERO


@dataclass
class ApiKey:
    key: str
    secret: str
    account: Account
    permissions: dict[str, list[str]]
    read_only: bool = False
    created_at: str = "2025-01-01T00:00:00Z"
    note: str = "peer"


@dataclass
class Account:
    uid: int
    wallet: dict[str, D] = field(default_factory=dict)
    cum_realised: dict[str, D] = field(default_factory=dict)
    margin_mode: str = "REGULAR_MARGIN"
    coin_mode: dict[str, int] = field(default_factory=dict)  # settle coin -> 0 | 3
    symbol_mode: dict[str, int] = field(default_factory=dict)  # symbol -> 0 | 3
    leverage: dict[str, D] = field(default_factory=dict)
    positions: dict[tuple[str, int], Position] = field(default_factory=dict)
    orders: list[Order] = field(default_factory=list)
    executions: list[dict[str, Any]] = field(default_factory=list)
    updated: int = 0


@dataclass
class ReceivedRequest:
    """One HTTP request as the peer received it."""

    method: str
    path: str
    query_string: str
    body: str
    params: dict[str, Any]  # query parameters (GET) or the decoded JSON body (POST)
    headers: dict[str, str]
    api_key: str | None
    status: int = 0
    response: Any = None  # the decoded JSON the peer answered with (None for text)

    @property
    def ret_code(self) -> int | None:
        return self.response.get("retCode") if isinstance(self.response, dict) else None


@dataclass
class InjectedFailure:
    remaining: int
    status: int
    body: str
    content_type: str
    headers: dict[str, str]
    path_prefix: str | None


def _text(params: dict[str, Any], name: str) -> str | None:
    """A parameter as Bybit reads it: JSON numbers and booleans as their text."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decimal(params: dict[str, Any], name: str) -> D | None:
    value = _text(params, name)
    if value is None or value == "":
        return None
    try:
        result = D(value)
    except (InvalidOperation, ValueError) as e:
        raise params_error(f"params error: {name} invalid") from e  # (approx.)
    if not result.is_finite():
        raise params_error(f"params error: {name} invalid")
    return result


def _bool(params: dict[str, Any], name: str) -> bool:
    return _text(params, name) in ("true", "1", "True")


def _multiple(value: D, step: D) -> bool:
    return step <= 0 or value % step == 0


class BybitPeer:
    """In-memory Bybit v5 (Unified Trading Account) behind a real local HTTP server."""

    def __init__(
        self,
        linear: list[LinearSpec] | None = None,
        spot: list[SpotSpec] | None = None,
        prices: dict[str, D | str | float] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.linear = {s.symbol: s for s in (DEFAULT_LINEAR if linear is None else linear)}
        self.spot = {s.symbol: s for s in (DEFAULT_SPOT if spot is None else spot)}
        self.prices: dict[str, D] = {
            k: D(str(v)) for k, v in (DEFAULT_PRICES if prices is None else prices).items()
        }
        self.keys: dict[str, ApiKey] = {}
        self.requests: list[ReceivedRequest] = []
        self.failures: list[InjectedFailure] = []
        self.clock_skew_ms = 0  # added to the peer's clock (`time` and the recv_window check)
        self.taker_fee_rate = ZERO
        self.maker_fee_rate = ZERO
        self.reduce_only_excess = "trim"  # "trim" (Bybit fixes the qty) or "reject"
        self._next_uid = 100000001
        self._next_spot_order_id = 1900000000000000001
        self._seq = 1000000
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
        usdt_balance: D | str | float = 0,
        *,
        permissions: dict[str, list[str]] | None = None,
        read_only: bool = False,
        balances: dict[str, D | str | float] | None = None,
        share_account_with: str | None = None,
    ) -> ApiKey:
        """Create an API key with its own UNIFIED account (or sharing another key's account).

        `permissions` replaces Bybit's permission groups given (e.g.
        `{"ContractTrade": []}` takes the contract trading permission away).
        """
        with self._lock:
            if share_account_with is not None:
                account = self.keys[share_account_with].account
            else:
                account = Account(uid=self._next_uid)
                self._next_uid += 1
                account.wallet["USDT"] = D(str(usdt_balance))
                for coin, amount in (balances or {}).items():
                    account.wallet[coin] = D(str(amount))
            perms = {k: list(v) for k, v in DEFAULT_PERMISSIONS.items()}
            perms.update({k: list(v) for k, v in (permissions or {}).items()})
            api_key = ApiKey(key, secret, account, perms, read_only)
            self.keys[key] = api_key
            return api_key

    def remove_key(self, key: str) -> None:
        with self._lock:
            del self.keys[key]

    def set_permissions(
        self, key: str, *, read_only: bool | None = None, **groups: list[str]
    ) -> None:
        with self._lock:
            api_key = self.keys[key]
            api_key.permissions.update({k: list(v) for k, v in groups.items()})
            if read_only is not None:
                api_key.read_only = read_only

    def set_balance(self, key: str, coin: str, amount: D | str | float) -> None:
        with self._lock:
            self.keys[key].account.wallet[coin] = D(str(amount))

    def balance(self, key: str) -> dict[str, D]:
        """Wallet balance per coin (realised P&L and fees included, unrealised not)."""
        with self._lock:
            return {c: v for c, v in self.keys[key].account.wallet.items() if v != 0}

    def positions(self, key: str) -> list[Position]:
        """Copies of the key's open positions (size > 0)."""
        with self._lock:
            return [
                Position(**vars(p)) for p in self.keys[key].account.positions.values() if p.size > 0
            ]

    def orders(self, key: str) -> list[Order]:
        with self._lock:
            return [Order(**vars(o)) for o in self.keys[key].account.orders]

    def executions(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self.keys[key].account.executions]

    def set_price(self, symbol: str, price: D | str | float) -> None:
        """Set the last (and mark) price; resting limit orders it crosses fill at their price."""
        with self._lock:
            self.prices[symbol] = D(str(price))
            last = self.prices[symbol]
            for account in {id(k.account): k.account for k in self.keys.values()}.values():
                for order in list(account.orders):
                    if order.symbol != symbol or not order.is_open:
                        continue
                    if (order.side == "Buy" and last <= order.price) or (
                        order.side == "Sell" and last >= order.price
                    ):
                        if order.category == "linear":
                            self._fill_resting_linear(account, order)
                        else:
                            self._fill_spot(account, order, order.qty, order.price, maker=True)

    def fail_next(
        self,
        count: int = 1,
        status: int = 200,
        body: dict[str, Any] | str | None = None,
        *,
        headers: dict[str, str] | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next `count` requests (optionally only under `path_prefix`) with an error.

        `body` None: with status 200 Bybit's `{"retCode": 10016, "retMsg": "Internal System
        Error."}` envelope, otherwise a text body (Bybit's gateway answers 403 when the IP
        rate limit is breached). A dict is sent as JSON, a str as text/plain. The failed
        requests are recorded but have no effect on the state.
        """
        if body is None:
            if status == 200:
                body = self._envelope_error(10016, MSG_SYSTEM_ERROR)
            else:
                body = {403: "403 Forbidden", 429: "429 Too Many Requests"}.get(
                    status, f"{status} error"
                )
        with self._lock:
            if isinstance(body, str):
                self.failures.append(
                    InjectedFailure(
                        count, status, body, "text/plain", dict(headers or {}), path_prefix
                    )
                )
            else:
                self.failures.append(
                    InjectedFailure(
                        count,
                        status,
                        json.dumps(body),
                        "application/json",
                        dict(headers or {}),
                        path_prefix,
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
            ("GET", "/v5/market/time", self._time),
            ("GET", "/v5/market/instruments-info", self._instruments),
        ]
        signed = [
            ("GET", "/v5/user/query-api", self._query_api),
            ("GET", "/v5/account/info", self._account_info),
            ("GET", "/v5/asset/coin/query-info", self._coin_info),
            ("GET", "/v5/account/wallet-balance", self._wallet_balance),
            ("GET", "/v5/position/list", self._position_list),
            ("POST", "/v5/position/set-leverage", self._set_leverage),
            ("POST", "/v5/position/switch-mode", self._switch_mode),
            ("POST", "/v5/account/set-margin-mode", self._set_margin_mode),
            ("POST", "/v5/order/create", self._create_order),
            ("POST", "/v5/order/cancel", self._cancel_order),
            ("GET", "/v5/order/realtime", self._order_realtime),
            ("GET", "/v5/order/history", self._order_history),
            ("GET", "/v5/execution/list", self._execution_list),
        ]
        for method, path, public_handler in public:
            app.router.add_route(method, path, self._public(public_handler))
        for method, path, signed_handler in signed:
            app.router.add_route(method, path, self._signed(signed_handler))
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.text() if request.can_read_body else ""
        query_string = request.rel_url.raw_query_string
        params: dict[str, Any] = dict(parse_qsl(query_string, keep_blank_values=True))
        if request.method == "POST" and body:
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = None
            params = decoded if isinstance(decoded, dict) else {"__invalid_json__": body}
        received = ReceivedRequest(
            method=request.method,
            path=request.path,
            query_string=query_string,
            body=body,
            params=params,
            headers=dict(request.headers),
            api_key=request.headers.get("X-BAPI-API-KEY"),
        )
        request[RAW_BODY] = body
        request[PARAMS] = params
        with self._lock:
            self.requests.append(received)
            failure = next(
                (
                    f
                    for f in self.failures
                    if f.remaining > 0
                    and (f.path_prefix is None or request.path.startswith(f.path_prefix))
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
            response = await handler(request)
        with self._lock:
            received.status = response.status
            if isinstance(response, web.Response) and response.text is not None:
                try:
                    received.response = json.loads(response.text)
                except ValueError:
                    received.response = None
        return response

    def _envelope(self, result: Any, msg: str = "OK") -> dict[str, Any]:
        return {
            "retCode": 0,
            "retMsg": msg,
            "result": result,
            "retExtInfo": {},
            "time": self.server_time(),
        }

    def _envelope_error(
        self, code: int, msg: str, result: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "retCode": code,
            "retMsg": msg,
            "result": result if result is not None else {},
            "retExtInfo": {},
            "time": self.server_time(),
        }

    def _public(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.Response:
            with self._lock:
                try:
                    body = self._envelope(handler(request[PARAMS]))
                except BybitError as e:
                    body = self._envelope_error(e.code, e.msg, e.result)
            return web.json_response(body)

        return wrapped

    def _signed(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.Response:
            with self._lock:
                try:
                    api_key = self._authenticate(request)
                    params = request[PARAMS]
                    if "__invalid_json__" in params:
                        raise params_error()
                    self._check_permission(api_key, request.path, params)
                    outcome = handler(api_key, params)
                    if isinstance(outcome, tuple):
                        body = self._envelope(outcome[0], outcome[1])
                    else:
                        body = self._envelope(outcome)
                except BybitError as e:
                    body = self._envelope_error(e.code, e.msg, e.result)
            return web.json_response(body)

        return wrapped

    def _authenticate(self, request: web.Request) -> ApiKey:
        headers = request.headers
        key = headers.get("X-BAPI-API-KEY", "")
        api_key = self.keys.get(key)
        if not key or api_key is None:
            raise BybitError(10003, MSG_INVALID_KEY)
        timestamp_text = headers.get("X-BAPI-TIMESTAMP", "")
        recv_window_text = headers.get("X-BAPI-RECV-WINDOW", "")
        now = self.server_time()
        try:
            timestamp = int(timestamp_text)
            recv_window = int(recv_window_text) if recv_window_text else 5000
        except ValueError as e:
            raise BybitError(
                10002, "invalid request, please check your timestamp or recv_window param"
            ) from e
        if not (now - recv_window <= timestamp < now + 1000):
            raise BybitError(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{timestamp}],server_timestamp[{now}],"
                f"recv_window[{recv_window}]",
            )
        payload = request[RAW_BODY] if request.method == "POST" else request.query_string
        origin = timestamp_text + key + recv_window_text + payload
        expected = hmac.new(api_key.secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "").lower()):
            raise BybitError(10004, f"error sign! origin_string[{origin}]")
        return api_key

    def _check_permission(self, api_key: ApiKey, path: str, params: dict[str, Any]) -> None:
        needed: tuple[str, str] | None = None
        if path in ("/v5/order/create", "/v5/order/cancel"):
            if _text(params, "category") == "spot":
                needed = ("Spot", "SpotTrade")
            else:
                needed = ("ContractTrade", "Order")
        elif path in (
            "/v5/position/set-leverage",
            "/v5/position/switch-mode",
            "/v5/account/set-margin-mode",
        ):
            needed = ("ContractTrade", "Position")
        if needed is None:
            return
        group, permission = needed
        if api_key.read_only or permission not in api_key.permissions.get(group, []):
            raise BybitError(10005, MSG_PERMISSION)

    # ----- public endpoints ----------------------------------------------------------------

    def _time(self, params: dict[str, Any]) -> Any:
        now = self.server_time()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _instruments(self, params: dict[str, Any]) -> Any:
        category = params.get("category")
        if category not in ("linear", "spot", "inverse", "option"):
            raise params_error("params error: Category is invalid")  # (approx.)
        status = params.get("status") or "Trading"
        rows: list[dict[str, Any]] = []
        if category == "linear":
            rows = [s.info() for s in self.linear.values() if s.status == status]
        elif category == "spot":
            rows = [s.info() for s in self.spot.values() if s.status == status]
        if params.get("symbol"):
            rows = [r for r in rows if r["symbol"] == params["symbol"]]
        return {"category": category, "list": rows, "nextPageCursor": ""}

    # ----- account and key -----------------------------------------------------------------

    def _query_api(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        return (
            {
                "id": str(api_key.account.uid + 7000000),
                "note": api_key.note,
                "apiKey": api_key.key,
                "readOnly": 1 if api_key.read_only else 0,
                "secret": "",
                "permissions": {k: list(v) for k, v in api_key.permissions.items()},
                "ips": ["*"],
                "type": 1,
                "deadlineDay": 83,
                "expiredAt": "2099-01-01T00:00:00Z",
                "createdAt": api_key.created_at,
                "unified": 0,
                "uta": 1,
                "userID": api_key.account.uid,
                "inviterID": 0,
                "vipLevel": "No VIP",
                "mktMakerLevel": "0",
                "affiliateID": 0,
                "rsaPublicKey": "",
                "isMaster": True,
                "parentUid": "0",
                "kycLevel": "LEVEL_DEFAULT",
                "kycRegion": "",
            },
            "",
        )

    def _account_info(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        account = api_key.account
        return {
            "marginMode": account.margin_mode,
            "updatedTime": str(account.updated or self.server_time()),
            "unifiedMarginStatus": 5,
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
        }

    def _coin_info(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        coins = sorted(
            {s.settle for s in self.linear.values()}
            | {s.base for s in self.linear.values()}
            | {s.base for s in self.spot.values()}
            | {s.quote for s in self.spot.values()}
        )
        if params.get("coin"):
            coins = [c for c in coins if c == params["coin"]]
        rows = [
            {
                "name": coin,
                "coin": coin,
                "remainAmount": "1000000",
                "chains": [
                    {
                        "chainType": "ERC20",
                        "confirmation": "12",
                        "withdrawFee": "1",
                        "depositMin": "0",
                        "withdrawMin": "2",
                        "chain": "ETH",
                        "chainDeposit": "1",
                        "chainWithdraw": "1",
                        "minAccuracy": "8",
                        "withdrawPercentageFee": "0",
                        "contractAddress": "",
                    }
                ],
            }
            for coin in coins
        ]
        return ({"rows": rows}, "success")

    # ----- derived account figures ----------------------------------------------------------

    def _mark(self, symbol: str) -> D:
        return self.prices[symbol]

    def _unrealised(self, position: Position) -> D:
        if position.size == 0:
            return ZERO
        move = self._mark(position.symbol) - position.avg_price
        return move * position.size if position.side == "Buy" else -move * position.size

    def _position_im(self, position: Position) -> D:
        if position.size == 0:
            return ZERO
        value = position.size * position.avg_price
        return value / position.leverage + value * self.taker_fee_rate

    def _coin_figures(self, account: Account, coin: str) -> dict[str, D]:
        position_im = order_im = upl = ZERO
        if coin == "USDT":
            for p in account.positions.values():
                if self.linear[p.symbol].settle == coin:
                    position_im += self._position_im(p)
                    upl += self._unrealised(p)
            order_im = sum((o.order_im for o in account.orders if o.is_open), ZERO)
        locked = sum(
            (o.locked for o in account.orders if o.is_open and o.locked_coin == coin), ZERO
        )
        wallet = account.wallet.get(coin, ZERO)
        return {
            "wallet": wallet,
            "locked": locked,
            "position_im": position_im,
            "order_im": order_im,
            "upl": upl,
            "available": wallet + upl - position_im - order_im - locked,
        }

    def _usd_value(self, coin: str, amount: D) -> D:
        if coin in ("USDT", "USDC"):
            return amount
        price = self.prices.get(coin + "USDT")
        return amount * price if price is not None else ZERO

    # ----- signed GETs ------------------------------------------------------------------

    def _wallet_balance(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        account_type = params.get("accountType")
        if not account_type:
            raise params_error("accountType can not be empty")  # (approx.)
        if account_type != "UNIFIED":
            raise params_error("accountType only support UNIFIED.")
        account = api_key.account
        wanted = [c for c in (params.get("coin") or "").split(",") if c]
        coins = wanted or sorted(c for c, v in account.wallet.items() if v != 0)
        rows = []
        total_wallet = total_upl = total_im = total_mm = ZERO
        for coin in coins:
            f = self._coin_figures(account, coin)
            equity = f["wallet"] + f["upl"]
            total_wallet += self._usd_value(coin, f["wallet"])
            total_upl += self._usd_value(coin, f["upl"])
            total_im += self._usd_value(coin, f["position_im"] + f["order_im"])
            mm = f["position_im"] / 10
            total_mm += self._usd_value(coin, mm)
            rows.append(
                {
                    "availableToBorrow": "",
                    "bonus": "0",
                    "accruedInterest": "0",
                    "availableToWithdraw": "",
                    "totalOrderIM": money(f["order_im"]),
                    "equity": money(equity),
                    "totalPositionMM": money(mm),
                    "usdValue": money(self._usd_value(coin, equity)),
                    "unrealisedPnl": money(f["upl"]),
                    "collateralSwitch": True,
                    "spotHedgingQty": "0",
                    "borrowAmount": "0.000000000000000000",
                    "totalPositionIM": money(f["position_im"]),
                    "walletBalance": money(f["wallet"]),
                    "cumRealisedPnl": money(account.cum_realised.get(coin, ZERO)),
                    "locked": money(f["locked"]),
                    "marginCollateral": True,
                    "coin": coin,
                }
            )
        margin_balance = total_wallet + total_upl
        return {
            "list": [
                {
                    "totalEquity": money(margin_balance),
                    "accountIMRate": money(total_im / margin_balance) if margin_balance else "0",
                    "accountIMRateByMp": money(total_im / margin_balance)
                    if margin_balance
                    else "0",
                    "totalMarginBalance": money(margin_balance),
                    "totalInitialMargin": money(total_im),
                    "totalInitialMarginByMp": money(total_im),
                    "accountType": "UNIFIED",
                    "totalAvailableBalance": money(margin_balance - total_im),
                    "accountMMRate": money(total_mm / margin_balance) if margin_balance else "0",
                    "accountMMRateByMp": money(total_mm / margin_balance)
                    if margin_balance
                    else "0",
                    "totalPerpUPL": money(total_upl),
                    "totalWalletBalance": money(total_wallet),
                    "accountLTV": "0",
                    "totalMaintenanceMargin": money(total_mm),
                    "totalMaintenanceMarginByMp": money(total_mm),
                    "coin": rows,
                }
            ]
        }

    def _linear_spec(self, params: dict[str, Any], required: bool = True) -> LinearSpec | None:
        symbol = _text(params, "symbol")
        if not symbol:
            if required:
                raise params_error("params error: symbol invalid")  # (approx.)
            return None
        spec = self.linear.get(symbol)
        if spec is None:
            raise params_error("params error: symbol invalid")
        return spec

    def _require_linear(self, params: dict[str, Any]) -> None:
        category = _text(params, "category")
        if not category:
            raise params_error("params error: category can not be empty")  # (approx.)
        if category != "linear":
            raise params_error("Illegal category")  # (approx.) inverse/option not served

    def _mode(self, account: Account, symbol: str) -> int:
        if symbol in account.symbol_mode:
            return account.symbol_mode[symbol]
        return account.coin_mode.get(self.linear[symbol].settle, 0)

    def _position(self, account: Account, symbol: str, idx: int) -> Position:
        position = account.positions.get((symbol, idx))
        if position is None:
            position = Position(symbol, idx, account.leverage.get(symbol, DEFAULT_LEVERAGE))
            account.positions[(symbol, idx)] = position
        return position

    def _position_shape(self, account: Account, position: Position) -> dict[str, Any]:
        spec = self.linear[position.symbol]
        mark = self._mark(position.symbol)
        value = position.size * position.avg_price
        im = self._position_im(position)
        open_ = position.size > 0
        return {
            "positionIdx": position.position_idx,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": position.symbol,
            "side": position.side,
            "size": stepped(position.size, spec.qty_step),
            "avgPrice": money(position.avg_price) if open_ else "0",
            "positionValue": money(value) if open_ else "",
            "tradeMode": 0,
            "autoAddMargin": 0,
            "positionStatus": "Normal",
            "leverage": plain(position.leverage),
            "markPrice": stepped(mark, spec.tick_size),
            "liqPrice": "",
            "bustPrice": "",
            "positionIM": money(im) if open_ else "0",
            "positionIMByMp": money(im) if open_ else "0",
            "positionMM": money(im / 10) if open_ else "0",
            "positionMMByMp": money(im / 10) if open_ else "0",
            "positionBalance": money(im) if open_ else "0",
            "tpslMode": "Full",
            "takeProfit": "",
            "stopLoss": "",
            "trailingStop": "0",
            "sessionAvgPrice": "",
            "delta": "",
            "gamma": "",
            "vega": "",
            "theta": "",
            "unrealisedPnl": money(self._unrealised(position)),
            "curRealisedPnl": money(position.cur_realised),
            "cumRealisedPnl": money(position.cum_realised),
            "adlRankIndicator": 2 if open_ else 0,
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
            "createdTime": str(position.created or account.updated or self.server_time()),
            "updatedTime": str(position.updated or account.updated or self.server_time()),
            "seq": position.seq,
        }

    def _position_list(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        self._require_linear(params)
        account = api_key.account
        spec = self._linear_spec(params, required=False)
        settle = _text(params, "settleCoin")
        if spec is None and not settle:
            raise params_error(
                "Missing some parameters that must be filled in, symbol or settleCoin"
            )  # (approx.)
        rows = []
        if spec is not None:
            idxs = (1, 2) if self._mode(account, spec.symbol) == 3 else (0,)
            rows = [self._position(account, spec.symbol, i) for i in idxs]
        else:
            rows = [
                p
                for p in account.positions.values()
                if p.size > 0 and self.linear[p.symbol].settle == settle
            ]
        limit = min(int(_text(params, "limit") or 20), 200)
        return {
            "category": "linear",
            "list": [self._position_shape(account, p) for p in rows[:limit]],
            "nextPageCursor": "",
        }

    # ----- position settings ---------------------------------------------------------------

    def _set_leverage(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        self._require_linear(params)
        spec = self._linear_spec(params)
        assert spec is not None
        account = api_key.account
        buy = _decimal(params, "buyLeverage")
        sell = _decimal(params, "sellLeverage")
        if buy is None or sell is None:
            raise params_error("params error: buyLeverage or sellLeverage invalid")
        if buy != sell:
            raise params_error("buy leverage must be equal to sell leverage")  # (approx.)
        if account.margin_mode == "PORTFOLIO_MARGIN":
            raise BybitError(110038, "Portfolio margin mode is not allowed to change leverage")
        if buy < 1 or not _multiple(buy, spec.leverage_step):
            raise params_error("leverage invalid")  # (approx.)
        if buy > spec.max_leverage:
            raise BybitError(
                110013,
                f"cannot set leverage [{int(buy * 100)}] gt maxLeverage "
                f"[{int(spec.max_leverage * 100)}] by risk limit",
            )  # (approx.)
        current = account.leverage.get(spec.symbol, DEFAULT_LEVERAGE)
        if buy == current:
            raise BybitError(110043, MSG_LEVERAGE_NOT_MODIFIED)
        account.leverage[spec.symbol] = buy
        for (symbol, _idx), position in account.positions.items():
            if symbol == spec.symbol:
                position.leverage = buy
        for order in account.orders:
            if order.symbol == spec.symbol and order.category == "linear" and order.order_im:
                order.order_im = order.leaves * order.price / buy
        account.updated = self.server_time()
        return {}

    def _symbol_busy(self, account: Account, symbol: str) -> str | None:
        if any(p.size > 0 for (s, _i), p in account.positions.items() if s == symbol):
            return "position"
        if any(o.is_open and o.symbol == symbol and o.category == "linear" for o in account.orders):
            return "orders"
        return None

    def _switch_mode(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        self._require_linear(params)
        account = api_key.account
        mode_text = _text(params, "mode")
        if mode_text not in ("0", "3"):
            raise params_error("params error: mode invalid")  # (approx.)
        mode = int(mode_text)
        symbol = _text(params, "symbol")
        coin = _text(params, "coin")
        if symbol:
            spec = self._linear_spec(params)
            assert spec is not None
            if self._mode(account, spec.symbol) == mode:
                raise BybitError(110025, MSG_MODE_NOT_MODIFIED)
            busy = self._symbol_busy(account, spec.symbol)
            if busy == "position":
                raise BybitError(110024, MSG_MODE_POSITION)
            if busy == "orders":
                raise BybitError(110028, MSG_MODE_ORDERS)
            self._apply_mode(account, spec.symbol, mode)
        elif coin:
            symbols = [s for s in self.linear.values() if s.settle == coin]
            if not symbols:
                raise params_error("params error: coin invalid")  # (approx.)
            before = {s.symbol: self._mode(account, s.symbol) for s in symbols}
            changed = account.coin_mode.get(coin, 0) != mode
            account.coin_mode[coin] = mode
            for spec in symbols:
                # Symbols with a position or open orders keep their mode, as Bybit documents.
                if before[spec.symbol] != mode and self._symbol_busy(account, spec.symbol) is None:
                    changed = True
                    self._apply_mode(account, spec.symbol, mode)
            if not changed:
                raise BybitError(110025, MSG_MODE_NOT_MODIFIED)
        else:
            raise params_error("Either symbol or coin is required")  # (approx.)
        account.updated = self.server_time()
        return {}

    def _apply_mode(self, account: Account, symbol: str, mode: int) -> None:
        account.symbol_mode[symbol] = mode
        for key in [k for k in account.positions if k[0] == symbol]:
            del account.positions[key]

    def _set_margin_mode(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        account = api_key.account
        wanted = _text(params, "setMarginMode")
        if wanted not in MARGIN_MODES:
            raise params_error("params error: setMarginMode invalid")  # (approx.)
        if wanted != account.margin_mode:
            reasons = []
            busy = any(p.size > 0 for p in account.positions.values()) or any(
                o.is_open and o.category == "linear" for o in account.orders
            )
            if busy:
                reasons.append(
                    {
                        "reasonCode": "3400080",
                        "reasonMsg": "Please close all positions and cancel all active "
                        "orders before switching the margin mode",
                    }  # (approx.)
                )
            equity = self._usd_value("USDT", self._coin_figures(account, "USDT")["wallet"])
            if wanted == "PORTFOLIO_MARGIN" and equity < 1000:
                reasons.append(
                    {
                        "reasonCode": "3400000",
                        "reasonMsg": "Equity needs to be equal to or greater than 1000 USDC",
                    }
                )
            if reasons:
                raise BybitError(3400045, "Set margin mode failed", {"reasons": reasons})
            account.margin_mode = wanted
            account.updated = self.server_time()
        return ({"reasons": []}, "Request accepted")

    # ----- orders ------------------------------------------------------------------------

    def _order_shape(self, order: Order) -> dict[str, Any]:
        if order.category == "linear":
            spec_l = self.linear[order.symbol]
            tick, step = spec_l.tick_size, spec_l.qty_step
            base_step = step
        else:
            spec_s = self.spot[order.symbol]
            tick, base_step = spec_s.tick_size, spec_s.base_precision
            step = spec_s.quote_precision if order.market_unit == "quoteCoin" else base_step
        avg = order.cum_value / order.cum_qty if order.cum_qty else None
        leaves = order.leaves
        shape: dict[str, Any] = {
            "orderId": order.order_id,
            "orderLinkId": order.order_link_id,
            "blockTradeId": "",
            "symbol": order.symbol,
            "price": stepped(order.price, tick) if order.price else "0",
            "qty": stepped(order.qty, step),
            "side": order.side,
            "isLeverage": "" if order.category == "linear" else "0",
            "positionIdx": order.position_idx,
            "orderStatus": order.status,
            "cancelType": order.cancel_type,
            "rejectReason": order.reject_reason,
            "avgPrice": "" if avg is None else plain(avg.quantize(D("1E-8"))),
            "leavesQty": stepped(leaves, step),
            "leavesValue": money(leaves * order.price),
            "cumExecQty": stepped(order.cum_qty, base_step),
            "cumExecValue": money(order.cum_value),
            "cumExecFee": money(order.cum_fee),
            "cumFeeDetail": {order.fee_coin: money(order.cum_fee)} if order.cum_fee else {},
            "timeInForce": order.time_in_force,
            "orderType": order.order_type,
            "stopOrderType": "",
            "orderIv": "",
            "marketUnit": order.market_unit,
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": stepped(order.last_price_on_created, tick),
            "reduceOnly": order.reduce_only,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(order.created),
            "updatedTime": str(order.updated),
            "slippageToleranceType": "UNKNOWN",
            "slippageTolerance": "0",
            "extraFees": "",
        }
        if order.category == "linear":
            shape["createType"] = "CreateByUser"
            shape["tpslMode"] = ""  # spot orders do not have this key (ccxt tells them apart by it)
        else:
            shape["ocoTriggerBy"] = ""
        return shape

    def _check_link_id(self, account: Account, category: str, link_id: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,36}", link_id):
            raise params_error("params error: orderLinkId invalid")  # (approx.)
        if any(o.order_link_id == link_id and o.category == category for o in account.orders):
            if category == "spot":
                raise BybitError(170141, "Duplicate clientOrderId.")
            raise BybitError(110072, MSG_DUPLICATE_LINK_ID)

    def _create_order(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        category = _text(params, "category")
        if category == "spot":
            return self._create_spot_order(api_key, params)
        self._require_linear(params)
        spec = self._linear_spec(params)
        assert spec is not None
        account = api_key.account
        side = _text(params, "side")
        if side not in ("Buy", "Sell"):
            raise params_error("params error: side invalid")  # (approx.)
        order_type = _text(params, "orderType")
        if order_type not in ("Market", "Limit"):
            raise params_error("params error: orderType invalid")  # (approx.)
        qty = _decimal(params, "qty")
        if qty is None or qty <= 0:
            raise params_error("params error: qty invalid")  # (approx.)
        price = _decimal(params, "price")
        tif = _text(params, "timeInForce") or "GTC"
        if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise params_error("params error: timeInForce invalid")  # (approx.)
        link_id = _text(params, "orderLinkId") or ""
        if link_id:
            self._check_link_id(account, "linear", link_id)
        idx_text = _text(params, "positionIdx") or "0"
        if idx_text not in ("0", "1", "2"):
            raise params_error("params error: positionIdx invalid")  # (approx.)
        idx = int(idx_text)
        if (self._mode(account, spec.symbol) == 3) != (idx != 0):
            raise params_error(MSG_IDX_MISMATCH)
        if not _multiple(qty, spec.qty_step):
            raise params_error("Qty invalid")  # (approx.)
        max_qty = spec.max_mkt_qty if order_type == "Market" else spec.max_qty
        if qty < spec.min_qty:
            raise params_error("The number of contracts exceeds minimum limit allowed")  # (approx.)
        if qty > max_qty:
            raise params_error("The number of contracts exceeds maximum limit allowed")  # (approx.)
        last = self.prices[spec.symbol]
        if order_type == "Limit":
            if price is None:
                raise params_error("params error: price invalid")  # (approx.)
            if not (spec.min_price <= price <= spec.max_price) or not _multiple(
                price - spec.min_price, spec.tick_size
            ):
                raise params_error("params error: price invalid")  # (approx.)
        else:
            tif = "IOC"
            bound = last * (D("1.01") if side == "Buy" else D("0.99"))
            price = bound.quantize(
                spec.tick_size, rounding=ROUND_FLOOR if side == "Buy" else ROUND_CEILING
            )

        # What the order would reduce, and what it would open.
        reduce_only = _bool(params, "reduceOnly")
        reducible = self._reducible(account, spec.symbol, idx, side)
        closing = reduce_only or (idx != 0 and self._hedge_side(idx) != side)
        if closing:
            if reducible <= 0:
                raise BybitError(110017, MSG_RO_ZERO)
            if qty > reducible:
                if self.reduce_only_excess == "reject":
                    raise BybitError(110017, MSG_RO_RULE)
                qty = reducible
            opening = ZERO
        else:
            opening = max(ZERO, qty - reducible)
        exec_price = last if order_type == "Market" else price
        if opening > 0 and qty * exec_price < spec.min_notional:
            raise BybitError(
                110094, f"Order does not meet minimum order value {plain(spec.min_notional)}USDT"
            )
        leverage = account.leverage.get(spec.symbol, DEFAULT_LEVERAGE)
        need = opening * exec_price / leverage + opening * exec_price * self.taker_fee_rate
        if need > 0 and need > self._coin_figures(account, "USDT")["available"]:
            raise BybitError(110007, MSG_NOT_ENOUGH)

        now = self.server_time()
        order = Order(
            category="linear",
            symbol=spec.symbol,
            order_id=str(uuid.uuid4()),
            order_link_id=link_id,
            side=side,
            order_type=order_type,
            time_in_force=tif,
            price=price,
            qty=qty,
            position_idx=idx,
            reduce_only=reduce_only,
            created=now,
            updated=now,
            last_price_on_created=last,
        )
        account.orders.append(order)
        marketable = order_type == "Market" or (
            (side == "Buy" and price >= last) or (side == "Sell" and price <= last)
        )
        if marketable and tif == "PostOnly":
            order.status = "Cancelled"
            order.reject_reason = "EC_PostOnlyWillTakeLiquidity"
        elif marketable:
            self._fill_linear(account, order, qty, last, maker=False)
        elif tif in ("IOC", "FOK"):
            order.status = "Cancelled"
            order.reject_reason = "EC_NoImmediateQtyToFill"
        else:
            order.order_im = opening * price / leverage
        return {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    @staticmethod
    def _hedge_side(idx: int) -> str:
        return "Buy" if idx == 1 else "Sell"

    def _reducible(self, account: Account, symbol: str, idx: int, side: str) -> D:
        """How much an order on `side` at `idx` can reduce of the position it faces."""
        position = account.positions.get((symbol, idx))
        if position is None or position.size == 0 or position.side == side:
            return ZERO
        return position.size

    def _fill_resting_linear(self, account: Account, order: Order) -> None:
        qty = order.leaves
        if order.reduce_only or (
            order.position_idx != 0 and self._hedge_side(order.position_idx) != order.side
        ):
            qty = min(qty, self._reducible(account, order.symbol, order.position_idx, order.side))
            if qty <= 0:
                order.status = "Cancelled"
                order.cancel_type = "CancelByReduceOnly"
                order.order_im = ZERO
                order.updated = self.server_time()
                return
            order.qty = order.cum_qty + qty
        order.order_im = ZERO
        self._fill_linear(account, order, qty, order.price, maker=True)

    def _fill_linear(self, account: Account, order: Order, qty: D, price: D, maker: bool) -> None:
        spec = self.linear[order.symbol]
        coin = spec.settle
        rate = self.maker_fee_rate if maker else self.taker_fee_rate
        value = qty * price
        fee = value * rate
        now = self.server_time()
        self._seq += 1
        position = self._position(account, order.symbol, order.position_idx)
        closed = ZERO
        pnl = ZERO
        if position.size > 0 and position.side != order.side:
            closed = min(qty, position.size)
            move = price - position.avg_price
            pnl = move * closed if position.side == "Buy" else -move * closed
            position.size -= closed
        remainder = qty - closed
        if position.size == 0 and closed:
            position.side, position.avg_price = "", ZERO
        if remainder > 0:
            if position.size == 0:
                position.side, position.avg_price = order.side, price
                position.cur_realised = ZERO
                position.created = now
                position.size = remainder
            else:
                total = position.size + remainder
                position.avg_price = (
                    position.avg_price * position.size + price * remainder
                ) / total
                position.size = total
        account.wallet[coin] = account.wallet.get(coin, ZERO) + pnl - fee
        account.cum_realised[coin] = account.cum_realised.get(coin, ZERO) + pnl - fee
        position.cum_realised += pnl - fee
        position.cur_realised = ZERO if position.size == 0 else position.cur_realised + pnl - fee
        position.updated = now
        position.seq = self._seq
        position.leverage = account.leverage.get(order.symbol, DEFAULT_LEVERAGE)
        self._record_fill(account, order, qty, price, fee, rate, maker, closed, coin)

    def _record_fill(
        self,
        account: Account,
        order: Order,
        qty: D,
        price: D,
        fee: D,
        rate: D,
        maker: bool,
        closed: D,
        fee_coin: str,
    ) -> None:
        now = self.server_time()
        order.cum_qty += qty
        order.cum_value += qty * price
        order.cum_fee += fee
        order.fee_coin = fee_coin
        complete = order.cum_qty >= order.qty or order.market_unit == "quoteCoin"
        order.status = "Filled" if complete else "PartiallyFilled"
        order.updated = now
        if order.category == "linear":
            step, tick = self.linear[order.symbol].qty_step, self.linear[order.symbol].tick_size
        else:
            step, tick = self.spot[order.symbol].base_precision, self.spot[order.symbol].tick_size
        execution: dict[str, Any] = {
            "symbol": order.symbol,
            "orderType": order.order_type,
            "underlyingPrice": "",
            "orderLinkId": order.order_link_id,
            "orderId": order.order_id,
            "stopOrderType": "UNKNOWN",
            "execTime": str(now),
            "feeCurrency": fee_coin if order.category == "spot" else "",
            "feeRate": plain(rate),
            "tradeIv": "",
            "blockTradeId": "",
            "markPrice": stepped(self.prices[order.symbol], tick),
            "execPrice": stepped(price, tick),
            "markIv": "",
            "orderQty": stepped(order.qty, step),
            "orderPrice": stepped(order.price, tick) if order.price else "0",
            "execValue": money(qty * price),
            "closedSize": stepped(closed, step),
            "execType": "Trade",
            "seq": self._seq,
            "side": order.side,
            "indexPrice": "",
            "leavesQty": stepped(order.leaves, step),
            "isMaker": maker,
            "execFee": money(fee),
            "execId": str(uuid.uuid4()),
            "marketUnit": order.market_unit,
            "execQty": stepped(qty, step),
            "extraFees": "",
            "category": order.category,
        }
        if order.category == "linear":
            execution["createType"] = "CreateByUser"
        account.executions.append(execution)

    def _find_order(self, account: Account, category: str, params: dict[str, Any]) -> Order:
        order_id = _text(params, "orderId")
        link_id = _text(params, "orderLinkId")
        if not order_id and not link_id:
            raise params_error("orderId or orderLinkId is required")  # (approx.)
        symbol = _text(params, "symbol")
        for order in reversed(account.orders):
            if order.category != category or (symbol and order.symbol != symbol):
                continue
            if (order_id and order.order_id == order_id) or (
                not order_id and order.order_link_id == link_id
            ):
                return order
        raise BybitError(110001, MSG_ORDER_NOT_EXISTS)

    def _cancel_order(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        category = _text(params, "category")
        account = api_key.account
        if category == "spot":
            if _text(params, "symbol") not in self.spot:
                raise BybitError(170121, "Invalid symbol.")
            try:
                order = self._find_order(account, "spot", params)
            except BybitError as e:
                raise BybitError(170213, "Order does not exist.") from e
            if not order.is_open:
                raise BybitError(170213, "Order does not exist.")
        else:
            self._require_linear(params)
            self._linear_spec(params)
            order = self._find_order(account, "linear", params)
            if not order.is_open:
                raise BybitError(110001, MSG_ORDER_NOT_EXISTS)
        order.status = "Cancelled"
        order.cancel_type = "CancelByUser"
        order.order_im = ZERO
        order.locked, order.locked_coin = ZERO, ""
        order.updated = self.server_time()
        return {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def _order_query(self, api_key: ApiKey, params: dict[str, Any]) -> tuple[str, list[Order]]:
        category = _text(params, "category")
        if category not in ("linear", "spot"):
            if not category:
                raise params_error("params error: category can not be empty")  # (approx.)
            raise params_error("Illegal category")  # (approx.)
        orders = [o for o in api_key.account.orders if o.category == category]
        symbol = _text(params, "symbol")
        if symbol:
            orders = [o for o in orders if o.symbol == symbol]
        order_id, link_id = _text(params, "orderId"), _text(params, "orderLinkId")
        if order_id:
            orders = [o for o in orders if o.order_id == order_id]
        elif link_id:
            orders = [o for o in orders if o.order_link_id == link_id]
        return category, orders

    def _page(
        self,
        category: str,
        rows: list[dict[str, Any]],
        params: dict[str, Any],
        default: int,
        maximum: int,
    ) -> Any:
        limit = min(max(int(_text(params, "limit") or default), 1), maximum)
        start = int(_text(params, "cursor") or 0)
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        return {
            "category": category,
            "list": page,
            "nextPageCursor": str(start + limit) if more else "",
        }

    def _order_realtime(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        category, orders = self._order_query(api_key, params)
        if category == "linear" and not (
            params.get("symbol") or params.get("baseCoin") or params.get("settleCoin")
        ):
            raise params_error(
                "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin"
            )  # (approx.)
        settle = _text(params, "settleCoin")
        if settle and category == "linear":
            orders = [o for o in orders if self.linear[o.symbol].settle == settle]
        if not (params.get("orderId") or params.get("orderLinkId")):
            if _text(params, "openOnly") in (None, "", "0"):
                orders = [o for o in orders if o.is_open]
            else:
                orders = [o for o in orders if not o.is_open][-500:]
        rows = [self._order_shape(o) for o in reversed(orders)]
        return self._page(category, rows, params, 20, 50)

    def _order_history(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        category, orders = self._order_query(api_key, params)
        status = _text(params, "orderStatus")
        if status:
            orders = [o for o in orders if o.status == status]
        now = self.server_time()
        start = int(_text(params, "startTime") or now - 7 * 86400000)
        end = int(_text(params, "endTime") or now)
        orders = [o for o in orders if start <= o.created <= end]
        rows = [self._order_shape(o) for o in reversed(orders)]
        return self._page(category, rows, params, 20, 50)

    def _execution_list(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        category = _text(params, "category")
        if category not in ("linear", "spot"):
            raise params_error("Illegal category")  # (approx.)
        rows = [e for e in api_key.account.executions if e["category"] == category]
        for name in ("symbol", "orderId", "orderLinkId", "execType"):
            value = _text(params, name)
            if value:
                rows = [e for e in rows if e[name] == value]
        now = self.server_time()
        start = int(_text(params, "startTime") or now - 7 * 86400000)
        end = int(_text(params, "endTime") or now)
        rows = [e for e in rows if start <= int(e["execTime"]) <= end]
        shaped = [{k: v for k, v in e.items() if k != "category"} for e in reversed(rows)]
        return self._page(category, shaped, params, 50, 100)

    # ----- spot -----------------------------------------------------------------------------

    def _create_spot_order(self, api_key: ApiKey, params: dict[str, Any]) -> Any:
        account = api_key.account
        spec = self.spot.get(_text(params, "symbol") or "")
        if spec is None:
            raise BybitError(170121, "Invalid symbol.")
        side = _text(params, "side")
        if side not in ("Buy", "Sell"):
            raise BybitError(170117, "Invalid side.")
        order_type = _text(params, "orderType")
        if order_type not in ("Market", "Limit"):
            raise BybitError(170116, "Invalid orderType.")
        qty = _decimal(params, "qty")
        if qty is None or qty <= 0:
            raise BybitError(170130, "Data sent for paramter 'qty' is not valid.")
        link_id = _text(params, "orderLinkId") or ""
        if link_id:
            self._check_link_id(account, "spot", link_id)
        last = self.prices[spec.symbol]
        price = _decimal(params, "price")
        tif = _text(params, "timeInForce") or "GTC"
        market_unit = ""
        if order_type == "Market":
            market_unit = _text(params, "marketUnit") or (
                "quoteCoin" if side == "Buy" else "baseCoin"
            )
            tif = "IOC"
            price = ZERO
            base_qty = qty if market_unit == "baseCoin" else qty / last
            quote_qty = qty if market_unit == "quoteCoin" else qty * last
            step = spec.base_precision if market_unit == "baseCoin" else spec.quote_precision
            if not _multiple(qty, step):
                raise BybitError(170137, "Order volume decimal too long")
        else:
            if price is None or not _multiple(price, spec.tick_size):
                raise BybitError(170134, "Order price decimal too long.")
            if not _multiple(qty, spec.base_precision):
                raise BybitError(170137, "Order volume decimal too long")
            base_qty, quote_qty = qty, qty * price
        if base_qty < spec.min_qty:
            raise BybitError(170136, "Order quantity lower than the minimum.")
        if base_qty > spec.max_qty:
            raise BybitError(170135, "Order quantity too large.")
        if quote_qty < spec.min_amount:
            raise BybitError(170140, "Order value exceeded lower limit.")
        spend_coin, spend = (spec.quote, quote_qty) if side == "Buy" else (spec.base, base_qty)
        if spend > self._coin_figures(account, spend_coin)["available"]:
            raise BybitError(170131, "Insufficient balance.")
        now = self.server_time()
        order = Order(
            category="spot",
            symbol=spec.symbol,
            order_id=str(self._next_spot_order_id),
            order_link_id=link_id or str(self._next_spot_order_id),
            side=side,
            order_type=order_type,
            time_in_force=tif,
            price=price,
            qty=qty,
            position_idx=0,
            reduce_only=False,
            created=now,
            updated=now,
            last_price_on_created=last,
            market_unit=market_unit,
        )
        self._next_spot_order_id += 1
        account.orders.append(order)
        if (
            order_type == "Market"
            or (side == "Buy" and price >= last)
            or (side == "Sell" and price <= last)
        ):
            if tif == "PostOnly":
                order.status = "Cancelled"
                order.reject_reason = "EC_PostOnlyWillTakeLiquidity"
            else:
                self._fill_spot(account, order, qty, last, maker=False)
        elif tif in ("IOC", "FOK"):
            order.status = "Cancelled"
        else:
            order.locked_coin, order.locked = spend_coin, spend
        return {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def _fill_spot(self, account: Account, order: Order, qty: D, price: D, maker: bool) -> None:
        spec = self.spot[order.symbol]
        if order.market_unit == "quoteCoin":
            base_qty = (qty / price).quantize(spec.base_precision, rounding=ROUND_FLOOR)
        else:
            base_qty = qty
        quote_qty = base_qty * price
        rate = self.maker_fee_rate if maker else self.taker_fee_rate
        order.locked, order.locked_coin = ZERO, ""
        wallet = account.wallet
        if order.side == "Buy":
            fee, fee_coin = base_qty * rate, spec.base
            wallet[spec.quote] = wallet.get(spec.quote, ZERO) - quote_qty
            wallet[spec.base] = wallet.get(spec.base, ZERO) + base_qty - fee
        else:
            fee, fee_coin = quote_qty * rate, spec.quote
            wallet[spec.base] = wallet.get(spec.base, ZERO) - base_qty
            wallet[spec.quote] = wallet.get(spec.quote, ZERO) + quote_qty - fee
        self._seq += 1
        # cumExecQty is in base; for a market order by quote, qty stays the quote amount.
        self._record_fill(account, order, base_qty, price, fee, rate, maker, ZERO, fee_coin)


def bybit_client(
    peer: BybitPeer, key: str, secret: str, *, rate_limit: bool = False, **options: Any
) -> Any:
    """A real `ccxt.async_support.bybit` whose every REST base URL points at `peer`.

    Every entry of `exchange.urls["api"]` (spot, futures, v2, public, private) keeps its
    path and gets the peer's scheme, host and port, so nothing can leak to the real
    exchange. Defaults: `defaultType` swap / linear, markets loaded for `linear` only,
    `fetchCurrencies` False (note: ccxt's bybit ignores that option and still calls the
    signed `/v5/asset/coin/query-info` in `load_markets` whenever a key is set). Extra
    keyword arguments override `options`. ccxt's client-side throttle (`enableRateLimit`)
    is off unless `rate_limit=True`: it only delays requests (about 0.8 s for a bybit
    `load_markets`) and changes nothing on the wire. The caller must `await exchange.close()`.
    """
    import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]

    exchange = ccxt_async.bybit(
        {
            "apiKey": key,
            "secret": secret,
            "enableRateLimit": rate_limit,
            # close() sleeps this long for TLS connections to shut down; plain local HTTP
            # needs no grace period.
            "timeout_on_exit": 0,
            "options": {
                "defaultType": "swap",
                "defaultSubType": "linear",
                "fetchCurrencies": False,
                "fetchMarkets": {"types": ["linear"]},
                **options,
            },
        }
    )
    base = peer.base_url
    api_urls = exchange.urls["api"]
    for name, url in list(api_urls.items()):
        if isinstance(url, str):
            api_urls[name] = base + urlsplit(exchange.implode_hostname(url)).path
    return exchange
