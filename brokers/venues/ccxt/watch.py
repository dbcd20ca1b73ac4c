"""Reading a master's fills from an exchange: ccxt.pro websockets, REST as the fallback.

This module only talks to the exchange and turns its trades into
`copier.core.lots.Fill` values; the copier's watcher (`copier/watchers.py`)
decides what they mean and records them.

- `stream()` waits on `watch_my_trades()` where ccxt.pro supports it for the
  exchange. ccxt raises a NetworkError when the socket drops; the next call
  reconnects and subscribes again, but fills made while it was away only come
  back through REST, so the caller resyncs after every (re)connect.
- `since(ms)` lists fills through REST `fetch_my_trades`, page by page. Some
  exchanges (Binance) list fills only per symbol: then it asks for each of the
  account's watched symbols and for every symbol with an open lot.
- `baseline()` reads derivative positions held before watching started.

ccxt throttles REST calls to the exchange's documented rate limit
(`enableRateLimit`), so polling never runs faster than the exchange allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import ccxt

from brokers.venues.base import TemporaryVenueError
from brokers.venues.ccxt.capabilities import capabilities
from brokers.venues.ccxt.errors import translate
from brokers.venues.ccxt.venue import CcxtVenue
from copier.core.events import Side
from copier.core.lots import Fill, PositionSide

PAGE = 500


def fill_from_trade(trade: dict[str, Any]) -> Fill | None:
    """A ccxt unified trade as a fill; None for a trade without the fields a fill needs."""
    try:
        info = trade.get("info") or {}
        side_of_position = str(info.get("positionSide") or info.get("ps") or "").upper()
        position_side = {"LONG": PositionSide.LONG, "SHORT": PositionSide.SHORT}.get(
            side_of_position, PositionSide.NET
        )
        return Fill(
            trade_id=str(trade["id"]),
            order_id=str(trade.get("order") or trade["id"]),
            symbol=str(trade["symbol"]),
            side=Side(trade["side"]),
            amount=Decimal(str(trade["amount"])),
            price=Decimal(str(trade["price"])),
            ts_ms=int(trade["timestamp"]),
            position_side=position_side,
        )
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None


def fills(trades: Iterable[dict[str, Any]]) -> list[Fill]:
    return [f for t in trades if (f := fill_from_trade(t)) is not None]


class FillSource:
    """One master's fills at one exchange, through one connector."""

    def __init__(
        self, venue: CcxtVenue, watch_symbols: Iterable[str] = (), websocket: bool = True
    ) -> None:
        self.venue = venue
        self.watch_symbols = sorted(set(watch_symbols))
        has = venue.exchange.has
        self.websocket = (
            websocket
            and bool(has.get("watchMyTrades"))
            and hasattr(venue.exchange, "watch_my_trades")
        )
        self.needs_symbol = capabilities(venue.exchange_id).my_trades_need_symbol

    @property
    def spot(self) -> bool:
        return self.venue.market_type == "spot"

    async def server_time_ms(self) -> int:
        if self.venue.exchange.has.get("fetchTime"):
            return int(await self.venue.call("fetch_time"))
        return int(self.venue.exchange.milliseconds())

    async def baseline(self) -> dict[tuple[str, str], Decimal]:
        """Derivative positions held now, signed, by (symbol, position side)."""
        if self.spot or not self.venue.exchange.has.get("fetchPositions"):
            return {}
        held: dict[tuple[str, str], Decimal] = {}
        for p in await self.venue.call("fetch_positions"):
            contracts = Decimal(str(p.get("contracts") or 0))
            if not contracts:
                continue
            side = p.get("side")
            signed = contracts if side == "long" else -contracts
            hedged = bool(p.get("hedged"))
            position_side = (
                (PositionSide.LONG if side == "long" else PositionSide.SHORT)
                if hedged
                else PositionSide.NET
            )
            key = (str(p["symbol"]), position_side)
            held[key] = held.get(key, Decimal(0)) + signed
        return held

    async def stream(self) -> list[Fill]:
        """The next fills pushed by the websocket (waits until there are some)."""
        try:
            return fills(await self.venue.call("watch_my_trades"))
        except KeyError as e:
            # ccxt 4.5.90 (binance): a refused subscription surfaces as a KeyError
            # from its cleanup, with the exchange's error as the context.
            cause = e.__context__
            if isinstance(cause, ccxt.BaseError):
                raise translate(cause) from e
            raise TemporaryVenueError(f"the websocket subscription failed: {e!r}") from e

    async def since(self, since_ms: int, open_symbols: Iterable[str] = ()) -> list[Fill]:
        """Every fill from `since_ms` on, through REST."""
        if not self.needs_symbol:
            return await self._pages(None, since_ms)
        found: list[Fill] = []
        for symbol in sorted(set(self.watch_symbols) | set(open_symbols)):
            if symbol in (self.venue.exchange.markets or {}):
                found += await self._pages(symbol, since_ms)
        return found

    async def _pages(self, symbol: str | None, since_ms: int) -> list[Fill]:
        found: list[Fill] = []
        while True:
            page = await self.venue.call("fetch_my_trades", symbol, since_ms, PAGE)
            found += fills(page)
            if len(page) < PAGE:
                return found
            newest = max(int(t["timestamp"]) for t in page)
            if newest <= since_ms:  # a page of one millisecond: nothing more to gain
                return found
            since_ms = newest

    async def balance_of(self, currency: str) -> Decimal | None:
        balance = await self.venue.call("fetch_balance")
        total = (balance.get("total") or {}).get(currency)
        return None if total is None else Decimal(str(total))
