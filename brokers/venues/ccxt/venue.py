"""The generic ccxt connector: one class for every exchange ccxt supports.

Spot copies are amounts of the base currency: closing a copy sells (or buys
back) the copied amount. Derivative copies close with reduce-only orders.
Every order carries our client order id in ccxt's unified `clientOrderId`
param, which ccxt renames to the exchange's own (`newClientOrderId`,
`orderLinkId`, `clOrdId`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
from asgiref.sync import sync_to_async

from brokers.venues.base import (
    OrderDenied,
    OrderNotFound,
    Report,
    TemporaryVenueError,
    Venue,
    VenueError,
)
from brokers.venues.ccxt.capabilities import capabilities, checked_client_order_id
from brokers.venues.ccxt.errors import translate
from brokers.venues.ccxt.markets import check_order, instrument
from copier.core import FollowerOrder, Instrument, OrderAction, OrderType, Side

BALANCE_MAX_AGE_S = 2.0
# Requests ccxt may send at once after a quiet spell (then the exchange's rate).
BURST_TOKENS = 10.0
# Our market types (the link form's) as ccxt's sub-types.
log = logging.getLogger(__name__)
SUBTYPES = {"swap": "linear", "inverse": "inverse"}
# How exchanges say a setting is already what was asked (Binance -4046/-4059,
# Bybit 110043/110025/110026); not every ccxt class maps them to NoChange.
UNCHANGED = re.compile(r"no need to change|not modified|already", re.IGNORECASE)


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _rehost(urls: dict[str, Any], api_host: str) -> None:
    """Point every API URL at a self-hosted proxy (or a test peer) in front of
    the exchange: keep each path, change scheme, host and port; websocket
    URLs get the matching ws:// or wss:// scheme."""
    base = urlsplit(api_host)
    ws_scheme = "wss" if base.scheme == "https" else "ws"
    for name, url in list(urls.items()):
        if isinstance(url, dict):
            _rehost(url, api_host)
        elif isinstance(url, str):
            parts = urlsplit(url)
            scheme = ws_scheme if parts.scheme in ("ws", "wss") else base.scheme
            urls[name] = f"{scheme}://{base.netloc}{parts.path}"


