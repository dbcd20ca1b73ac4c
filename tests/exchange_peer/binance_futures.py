"""A local Binance USDⓈ-M futures REST peer: fapi's wire format and checks, in memory.

Test code only (product code must never import it). A real HTTP server (see
`server.py`) answering the subset of https://fapi.binance.com that ccxt's
`binanceusdm` class (ccxt 4.5.90) uses for linear perpetuals:

public   GET  /fapi/v1/ping, /fapi/v1/time, /fapi/v1/exchangeInfo,
              /fapi/v1/ticker/price, /fapi/v2/ticker/price, /fapi/v1/premiumIndex
signed   GET  /fapi/v3/account (ccxt's fetch_balance), /fapi/v3/balance,
              /fapi/v3/positionRisk (fetch_positions), /fapi/v2/positionRisk (its
              `useV2` option), /fapi/v1/leverageBracket (ccxt loads it before
              fetch_positions), /fapi/v1/symbolConfig (fetch_leverage(s),
              fetch_margin_mode), /fapi/v1/positionSide/dual,
              /fapi/v1/order, /fapi/v1/openOrders, /fapi/v1/allOrders, /fapi/v1/userTrades
         POST /fapi/v1/positionSide/dual, /fapi/v1/leverage, /fapi/v1/marginType,
              /fapi/v1/order
         DELETE /fapi/v1/order

Signatures are checked exactly as on spot (the helpers come from `binance.py`):
header `X-MBX-APIKEY`, `timestamp`, optional `recvWindow` (default 5000, at most
60000), `signature` = hex HMAC-SHA256 of the exact query string followed by the
exact body. Errors are Binance's `{"code": ..., "msg": ...}` bodies with its HTTP
statuses (401 for -2014/-2015, 400 otherwise), with the messages of Binance's
USDⓈ-M error-code page.

Account model (one USDT-margined wallet per account, single-asset mode):
- settings per symbol: leverage (default 20, 1..the symbol's `max_leverage`,
  else -4028 "Leverage N is not valid") and margin type (default CROSSED;
  ISOLATED moves `|size| * entry / leverage` of the wallet into the position's
  isolated wallet); the position mode is account-wide (`dualSidePosition`,
  default one-way). Changing the margin type is refused with -4048 while the
  symbol has a position and -4047 while it has open orders (the same value again:
  -4046 "No need to change margin type."); changing the position mode with -4068
  / -4067 while any position / open order exists (the same mode again: -4059).
  Lowering an isolated position's leverage: -4161.
- positions per (symbol, positionSide): `BOTH` in one-way mode with a signed
  size, `LONG` (size > 0) and `SHORT` (size < 0) in hedge mode. Entry price is the
  weighted average of the fills that opened it; a reduction realises
  `(fill - entry) * closed * sign(size)` into the wallet; in one-way mode an
  order larger than the position closes it and opens the rest the other way.
- unrealised PnL is `(mark - entry) * size`; the mark price and the last price
  are the same number, set by `set_price`.
- margin: `availableBalance = crossWallet + crossUnPnl - cross positions' initial
  margin - open orders' initial margin` (initial margin = notional / leverage).
  An order whose opening part needs more initial margin than that is refused
  with -2019 "Margin is insufficient.". Balance figures follow fapi v3:
  `marginBalance = walletBalance + unrealizedProfit`.

Order semantics:
- MARKET orders fill at once, in full, at the mark price; LIMIT orders fill at
  once at the mark price if marketable, else rest (GTC; IOC expires, FOK is
  refused with -5021, GTX that would take with -5022); `set_price` fills resting
  limit orders it crosses, at their limit price;
- checks, in this order: symbol, side, type, `positionSide` (-4060 unknown,
  -4061 "Order's position side does not match user's setting." when it does not
  fit the mode: one-way takes only BOTH, hedge only LONG/SHORT), `reduceOnly` in
  hedge mode (-1106 "Parameter 'reduceonly' sent when not required."),
  `newClientOrderId` (-1100 / -4015; an id equal to an open order's: -4116),
  quantity (-4003 when <= 0), precision (-1111 when the quantity or price has
  more decimals than `quantityPrecision` / `pricePrecision`), PRICE_FILTER
  (-4013, -4002, -4014), LOT_SIZE / MARKET_LOT_SIZE (-4004, -4005, -4023),
  MIN_NOTIONAL (-4164, skipped for reduce-only orders and hedge-mode closes),
  reduce-only (-2022 "ReduceOnly Order is rejected." when there is nothing to
  reduce, the side would increase the position, or the quantity would flip it;
  in hedge mode a close larger than the position is refused the same way),
  margin (-2019);
- `newOrderRespType` is RESULT (ccxt's choice) or ACK; the commission is
  `commission_rate` (default 0) of the notional, in USDT, out of the wallet.

Test hooks (Python, not HTTP): `add_key`, `set_permissions`, `remove_key`,
`set_balance`, `balance`, `set_price`, `positions`, `position`, `orders`,
`trades`, `settings`, `hedged`, `open_position_directly`, `requests` / `requests_to`,
`fail_next`, `clock_skew_ms`, `commission_rate`, `start` / `stop`, and
`binanceusdm_client` for a real ccxt client pointed at the peer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from .binance import (
    DEFAULT_FAILURE_BODIES,
    MSG_BAD_SIGNATURE,
    MSG_INVALID_KEY,
    MSG_NO_ORDER,
    MSG_RECV_WINDOW,
    MSG_UNKNOWN_ORDER,
    PARAMS,
    RAW_BODY,
    BinanceError,
    InjectedFailure,
    ReceivedRequest,
    _without_signature,
    mandatory,
    now_ms,
)
from .server import ThreadedServer

D = Decimal
ZERO = D(0)

# Binance USDⓈ-M messages, from its error-code page
# (developers.binance.com/docs/derivatives/usds-margined-futures/error-code).
MSG_MARGIN = "Margin is insufficient."
MSG_REDUCE_ONLY = "ReduceOnly Order is rejected."
MSG_NO_MARGIN_CHANGE = "No need to change margin type."
MSG_MARGIN_OPEN_ORDERS = "Margin type cannot be changed if there exists open orders."
MSG_MARGIN_POSITION = "Margin type cannot be changed if there exists position."
MSG_NO_SIDE_CHANGE = "No need to change position side."
MSG_SIDE_OPEN_ORDERS = "Position side cannot be changed if there exists open orders."
MSG_SIDE_POSITION = "Position side cannot be changed if there exists position."
MSG_SIDE_MISMATCH = "Order's position side does not match user's setting."
MSG_PRECISION = "Precision is over the maximum defined for this asset."
MSG_REDUCE_ONLY_PARAM = "Parameter 'reduceonly' sent when not required."
MSG_DUPLICATE_ID = "clientOrderId is duplicated."
MSG_ISOLATED_LEVERAGE = (
    "Leverage reduction is not supported in Isolated Margin Mode with open positions"
)
MSG_LEVERAGE_MARGIN = "Leverage is smaller than permitted: insufficient margin balance."

SUCCESS = {"code": 200, "msg": "success"}
DEFAULT_LEVERAGE = 20

# Endpoints that need the futures trading permission (`enableFutures`).
TRADE_ENDPOINTS = {
    ("POST", "/fapi/v1/order"),
    ("DELETE", "/fapi/v1/order"),
    ("POST", "/fapi/v1/leverage"),
    ("POST", "/fapi/v1/marginType"),
    ("POST", "/fapi/v1/positionSide/dual"),
}

DEFAULT_PERMISSIONS: dict[str, Any] = {"enableReading": True, "enableFutures": True}


def money(value: D) -> str:
    """Balances and margins: 8 decimals, as fapi prints them."""
    return f"{value:.8f}"


def plain(value: D) -> str:
    """A decimal without exponent or trailing zeros ("67445.9", "0")."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def decimals(value: D) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


