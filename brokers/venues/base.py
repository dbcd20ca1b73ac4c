"""The interface every venue connector implements, and its errors.

| method              | required | notes                                   |
|---------------------|----------|-----------------------------------------|
| instrument(symbol)  | yes      | volume step and limits for planning     |
| open_position(...)  | yes      | market order carrying a client order id |
| close_position(...) | yes      | by the venue's position reference       |
| find_fill(coid)     | yes      | reconciliation after a restart          |
| positions()         | later    | with the ccxt and MT5 connectors        |
| watch_events()      | later    | detection for venues we do not run      |
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from decimal import Decimal

from copier.core import Instrument, MasterEvent, Side


class VenueError(Exception):
    """An error from a venue. `permanent` says whether retrying can help."""

    permanent = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TemporaryVenueError(VenueError):
    permanent = False


class OrderRejected(VenueError):
    """The venue refused the order; sending it again gets the same answer."""


@dataclass(frozen=True, slots=True)
class FillReport:
    client_order_id: str
    position_ref: str
    symbol: str
    side: Side
    volume: Decimal
    price: Decimal
    # False when the venue already had this client order id: nothing new happened.
    created: bool
    # The master event the fill produced, when the account leads others.
    event_record_id: int | None = None
    event: MasterEvent | None = None


class Venue(abc.ABC):
    @abc.abstractmethod
    def instrument(self, symbol: str) -> Instrument | None: ...

    @abc.abstractmethod
    async def open_position(
        self,
        symbol: str,
        side: Side,
        volume: Decimal,
        reference_price: Decimal,
        client_order_id: str,
    ) -> FillReport: ...

    @abc.abstractmethod
    async def close_position(
        self, position_ref: str, reference_price: Decimal, client_order_id: str
    ) -> FillReport: ...

    @abc.abstractmethod
    async def find_fill(self, client_order_id: str) -> FillReport | None: ...