class CcxtVenue(Venue):
    def __init__(
        self,
        exchange_id: str,
        credentials: dict[str, str],
        market_type: str = "spot",
        sandbox: bool = False,
        api_host: str | None = None,
        websocket: bool = False,
        leverage: int | None = None,
        margin_mode: str = "",
    ) -> None:
        """`websocket`: use the ccxt.pro class (REST plus `watch_*`) where ccxt has one.

        `leverage` and `margin_mode` (derivatives followers) are set on the
        exchange before the first order of each symbol.
        """
        if exchange_id not in ccxt.exchanges:
            raise VenueError(f"ccxt has no exchange called {exchange_id!r}")
        self.exchange_id = exchange_id
        self.market_type = market_type
        module = ccxt_pro if websocket and exchange_id in ccxt_pro.exchanges else ccxt_async
        self.exchange: Any = getattr(module, exchange_id)(
            {
                "apiKey": credentials.get("apiKey", ""),
                "secret": credentials.get("secret", ""),
                "password": credentials.get("password", ""),
                "enableRateLimit": True,
                "options": {
                    "defaultType": "spot" if market_type == "spot" else "swap",
                    "defaultSubType": SUBTYPES.get(market_type),
                    "fetchCurrencies": False,
                    # ccxt's market families: spot, linear, inverse.
                    "fetchMarkets": {"types": [SUBTYPES.get(market_type, market_type)]},
                    "fetchMargins": False,
                },
            }
        )
        if sandbox:
            self.exchange.set_sandbox_mode(True)
        if api_host:
            _rehost(self.exchange.urls["api"], api_host)
        self._free: dict[str, Decimal] = {}
        self._free_at = 0.0
        self._free_task: asyncio.Task[None] | None = None
        self._instruments: dict[str, Instrument] = {}
        self._last_call_ms = 0.0
        throttler = getattr(self.exchange, "throttler", None)
        if throttler is not None and throttler.config.get("algorithm") == "leakyBucket":
            # A burst of BURST_TOKENS requests after a quiet spell, then the
            # exchange's documented rate (see _credit_idle).
            throttler.config["capacity"] = BURST_TOKENS
        self.leverage = leverage
        self.margin_mode = margin_mode
        self._prepared: set[str] = set()
        self.hedged: bool | None = None  # the account's position mode, once read

    async def close(self) -> None:
        if self._free_task is not None:
            self._free_task.cancel()
        await self.exchange.close()

    def _credit_idle(self) -> None:
        """Give ccxt's leaky bucket the tokens earned while no request was waiting.

        ccxt 4.5's async throttler refills only while a request waits
        (ccxt/ccxt#25556), so after any request the next one waits its cost x
        rateLimit however long ago it was: 70 to 250 ms per copied order
        (docs/performance.md). Crediting idle time keeps the exchange's rate
        and lets an order after a quiet spell go at once.
        """
        throttler = getattr(self.exchange, "throttler", None)
        now_ms = time.monotonic() * 1000
        if throttler is not None and not throttler.running and self._last_call_ms:
            config = throttler.config
            earned = (now_ms - self._last_call_ms) * config["refillRate"]
            config["tokens"] = min(config["tokens"] + earned, config["capacity"])
        self._last_call_ms = now_ms

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._credit_idle()
        try:
            return await getattr(self.exchange, method)(*args, **kwargs)
        except ccxt.BaseError as e:
            raise translate(e) from e

    async def connect(self) -> None:
        """Markets from the shared cache when it is fresh, else from the exchange."""
        from brokers.venues.ccxt.market_cache import cached_markets

        markets = await sync_to_async(cached_markets, thread_sensitive=False)(
            self.exchange_id, self.market_type, bool(self.exchange.isSandboxModeEnabled)
        )
        if markets:
            self.exchange.set_markets(markets)
        else:
            await self.call("load_markets")

    def instrument(self, symbol: str) -> Instrument | None:
        if (known := self._instruments.get(symbol)) is not None:
            return known
        market = (self.exchange.markets or {}).get(symbol)
        if market is None:
            return None
        self._instruments[symbol] = found = instrument(market, self.exchange.precisionMode)
        return found

    async def free_balance(self, refresh: bool = False) -> dict[str, Decimal]:
        """The free balance by currency.

        Only the first call (or `refresh`) waits for the exchange; afterwards a
        stale balance is refreshed in the background and the order is checked
        against the last one read, so no order waits for a balance request. An
        order the stale figure lets through and the exchange refuses comes back
        as InsufficientBalance.
        """
        if refresh or not self._free_at:
            await self._read_balance()
        elif time.monotonic() - self._free_at > BALANCE_MAX_AGE_S and (
            self._free_task is None or self._free_task.done()
        ):
            self._free_task = asyncio.create_task(self._read_balance_quietly())
        return self._free

    async def _read_balance(self) -> None:
        balance = await self.call("fetch_balance")
        self._free = {
            c: Decimal(str(v)) for c, v in (balance.get("free") or {}).items() if v is not None
        }
        self._free_at = time.monotonic()

    async def _read_balance_quietly(self) -> None:
        try:
            await self._read_balance()
        except VenueError as e:
            log.warning("%s: could not refresh the balance: %s", self.exchange_id, e.message)

    async def execute(self, order: FollowerOrder, client_order_id: str) -> Report:
        market = (self.exchange.markets or {}).get(order.symbol)
        if market is None:
            raise OrderDenied(f"{order.symbol} is not traded on {self.exchange_id}")
        coid = checked_client_order_id(self.exchange_id, client_order_id)
        if order.action is OrderAction.CANCEL_PENDING:
            return await self._cancel(order, coid)
        if order.action not in (
            OrderAction.OPEN,
            OrderAction.CLOSE,
            OrderAction.REDUCE,
            OrderAction.PLACE_PENDING,
        ):
            raise VenueError(f"{order.action.value} is not supported on exchanges yet")
        limit = order.action is OrderAction.PLACE_PENDING
        if limit and order.order_type is not OrderType.LIMIT:
            raise OrderDenied("only limit orders are copied to exchanges as pending orders")
        # The planner rounded to this market's step already; check_order refuses
        # anything else rather than letting ccxt truncate it silently.
        amount = order.volume
        closing = order.action in (OrderAction.CLOSE, OrderAction.REDUCE)
        # Derivatives need the balance only to check margin at a known leverage.
        needs_balance = not market.get("contract") or (bool(self.leverage) and not closing)
        check_order(
            market,
            self.exchange.precisionMode,
            order.side,
            amount,
            order.reference_price,
            await self.free_balance() if needs_balance else {},
            limit_price=limit,
            leverage=self.leverage if market.get("contract") else None,
            reduce_only=order.action in (OrderAction.CLOSE, OrderAction.REDUCE),
        )
        params: dict[str, Any] = {"clientOrderId": coid}
        if market.get("contract"):
            await self._prepare(market, opening=not closing)
            if closing and capabilities(self.exchange_id).supports_reduce_only:
                params["reduceOnly"] = True
            if self.hedged:
                # ccxt turns this into the exchange's position side
                # (Binance positionSide LONG/SHORT, Bybit positionIdx 1/2).
                params["hedged"] = True
        placed = await self.call(
            "create_order",
            order.symbol,
            "limit" if limit else "market",
            order.side.value,
            float(amount),
            float(order.reference_price) if limit else None,
            params,
        )
        if placed.get("filled") is None and placed.get("amount") is None:
            # Some exchanges (Bybit) acknowledge with ids only: read the order back.
            found = await self.find(coid, order.symbol)
            if found is not None:
                report = dataclasses.replace(found, created=True)
                self._account_for(market, report)
                return report
        report = self._report(placed, coid, created=True, fallback=order)
        self._account_for(market, report)
        return report

    def _account_for(self, market: dict[str, Any], report: Report) -> None:
        """Move the cached spot balance by a fill at once (the background refresh
        that follows has the last word), so the next order, e.g. the close of
        this one, is checked against what the account now holds."""
        self._free_at = min(self._free_at, time.monotonic() - BALANCE_MAX_AGE_S - 1)
        if market.get("contract") or not report.volume or not self._free:
            return
        base, quote = market["base"], market["quote"]
        cost = report.volume * report.price
        sign = 1 if report.side is Side.BUY else -1
        self._free[base] = self._free.get(base, Decimal(0)) + sign * report.volume
        self._free[quote] = self._free.get(quote, Decimal(0)) - sign * cost

    async def _prepare(self, market: dict[str, Any], opening: bool) -> None:
        """Before a symbol's first order: read the position mode; before its first
        opening order, set margin mode and leverage (a close must never be held
        up by a setting the exchange refuses while a position is open)."""
        symbol = market["symbol"]
        if self.hedged is None:
            self.hedged = await self._read_position_mode(symbol)
        if symbol in self._prepared or not opening:
            return
        has = self.exchange.has
        if self.margin_mode and has.get("setMarginMode"):
            await self._setting(
                "set_margin_mode", f"{self.margin_mode} margin", self.margin_mode, symbol
            )
        if self.leverage and has.get("setLeverage"):
            await self._setting("set_leverage", f"{self.leverage}x leverage", self.leverage, symbol)
        self._prepared.add(symbol)

    async def _read_position_mode(self, symbol: str) -> bool:
        """Hedge (True) or one-way mode: asked directly where ccxt can, else read
        from the positions' sides (Bybit lists both sides of a hedged symbol)."""
        try:
            if self.exchange.has.get("fetchPositionMode"):
                mode = await self.exchange.fetch_position_mode(symbol)
                return bool(mode.get("hedged"))
        except ccxt.NotSupported:
            pass
        except ccxt.BaseError as e:
            raise translate(e) from e
        if not self.exchange.has.get("fetchPositions"):
            return False
        positions = await self.call("fetch_positions", [symbol])
        return any(p.get("hedged") for p in positions)

    async def _setting(self, method: str, what: str, value: object, symbol: str) -> None:
        """Apply an account setting; "already so" is success, a refusal denies the copy."""
        try:
            await getattr(self.exchange, method)(value, symbol)
        except (ccxt.NoChange, ccxt.MarginModeAlreadySet):
            return
        except ccxt.BaseError as e:
            if UNCHANGED.search(str(e)):
                return
            error = translate(e)
            if isinstance(error, TemporaryVenueError):
                raise error from e
            raise OrderDenied(
                f"{self.exchange_id} refused {what} on {symbol}: {error.message}"
            ) from e

    async def _cancel(self, order: FollowerOrder, coid: str) -> Report:
        cancelled = await self.call("cancel_order", order.ref, order.symbol)
        return self._report(cancelled, coid, created=True, fallback=order)

    async def find(self, client_order_id: str, symbol: str | None = None) -> Report | None:
        if symbol is None:
            raise VenueError(f"{self.exchange_id} needs the symbol to look an order up")
        if capabilities(self.exchange_id).find_by_order_link_id:
            return await self._find_by_link_id(client_order_id, symbol)
        try:
            found = await self.call("fetch_order", None, symbol, {"clientOrderId": client_order_id})
        except OrderNotFound:
            return None
        return self._report(found, client_order_id, created=False, fallback=None)

    async def _find_by_link_id(self, client_order_id: str, symbol: str) -> Report | None:
        """Bybit: ccxt's fetch_order cannot look up by orderLinkId; the open-orders
        query can (Bybit answers it for any status when given the id), then the
        closed and cancelled history."""
        params = {"orderLinkId": client_order_id}
        for method in ("fetch_open_orders", "fetch_canceled_and_closed_orders"):
            try:
                found = await self.call(method, symbol, None, None, params)
            except OrderNotFound:
                continue
            for order in found:
                if order.get("clientOrderId") == client_order_id:
                    return self._report(order, client_order_id, created=False, fallback=None)
        return None

    def _report(
        self, placed: dict[str, Any], coid: str, created: bool, fallback: FollowerOrder | None
    ) -> Report:
        filled = _decimal(placed.get("filled"))
        amount = _decimal(placed.get("amount"))
        price = _decimal(placed.get("average")) or _decimal(placed.get("price"))
        side = placed.get("side") or (fallback.side.value if fallback else "buy")
        return Report(
            client_order_id=placed.get("clientOrderId") or coid,
            action=placed.get("status") or "",
            ref=str(placed.get("id")),
            symbol=placed.get("symbol") or (fallback.symbol if fallback else ""),
            side=Side(side),
            volume=filled if filled else (amount or Decimal(0)),
            price=price or (fallback.reference_price if fallback else Decimal(0)),
            created=created,
        )