# FuturesSymbol defaults (module constants: Decimal is immutable).
D_0_10 = D("0.10")
D_556_80 = D("556.80")
D_4529764 = D("4529764")
D_0_001 = D("0.001")
D_1000 = D("1000")
D_120 = D("120")
D_100 = D("100")
D_0_004 = D("0.004")


@dataclass
class FuturesSymbol:
    """One linear perpetual, with the filters and precisions of fapi's exchangeInfo."""

    symbol: str
    base: str
    quote: str = "USDT"
    price_precision: int = 2
    quantity_precision: int = 3
    tick_size: D = D_0_10
    min_price: D = D_556_80
    max_price: D = D_4529764
    step_size: D = D_0_001
    min_qty: D = D_0_001
    max_qty: D = D_1000
    market_step_size: D = D_0_001
    market_min_qty: D = D_0_001
    market_max_qty: D = D_120
    min_notional: D = D_100
    max_leverage: int = 125
    maint_margin_ratio: D = D_0_004
    status: str = "TRADING"
    onboard_date: int = 1569398400000

    def fmt_price(self, value: D) -> str:
        return f"{value:.{self.price_precision}f}"

    def fmt_qty(self, value: D) -> str:
        return f"{value:.{self.quantity_precision}f}"

    def info(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "pair": self.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": self.onboard_date,
            "status": self.status,
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": self.base,
            "quoteAsset": self.quote,
            "marginAsset": self.quote,
            "pricePrecision": self.price_precision,
            "quantityPrecision": self.quantity_precision,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": plain(self.min_price),
                    "maxPrice": plain(self.max_price),
                    "tickSize": plain(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": plain(self.min_qty),
                    "maxQty": plain(self.max_qty),
                    "stepSize": plain(self.step_size),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": plain(self.market_min_qty),
                    "maxQty": plain(self.market_max_qty),
                    "stepSize": plain(self.market_step_size),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": plain(self.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": [
                "LIMIT",
                "MARKET",
                "STOP",
                "STOP_MARKET",
                "TAKE_PROFIT",
                "TAKE_PROFIT_MARKET",
                "TRAILING_STOP_MARKET",
            ],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "permissionSets": ["GRID", "COPY"],
        }

    def bracket(self) -> dict[str, Any]:
        """GET /fapi/v1/leverageBracket for this symbol: a single bracket."""
        return {
            "symbol": self.symbol,
            "brackets": [
                {
                    "bracket": 1,
                    "initialLeverage": self.max_leverage,
                    "notionalCap": 50000000,
                    "notionalFloor": 0,
                    "maintMarginRatio": float(self.maint_margin_ratio),
                    "cum": 0.0,
                }
            ],
        }


DEFAULT_SYMBOLS = [
    FuturesSymbol("BTCUSDT", "BTC"),
    FuturesSymbol(
        "ETHUSDT",
        "ETH",
        tick_size=D("0.01"),
        min_price=D("39.86"),
        max_price=D("306177"),
        max_qty=D("10000"),
        market_max_qty=D("2000"),
        min_notional=D("20"),
        max_leverage=100,
        maint_margin_ratio=D("0.005"),
    ),
    FuturesSymbol(
        "DOGEUSDT",
        "DOGE",
        price_precision=6,
        quantity_precision=0,
        tick_size=D("0.000010"),
        min_price=D("0.002440"),
        max_price=D("30"),
        step_size=D("1"),
        min_qty=D("1"),
        max_qty=D("50000000"),
        market_step_size=D("1"),
        market_min_qty=D("1"),
        market_max_qty=D("30000000"),
        min_notional=D("5"),
        max_leverage=75,
        maint_margin_ratio=D("0.005"),
    ),
]
DEFAULT_PRICES = {"BTCUSDT": D("60000"), "ETHUSDT": D("3000"), "DOGEUSDT": D("0.15")}


@dataclass
class SymbolSettings:
    leverage: int = DEFAULT_LEVERAGE
    margin_type: str = "CROSSED"  # or "ISOLATED"


@dataclass
class Position:
    symbol: str
    position_side: str  # BOTH, LONG or SHORT
    amount: D = ZERO  # signed: > 0 long, < 0 short
    entry_price: D = ZERO
    isolated_wallet: D = ZERO  # margin moved out of the cross wallet (ISOLATED only)
    update_time: int = 0


@dataclass
class FuturesOrder:
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    position_side: str
    reduce_only: bool
    price: D
    orig_qty: D
    time: int
    executed_qty: D = ZERO
    cum_quote: D = ZERO
    status: str = "NEW"
    update_time: int = 0
    closing: bool = False  # a hedge-mode close (SELL LONG / BUY SHORT)

    @property
    def is_open(self) -> bool:
        return self.status in {"NEW", "PARTIALLY_FILLED"}

    @property
    def avg_price(self) -> D:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    def shape(self, spec: FuturesSymbol, *, query: bool) -> dict[str, Any]:
        """GET /fapi/v1/order (query) or POST/DELETE /fapi/v1/order (with cumQty)."""
        shape: dict[str, Any] = {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status,
            "clientOrderId": self.client_order_id,
            "price": spec.fmt_price(self.price),
            "avgPrice": plain(self.avg_price),
            "origQty": spec.fmt_qty(self.orig_qty),
            "executedQty": spec.fmt_qty(self.executed_qty),
        }
        if not query:
            shape["cumQty"] = spec.fmt_qty(self.executed_qty)
        shape.update(
            {
                "cumQuote": money(self.cum_quote),
                "timeInForce": self.time_in_force,
                "type": self.type,
                "reduceOnly": self.reduce_only,
                "closePosition": False,
                "side": self.side,
                "positionSide": self.position_side,
                "stopPrice": spec.fmt_price(ZERO),
                "workingType": "CONTRACT_PRICE",
                "priceProtect": False,
                "origType": self.type,
                "priceMatch": "NONE",
                "selfTradePreventionMode": "EXPIRE_MAKER",
                "goodTillDate": 0,
            }
        )
        if query:
            shape["time"] = self.time
        shape["updateTime"] = self.update_time
        return shape


@dataclass
class FuturesAccount:
    uid: int
    wallet: D = ZERO  # USDT wallet balance, isolated wallets included
    wallet_update_time: int = 0
    dual_side: bool = False
    settings: dict[str, SymbolSettings] = field(default_factory=dict)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    orders: list[FuturesOrder] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)

    def setting(self, symbol: str) -> SymbolSettings:
        return self.settings.setdefault(symbol, SymbolSettings())

    def position(self, symbol: str, position_side: str) -> Position:
        return self.positions.setdefault((symbol, position_side), Position(symbol, position_side))

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.amount != 0]

    def open_orders(self, symbol: str | None = None) -> list[FuturesOrder]:
        return [o for o in self.orders if o.is_open and (symbol is None or o.symbol == symbol)]


@dataclass
class FuturesApiKey:
    key: str
    secret: str
    account: FuturesAccount
    permissions: dict[str, Any]


class BinanceUsdmPeer:
    """In-memory Binance USDⓈ-M futures exchange behind a real local HTTP server."""

    def __init__(
        self,
        symbols: list[FuturesSymbol] | None = None,
        prices: dict[str, D | str | float] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.symbols = {s.symbol: s for s in (symbols or DEFAULT_SYMBOLS)}
        self.prices: dict[str, D] = {
            k: D(str(v)) for k, v in (prices or DEFAULT_PRICES).items() if k in self.symbols
        }
        self.keys: dict[str, FuturesApiKey] = {}
        self.requests: list[ReceivedRequest] = []
        self.failures: list[InjectedFailure] = []
        self.clock_skew_ms = 0
        self.commission_rate = ZERO
        self._next_order_id = 4087922001
        self._next_trade_id = 272536201
        self._next_uid = 200000001
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

    def server_time(self) -> int:
        return now_ms() + self.clock_skew_ms

    # ----- test hooks --------------------------------------------------------------------

    def add_key(
        self,
        key: str,
        secret: str,
        usdt_balance: D | str | float = 0,
        *,
        share_account_with: str | None = None,
        **permissions: Any,
    ) -> FuturesApiKey:
        """Create an API key with a fresh USDT-M account (or another key's account)."""
        with self._lock:
            if share_account_with is not None:
                account = self.keys[share_account_with].account
            else:
                account = FuturesAccount(uid=self._next_uid)
                self._next_uid += 1
                account.wallet = D(str(usdt_balance))
                account.wallet_update_time = self.server_time()
            api_key = FuturesApiKey(key, secret, account, {**DEFAULT_PERMISSIONS, **permissions})
            self.keys[key] = api_key
            return api_key

    def set_permissions(self, key: str, **permissions: Any) -> None:
        with self._lock:
            self.keys[key].permissions.update(permissions)

    def remove_key(self, key: str) -> None:
        with self._lock:
            del self.keys[key]

    def set_balance(self, key: str, usdt: D | str | float) -> None:
        """Set the wallet balance (a transfer in or out, as far as the account can tell)."""
        with self._lock:
            account = self.keys[key].account
            account.wallet = D(str(usdt))
            account.wallet_update_time = self.server_time()

    def balance(self, key: str) -> dict[str, D]:
        """The USDT asset's figures as /fapi/v3/account reports them, as Decimals."""
        with self._lock:
            return self._figures(self.keys[key].account)

    def set_price(self, symbol: str, price: D | str | float) -> None:
        """Set the mark (= last) price; resting limit orders it crosses fill at their price."""
        with self._lock:
            mark = D(str(price))
            self.prices[symbol] = mark
            accounts = {id(k.account): k.account for k in self.keys.values()}
            for account in accounts.values():
                for order in list(account.orders):
                    if order.symbol != symbol or not order.is_open:
                        continue
                    if (order.side == "BUY" and mark <= order.price) or (
                        order.side == "SELL" and mark >= order.price
                    ):
                        if order.reduce_only and not self._still_reduces(account, order):
                            order.status = "EXPIRED"
                            order.update_time = self.server_time()
                            continue
                        self._fill(account, order, order.price, maker=True)

    def positions(self, key: str) -> list[Position]:
        """Copies of the key's non-zero positions."""
        with self._lock:
            return [replace(p) for p in self.keys[key].account.open_positions()]

    def position(self, key: str, symbol: str, position_side: str = "BOTH") -> Position:
        with self._lock:
            found = self.keys[key].account.positions.get((symbol, position_side))
            return replace(found) if found else Position(symbol, position_side)

    def orders(self, key: str) -> list[FuturesOrder]:
        with self._lock:
            return [replace(o) for o in self.keys[key].account.orders]

    def trades(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(t) for t in self.keys[key].account.trades]

    def settings(self, key: str, symbol: str) -> SymbolSettings:
        """(leverage, margin type) of a symbol, and `dual_side` via `hedged(key)`."""
        with self._lock:
            return replace(self.keys[key].account.setting(symbol))

    def hedged(self, key: str) -> bool:
        with self._lock:
            return self.keys[key].account.dual_side

    def open_position_directly(
        self,
        key: str,
        symbol: str,
        side: str,
        quantity: D | str | float,
        position_side: str | None = None,
    ) -> FuturesOrder:
        """A market order the user placed on Binance's website (not through the API).

        It goes through the same checks and fills as an API order (its client id is
        `web_<n>`); a refusal raises `BinanceError`.
        """
        with self._lock:
            account = self.keys[key].account
            params = {
                "symbol": symbol,
                "side": side.upper(),
                "type": "MARKET",
                "quantity": plain(D(str(quantity))),
                "newClientOrderId": f"web_{self._next_order_id}",
            }
            if position_side is not None:
                params["positionSide"] = position_side
            self._place(account, params)
            return replace(account.orders[-1])

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
        a dict is sent as JSON; a str as text/plain. Failed requests change nothing.
        """
        if body is None:
            body = DEFAULT_FAILURE_BODIES.get(status, {"code": -1000, "msg": "Unknown error."})
        extra = dict(headers or {})
        if status in (418, 429):
            extra.setdefault("Retry-After", "1")
        text, content_type = (
            (body, "text/plain")
            if isinstance(body, str)
            else (json.dumps(body), "application/json")
        )
        with self._lock:
            self.failures.append(
                InjectedFailure(count, status, text, content_type, extra, path_prefix)
            )

    def requests_to(self, path: str, method: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path == path and (method is None or r.method == method.upper())
            ]

    # ----- HTTP ----------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        public = [
            ("GET", "/fapi/v1/ping", self._ping),
            ("GET", "/fapi/v1/time", self._time),
            ("GET", "/fapi/v1/exchangeInfo", self._exchange_info),
            ("GET", "/fapi/v1/ticker/price", self._ticker_price),
            ("GET", "/fapi/v2/ticker/price", self._ticker_price),
            ("GET", "/fapi/v1/premiumIndex", self._premium_index),
        ]
        signed = [
            ("GET", "/fapi/v3/account", self._account),
            ("GET", "/fapi/v3/balance", self._balance),
            ("GET", "/fapi/v3/positionRisk", self._position_risk_v3),
            ("GET", "/fapi/v2/positionRisk", self._position_risk_v2),
            ("GET", "/fapi/v1/leverageBracket", self._leverage_bracket),
            ("GET", "/fapi/v1/symbolConfig", self._symbol_config),
            ("GET", "/fapi/v1/positionSide/dual", self._get_position_mode),
            ("POST", "/fapi/v1/positionSide/dual", self._set_position_mode),
            ("POST", "/fapi/v1/leverage", self._set_leverage),
            ("POST", "/fapi/v1/marginType", self._set_margin_type),
            ("POST", "/fapi/v1/order", self._new_order),
            ("GET", "/fapi/v1/order", self._query_order),
            ("DELETE", "/fapi/v1/order", self._cancel_order),
            ("GET", "/fapi/v1/openOrders", self._open_orders),
            ("GET", "/fapi/v1/allOrders", self._all_orders),
            ("GET", "/fapi/v1/userTrades", self._user_trades),
        ]
        for method, path, public_handler in public:
            app.router.add_route(method, path, self._public(public_handler))
        for method, path, signed_handler in signed:
            app.router.add_route(method, path, self._signed(signed_handler))
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.Response:
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
        response: web.Response
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
        received.status = response.status
        if response.content_type == "application/json" and isinstance(response.body, bytes):
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
                    "enableFutures"
                ]:
                    raise BinanceError(401, -2015, MSG_INVALID_KEY)
                return web.json_response(handler(api_key.account, request[PARAMS]))

        return wrapped

    def _authenticate(self, request: web.Request) -> FuturesApiKey:
        header = request.headers.get("X-MBX-APIKEY")
        if not header:
            raise BinanceError(401, -2014, "API-key format invalid.")
        api_key = self.keys.get(header)
        if api_key is None or not api_key.permissions.get("enableReading", True):
            raise BinanceError(401, -2015, MSG_INVALID_KEY)
        params: dict[str, str] = request[PARAMS]
        if not params.get("timestamp"):
            raise mandatory("timestamp")
        if not params.get("signature"):
            raise mandatory("signature")
        payload = _without_signature(request.rel_url.raw_query_string) + _without_signature(
            request[RAW_BODY]
        )
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
        return {
            "timezone": "UTC",
            "serverTime": self.server_time(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"},
            ],
            "symbols": [s.info() for s in self.symbols.values()],
        }

    def _symbol_rows(self, params: dict[str, str]) -> list[FuturesSymbol]:
        if params.get("symbol"):
            return [self._spec(params)]
        return list(self.symbols.values())

    def _ticker_price(self, params: dict[str, str]) -> Any:
        now = self.server_time()
        rows = [
            {"symbol": s.symbol, "price": s.fmt_price(self.prices[s.symbol]), "time": now}
            for s in self._symbol_rows(params)
        ]
        return rows[0] if params.get("symbol") else rows

    def _premium_index(self, params: dict[str, str]) -> Any:
        now = self.server_time()
        rows = []
        for s in self._symbol_rows(params):
            mark = money(self.prices[s.symbol])
            rows.append(
                {
                    "symbol": s.symbol,
                    "markPrice": mark,
                    "indexPrice": mark,
                    "estimatedSettlePrice": mark,
                    "lastFundingRate": "0.00010000",
                    "interestRate": "0.00010000",
                    "nextFundingTime": (now // 28800000 + 1) * 28800000,
                    "time": now,
                }
            )
        return rows[0] if params.get("symbol") else rows

    # ----- account figures ----------------------------------------------------------------

    def _mark(self, symbol: str) -> D:
        return self.prices[symbol]

    def _leverage(self, account: FuturesAccount, symbol: str) -> int:
        return account.setting(symbol).leverage

    def _unpnl(self, position: Position) -> D:
        if position.amount == 0:
            return ZERO
        return (self._mark(position.symbol) - position.entry_price) * position.amount

    def _position_im(self, account: FuturesAccount, position: Position) -> D:
        notional = abs(position.amount) * self._mark(position.symbol)
        return notional / self._leverage(account, position.symbol)

    def _order_im(self, account: FuturesAccount, order: FuturesOrder) -> D:
        if order.reduce_only or order.closing:
            return ZERO
        remaining = order.orig_qty - order.executed_qty
        return remaining * order.price / self._leverage(account, order.symbol)

    def _figures(self, account: FuturesAccount) -> dict[str, D]:
        positions = account.open_positions()
        isolated_wallets = sum((p.isolated_wallet for p in positions), ZERO)
        cross = [p for p in positions if account.setting(p.symbol).margin_type == "CROSSED"]
        unpnl = sum((self._unpnl(p) for p in positions), ZERO)
        cross_unpnl = sum((self._unpnl(p) for p in cross), ZERO)
        position_im = sum((self._position_im(account, p) for p in positions), ZERO)
        cross_position_im = sum((self._position_im(account, p) for p in cross), ZERO)
        order_im = sum((self._order_im(account, o) for o in account.open_orders()), ZERO)
        maint = sum(
            (
                abs(p.amount) * self._mark(p.symbol) * self.symbols[p.symbol].maint_margin_ratio
                for p in positions
            ),
            ZERO,
        )
        cross_wallet = account.wallet - isolated_wallets
        available = cross_wallet + cross_unpnl - cross_position_im - order_im
        return {
            "walletBalance": account.wallet,
            "unrealizedProfit": unpnl,
            "marginBalance": account.wallet + unpnl,
            "maintMargin": maint,
            "initialMargin": position_im + order_im,
            "positionInitialMargin": position_im,
            "openOrderInitialMargin": order_im,
            "crossWalletBalance": cross_wallet,
            "crossUnPnl": cross_unpnl,
            "availableBalance": available,
            "maxWithdrawAmount": max(ZERO, min(available, cross_wallet)),
        }

    def _asset_row(self, account: FuturesAccount) -> dict[str, Any]:
        figures = self._figures(account)
        return {
            "asset": "USDT",
            **{name: money(value) for name, value in figures.items()},
            "updateTime": account.wallet_update_time,
        }

    def _position_row_v3(self, account: FuturesAccount, position: Position) -> dict[str, Any]:
        spec = self.symbols[position.symbol]
        mark = self._mark(position.symbol)
        notional = position.amount * mark
        im = self._position_im(account, position)
        unpnl = self._unpnl(position)
        isolated = account.setting(position.symbol).margin_type == "ISOLATED"
        order_im = sum(
            (self._order_im(account, o) for o in account.open_orders(position.symbol)), ZERO
        )
        return {
            "symbol": position.symbol,
            "positionSide": position.position_side,
            "positionAmt": spec.fmt_qty(position.amount),
            "entryPrice": plain(position.entry_price),
            "breakEvenPrice": plain(position.entry_price),
            "markPrice": money(mark),
            "unRealizedProfit": money(unpnl),
            "liquidationPrice": "0",
            "isolatedMargin": money(position.isolated_wallet + unpnl if isolated else ZERO),
            "notional": money(notional),
            "marginAsset": "USDT",
            "isolatedWallet": money(position.isolated_wallet if isolated else ZERO),
            "initialMargin": money(im + order_im),
            "maintMargin": money(abs(notional) * spec.maint_margin_ratio),
            "positionInitialMargin": money(im),
            "openOrderInitialMargin": money(order_im),
            "adl": 0,
            "bidNotional": "0",
            "askNotional": "0",
            "updateTime": position.update_time,
        }

    def _position_sides(self, account: FuturesAccount) -> tuple[str, ...]:
        return ("LONG", "SHORT") if account.dual_side else ("BOTH",)

    # ----- signed endpoints ----------------------------------------------------------------

    def _spec(self, params: dict[str, str]) -> FuturesSymbol:
        symbol = params.get("symbol")
        if not symbol:
            raise mandatory("symbol")
        if symbol not in self.symbols:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return self.symbols[symbol]

    def _account(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        figures = self._figures(account)
        totals = {
            "totalInitialMargin": figures["initialMargin"],
            "totalMaintMargin": figures["maintMargin"],
            "totalWalletBalance": figures["walletBalance"],
            "totalUnrealizedProfit": figures["unrealizedProfit"],
            "totalMarginBalance": figures["marginBalance"],
            "totalPositionInitialMargin": figures["positionInitialMargin"],
            "totalOpenOrderInitialMargin": figures["openOrderInitialMargin"],
            "totalCrossWalletBalance": figures["crossWalletBalance"],
            "totalCrossUnPnl": figures["crossUnPnl"],
            "availableBalance": figures["availableBalance"],
            "maxWithdrawAmount": figures["maxWithdrawAmount"],
        }
        # v3 lists only the symbols with a position or open orders.
        rows = []
        for position in self._v3_positions(account):
            risk = self._position_row_v3(account, position)
            rows.append(
                {
                    "symbol": risk["symbol"],
                    "positionSide": risk["positionSide"],
                    "positionAmt": risk["positionAmt"],
                    "unrealizedProfit": risk["unRealizedProfit"],
                    "isolatedMargin": risk["isolatedMargin"],
                    "notional": risk["notional"],
                    "isolatedWallet": risk["isolatedWallet"],
                    "initialMargin": risk["initialMargin"],
                    "maintMargin": risk["maintMargin"],
                    "updateTime": risk["updateTime"],
                }
            )
        return {
            **{name: money(value) for name, value in totals.items()},
            "assets": [self._asset_row(account)],
            "positions": rows,
        }

    def _balance(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        figures = self._figures(account)
        return [
            {
                "accountAlias": f"Fz{account.uid}",
                "asset": "USDT",
                "balance": money(figures["walletBalance"]),
                "crossWalletBalance": money(figures["crossWalletBalance"]),
                "crossUnPnl": money(figures["crossUnPnl"]),
                "availableBalance": money(figures["availableBalance"]),
                "maxWithdrawAmount": money(figures["maxWithdrawAmount"]),
                "marginAvailable": True,
                "updateTime": account.wallet_update_time,
            }
        ]

    def _v3_positions(self, account: FuturesAccount, symbol: str | None = None) -> list[Position]:
        """Non-zero positions, plus an empty row per side for symbols with open orders."""
        rows = [p for p in account.open_positions() if symbol is None or p.symbol == symbol]
        with_orders = {o.symbol for o in account.open_orders(symbol)}
        for s in sorted(with_orders):
            for side in self._position_sides(account):
                if not any(p.symbol == s and p.position_side == side for p in rows):
                    rows.append(account.positions.get((s, side)) or Position(s, side))
        return rows

    def _position_risk_v3(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        symbol = self._spec(params).symbol if params.get("symbol") else None
        return [self._position_row_v3(account, p) for p in self._v3_positions(account, symbol)]

    def _position_risk_v2(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        rows = []
        for spec in self._symbol_rows(params):
            setting = account.setting(spec.symbol)
            for side in self._position_sides(account):
                position = account.positions.get((spec.symbol, side)) or Position(spec.symbol, side)
                v3 = self._position_row_v3(account, position)
                isolated = setting.margin_type == "ISOLATED"
                rows.append(
                    {
                        "symbol": spec.symbol,
                        "positionAmt": v3["positionAmt"],
                        "entryPrice": v3["entryPrice"],
                        "breakEvenPrice": v3["breakEvenPrice"],
                        "markPrice": v3["markPrice"],
                        "unRealizedProfit": v3["unRealizedProfit"],
                        "liquidationPrice": "0",
                        "leverage": str(setting.leverage),
                        "maxNotionalValue": "50000000",
                        "marginType": "isolated" if isolated else "cross",
                        "isolatedMargin": v3["isolatedMargin"],
                        "isAutoAddMargin": "false",
                        "positionSide": side,
                        "notional": v3["notional"],
                        "isolatedWallet": v3["isolatedWallet"],
                        "updateTime": position.update_time,
                    }
                )
        return rows

    def _leverage_bracket(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        if params.get("symbol"):
            return self._spec(params).bracket()
        return [s.bracket() for s in self.symbols.values()]

    def _symbol_config(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        return [
            {
                "symbol": s.symbol,
                "marginType": account.setting(s.symbol).margin_type,
                "isAutoAddMargin": False,
                "leverage": account.setting(s.symbol).leverage,
                "maxNotionalValue": "50000000",
            }
            for s in self._symbol_rows(params)
        ]

    def _get_position_mode(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        return {"dualSidePosition": account.dual_side}

    def _set_position_mode(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        value = params.get("dualSidePosition")
        if not value:
            raise mandatory("dualSidePosition")
        if value.lower() not in ("true", "false"):
            raise BinanceError(
                400, -1130, "Data sent for parameter 'dualSidePosition' is not valid."
            )
        wanted = value.lower() == "true"
        if wanted == account.dual_side:
            raise BinanceError(400, -4059, MSG_NO_SIDE_CHANGE)
        if account.open_positions():
            raise BinanceError(400, -4068, MSG_SIDE_POSITION)
        if account.open_orders():
            raise BinanceError(400, -4067, MSG_SIDE_OPEN_ORDERS)
        account.dual_side = wanted
        return SUCCESS

    def _set_leverage(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        spec = self._spec(params)
        raw = params.get("leverage")
        if not raw:
            raise mandatory("leverage")
        try:
            leverage = int(raw)
        except ValueError as e:
            raise BinanceError(
                400,
                -1100,
                "Illegal characters found in parameter 'leverage'; legal range is '^[0-9]{1,20}$'.",
            ) from e
        if not 1 <= leverage <= spec.max_leverage:
            raise BinanceError(400, -4028, f"Leverage {leverage} is not valid")
        setting = account.setting(spec.symbol)
        positions = [p for p in account.open_positions() if p.symbol == spec.symbol]
        if positions and setting.margin_type == "ISOLATED" and leverage < setting.leverage:
            raise BinanceError(400, -4161, MSG_ISOLATED_LEVERAGE)
        previous = setting.leverage
        setting.leverage = leverage
        if positions and self._figures(account)["availableBalance"] < 0:
            setting.leverage = previous
            raise BinanceError(400, -2028, MSG_LEVERAGE_MARGIN)
        return {"leverage": leverage, "maxNotionalValue": "50000000", "symbol": spec.symbol}

    def _set_margin_type(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        spec = self._spec(params)
        wanted = params.get("marginType")
        if not wanted:
            raise mandatory("marginType")
        if wanted not in ("ISOLATED", "CROSSED"):
            raise BinanceError(400, -1130, "Data sent for parameter 'marginType' is not valid.")
        setting = account.setting(spec.symbol)
        if wanted == setting.margin_type:
            raise BinanceError(400, -4046, MSG_NO_MARGIN_CHANGE)
        if any(p.symbol == spec.symbol for p in account.open_positions()):
            raise BinanceError(400, -4048, MSG_MARGIN_POSITION)
        if account.open_orders(spec.symbol):
            raise BinanceError(400, -4047, MSG_MARGIN_OPEN_ORDERS)
        setting.margin_type = wanted
        return SUCCESS

    # ----- orders --------------------------------------------------------------------------

    def _new_order(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        order = self._place(account, params)
        spec = self.symbols[order.symbol]
        if params.get("newOrderRespType", "ACK") == "RESULT":
            return order.shape(spec, query=False)
        ack = order.shape(spec, query=False)
        # ACK: the order as accepted, before matching.
        ack.update(
            {
                "status": "NEW",
                "executedQty": spec.fmt_qty(ZERO),
                "cumQty": spec.fmt_qty(ZERO),
                "cumQuote": money(ZERO),
                "avgPrice": "0.00",
                "updateTime": order.time,
            }
        )
        return ack

    def _place(self, account: FuturesAccount, params: dict[str, str]) -> FuturesOrder:
        spec = self._spec(params)
        side = params.get("side")
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        order_type = params.get("type")
        if not order_type:
            raise mandatory("type")
        if order_type not in ("MARKET", "LIMIT"):
            raise BinanceError(400, -1116, "Invalid orderType.")

        position_side = params.get("positionSide", "BOTH")
        if position_side not in ("BOTH", "LONG", "SHORT"):
            raise BinanceError(400, -4060, "Invalid position side.")
        if (position_side == "BOTH") == account.dual_side:
            raise BinanceError(400, -4061, MSG_SIDE_MISMATCH)
        reduce_only = False
        if "reduceOnly" in params:
            if account.dual_side:
                raise BinanceError(400, -1106, MSG_REDUCE_ONLY_PARAM)
            if params["reduceOnly"].lower() not in ("true", "false"):
                raise BinanceError(400, -4062, "Invalid or improper reduceOnly value.")
            reduce_only = params["reduceOnly"].lower() == "true"

        client_order_id = params.get("newClientOrderId") or f"peer{self._next_order_id}"
        if len(client_order_id) > 36:
            raise BinanceError(
                400, -4015, "Client order id length should not be more than 36 chars"
            )
        if not re.fullmatch(r"[\.A-Z:/a-z0-9_-]{1,36}", client_order_id):
            raise BinanceError(
                400,
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; "
                "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        if any(o.client_order_id == client_order_id for o in account.open_orders()):
            raise BinanceError(400, -4116, MSG_DUPLICATE_ID)

        quantity = _number(params, "quantity")
        if quantity is None:
            raise mandatory("quantity")
        if quantity <= 0:
            raise BinanceError(400, -4003, "Quantity less than or equal to zero.")
        if decimals(quantity) > spec.quantity_precision:
            raise BinanceError(400, -1111, MSG_PRECISION)
        price = _number(params, "price")
        mark = self._mark(spec.symbol)

        if order_type == "LIMIT":
            tif = params.get("timeInForce")
            if not tif:
                raise mandatory("timeInForce")
            if tif not in ("GTC", "IOC", "FOK", "GTX"):
                raise BinanceError(400, -1115, "Invalid timeInForce.")
            if price is None:
                raise mandatory("price")
            if price <= 0:
                raise BinanceError(400, -4001, "Price less than 0.")
            if decimals(price) > spec.price_precision:
                raise BinanceError(400, -1111, MSG_PRECISION)
            if price < spec.min_price:
                raise BinanceError(400, -4013, "Price less than min price.")
            if price > spec.max_price:
                raise BinanceError(400, -4002, "Price greater than max price.")
            if (price - spec.min_price) % spec.tick_size:
                raise BinanceError(400, -4014, "Price not increased by tick size.")
            _check_qty(quantity, spec.min_qty, spec.max_qty, spec.step_size)
        else:
            if price is not None:
                raise BinanceError(400, -1106, "Parameter 'price' sent when not required.")
            if params.get("timeInForce"):
                raise BinanceError(400, -1106, "Parameter 'timeInForce' sent when not required.")
            tif = "GTC"
            price = ZERO
            _check_qty(quantity, spec.market_min_qty, spec.market_max_qty, spec.market_step_size)

        closing = (position_side, side) in (("LONG", "SELL"), ("SHORT", "BUY"))
        reference = price if order_type == "LIMIT" else mark
        if not (reduce_only or closing) and quantity * reference < spec.min_notional:
            raise BinanceError(
                400,
                -4164,
                f"Order's notional must be no smaller than {plain(spec.min_notional)} "
                "(unless you choose reduce only).",
            )

        key = (spec.symbol, position_side)
        held = account.positions.get(key)
        amount = held.amount if held else ZERO
        delta = quantity if side == "BUY" else -quantity
        if reduce_only or closing:
            # Only a smaller position of the same sign (or zero) is a reduction.
            if amount == 0 or (amount > 0) == (delta > 0) or quantity > abs(amount):
                raise BinanceError(400, -2022, MSG_REDUCE_ONLY)
            opening = ZERO
        elif amount != 0 and (amount > 0) != (delta > 0):
            opening = max(ZERO, quantity - abs(amount))
        else:
            opening = quantity
        required = opening * reference / account.setting(spec.symbol).leverage
        if required > self._figures(account)["availableBalance"]:
            raise BinanceError(400, -2019, MSG_MARGIN)

        marketable = order_type == "MARKET" or (
            (side == "BUY" and price >= mark) or (side == "SELL" and price <= mark)
        )
        if order_type == "LIMIT" and tif == "GTX" and marketable:
            raise BinanceError(
                400,
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be "
                "rejected. The order will not be recorded in the order history",
            )
        if order_type == "LIMIT" and tif == "FOK" and not marketable:
            raise BinanceError(
                400,
                -5021,
                "Due to the order could not be filled immediately, the FOK order has been "
                "rejected. The order will not be recorded in the order history",
            )

        now = self.server_time()
        order = FuturesOrder(
            symbol=spec.symbol,
            order_id=self._next_order_id,
            client_order_id=client_order_id,
            side=side,
            type=order_type,
            time_in_force=tif,
            position_side=position_side,
            reduce_only=reduce_only,
            price=price,
            orig_qty=quantity,
            time=now,
            update_time=now,
            closing=closing,
        )
        self._next_order_id += 1
        account.orders.append(order)
        if marketable:
            self._fill(account, order, mark, maker=False)
        elif tif == "IOC":
            order.status = "EXPIRED"
        return order

    def _still_reduces(self, account: FuturesAccount, order: FuturesOrder) -> bool:
        held = account.positions.get((order.symbol, order.position_side))
        amount = held.amount if held else ZERO
        delta = order.orig_qty - order.executed_qty
        if order.side == "SELL":
            delta = -delta
        return amount != 0 and (amount > 0) != (delta > 0) and abs(delta) <= abs(amount)

    def _fill(self, account: FuturesAccount, order: FuturesOrder, price: D, *, maker: bool) -> None:
        qty = order.orig_qty - order.executed_qty
        delta = qty if order.side == "BUY" else -qty
        position = account.position(order.symbol, order.position_side)
        setting = account.setting(order.symbol)
        isolated = setting.margin_type == "ISOLATED"
        realized = ZERO
        amount = position.amount
        if amount != 0 and (amount > 0) != (delta > 0):
            closed = min(abs(delta), abs(amount))
            sign = D(1) if amount > 0 else D(-1)
            realized = (price - position.entry_price) * closed * sign
            remaining = abs(amount) - closed
            if isolated and amount:
                position.isolated_wallet = position.isolated_wallet * remaining / abs(amount)
            position.amount = amount + (closed if amount < 0 else -closed)
            if position.amount == 0:
                position.entry_price = ZERO
                position.isolated_wallet = ZERO
            opened = abs(delta) - closed
            if opened:
                position.amount = opened if delta > 0 else -opened
                position.entry_price = price
                if isolated:
                    position.isolated_wallet = opened * price / setting.leverage
        else:
            size = abs(amount)
            position.entry_price = (size * position.entry_price + qty * price) / (size + qty)
            position.amount = amount + delta
            if isolated:
                position.isolated_wallet += qty * price / setting.leverage
        notional = qty * price
        commission = notional * self.commission_rate
        account.wallet += realized - commission
        now = self.server_time()
        account.wallet_update_time = now
        position.update_time = now
        spec = self.symbols[order.symbol]
        trade = {
            "symbol": order.symbol,
            "id": self._next_trade_id,
            "orderId": order.order_id,
            "side": order.side,
            "price": plain(price),
            "qty": spec.fmt_qty(qty),
            "realizedPnl": money(realized),
            "marginAsset": "USDT",
            "quoteQty": money(notional),
            "commission": money(commission),
            "commissionAsset": "USDT",
            "time": now,
            "positionSide": order.position_side,
            "maker": maker,
            "buyer": order.side == "BUY",
        }
        self._next_trade_id += 1
        account.trades.append(trade)
        order.executed_qty += qty
        order.cum_quote += notional
        order.status = "FILLED"
        order.update_time = now

    def _find_order(
        self, account: FuturesAccount, params: dict[str, str], code: int, msg: str
    ) -> FuturesOrder:
        spec = self._spec(params)
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            raise BinanceError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        candidates = [o for o in account.orders if o.symbol == spec.symbol]
        if order_id:
            candidates = [o for o in candidates if str(o.order_id) == order_id]
        if client_id:
            candidates = [o for o in candidates if o.client_order_id == client_id]
        if not candidates:
            raise BinanceError(400, code, msg)
        return candidates[-1]

    def _query_order(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        order = self._find_order(account, params, -2013, MSG_NO_ORDER)
        return order.shape(self.symbols[order.symbol], query=True)

    def _cancel_order(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        order = self._find_order(account, params, -2011, MSG_UNKNOWN_ORDER)
        if not order.is_open:
            raise BinanceError(400, -2011, MSG_UNKNOWN_ORDER)
        order.status = "CANCELED"
        order.update_time = self.server_time()
        return order.shape(self.symbols[order.symbol], query=False)

    def _open_orders(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        symbol = self._spec(params).symbol if params.get("symbol") else None
        return [o.shape(self.symbols[o.symbol], query=True) for o in account.open_orders(symbol)]

    def _all_orders(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        spec = self._spec(params)
        rows = [o for o in account.orders if o.symbol == spec.symbol]
        if params.get("orderId"):
            rows = [o for o in rows if o.order_id >= int(params["orderId"])]
        if params.get("startTime"):
            rows = [o for o in rows if o.time >= int(params["startTime"])]
        if params.get("endTime"):
            rows = [o for o in rows if o.time <= int(params["endTime"])]
        limit = min(int(params.get("limit") or 500), 1000)
        return [o.shape(spec, query=True) for o in rows[-limit:]]

    def _user_trades(self, account: FuturesAccount, params: dict[str, str]) -> Any:
        spec = self._spec(params)
        rows = [t for t in account.trades if t["symbol"] == spec.symbol]
        if params.get("orderId"):
            rows = [t for t in rows if t["orderId"] == int(params["orderId"])]
        if params.get("fromId"):
            rows = [t for t in rows if t["id"] >= int(params["fromId"])]
        if params.get("startTime"):
            rows = [t for t in rows if t["time"] >= int(params["startTime"])]
        if params.get("endTime"):
            rows = [t for t in rows if t["time"] <= int(params["endTime"])]
        limit = min(int(params.get("limit") or 500), 1000)
        return rows[-limit:]


def _number(params: dict[str, str], name: str) -> D | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        result = D(value)
    except ArithmeticError as e:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.") from e
    if not result.is_finite():
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.")
    return result


def _check_qty(qty: D, min_qty: D, max_qty: D, step: D) -> None:
    if qty < min_qty:
        raise BinanceError(400, -4004, "Quantity less than min quantity.")
    if qty > max_qty:
        raise BinanceError(400, -4005, "Quantity greater than max quantity.")
    if step > 0 and (qty - min_qty) % step:
        raise BinanceError(400, -4023, "Qty not increased by step size.")


def binanceusdm_client(
    peer: BinanceUsdmPeer,
    key: str,
    secret: str,
    *,
    enable_rate_limit: bool = False,
    **options: Any,
) -> Any:
    """A real `ccxt.async_support.binanceusdm` whose every REST base URL points at `peer`.

    Every entry of `exchange.urls["api"]` keeps its path and gets the peer's scheme,
    host and port (as the product's `api_host` does), so nothing can leak to the real
    exchange. Markets are the linear ones only; no currencies (a sapi call) and no
    margin pairs. ccxt's client-side throttle (`enableRateLimit`, about 50 ms a call
    for Binance) is off unless asked for: it paces requests, it does not change them.
    `timeout_on_exit` (ccxt's 250 ms pause in `close()`, there for TLS connections to
    wind down) is 0: the peer speaks plain HTTP. The caller must `await exchange.close()`.
    """
    import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]

    exchange = ccxt_async.binanceusdm(
        {
            "apiKey": key,
            "secret": secret,
            "enableRateLimit": enable_rate_limit,
            "timeout_on_exit": 0,
            "options": {
                "fetchCurrencies": False,
                "fetchMarkets": {"types": ["linear"]},
                "fetchMargins": False,
                **options,
            },
        }
    )
    base = peer.base_url
    api_urls = exchange.urls["api"]
    for name, url in list(api_urls.items()):
        if isinstance(url, str):
            api_urls[name] = base + urlsplit(url).path
    return exchange
