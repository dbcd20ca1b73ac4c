"""The interface every venue connector implements, and its errors.

| method                    | required | notes                                          |
|---------------------------|----------|------------------------------------------------|
| instrument(symbol)        | yes      | volume step and limits for planning            |
| open_position / close ... | yes      | one method per `OrderAction`, see `submit`     |
| find(client_order_id)     | yes      | reconciliation: what happened to this order id |
| account_state()           | later    | balance and equity, with ccxt and MT5          |
| watch_events()            | later    | detection for venues we do not run             |

Every request carries a client order id. A connector must either make the
venue refuse a second request with the same id, or check `find` first.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from decimal import Decimal

from copier.core import FollowerOrder, Instrument, MasterEvent, OrderAction, Side


class VenueError(Exception):
    """An error from a venue.

    `permanent` says whether retrying can help. `outcome_unknown` says the
    request may have reached the venue (a timeout, a dropped connection): ask
    the venue about the client order id before sending anything again.
    """

    permanent = True
    outcome_unknown = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TemporaryVenueError(VenueError):
    permanent = False


class VenueUnavailable(TemporaryVenueError):
    """The venue did not answer, or answered that it is down or busy."""

    outcome_unknown = True


class RateLimited(TemporaryVenueError):
    """Too many requests; the request was refused, not carried out."""


class CredentialsRejected(VenueError):
    """The venue refused the API key, secret, passphrase or password."""


class PermissionRefused(VenueError):
    """The credentials are valid but lack a permission (trading, this market)."""


class OrderRejected(VenueError):
    """The venue refused the order; sending it again gets the same answer."""


class OrderDenied(VenueError):
    """Refused locally before sending, because the venue would reject it."""


class InsufficientBalance(OrderRejected):
    pass


class DuplicateOrder(OrderRejected):
    """The venue already has an order with this client order id: look it up."""


class OrderNotFound(VenueError):
    pass


@dataclass(frozen=True, slots=True)
class Report:
    """What the venue did for one client order id."""

    client_order_id: str
    action: str
    # The follower position (P…) or pending order (O…) the request acted on.
    ref: str
    symbol: str
    side: Side
    volume: Decimal
    price: Decimal
    # False when the venue already had this client order id: nothing new happened.
    created: bool
    # What stays open of the position after a reduction; None when the venue
    # does not say (exchanges report the order, not our copy of a position).
    remaining: Decimal | None = None
    sl: Decimal | None = None
    tp: Decimal | None = None
    # The master event the request produced, when the account leads others.
    event_record_id: int | None = None
    event: MasterEvent | None = None


class Venue(abc.ABC):
    async def connect(self) -> None:  # noqa: B027 - optional: most venues need nothing
        """Open connections and load instruments; venues that need nothing skip it."""

    async def close(self) -> None:  # noqa: B027 - optional: most venues hold nothing
        """Release connections."""

    @abc.abstractmethod
    def instrument(self, symbol: str) -> Instrument | None: ...

    @abc.abstractmethod
    async def execute(self, order: FollowerOrder, client_order_id: str) -> Report:
        """Carry out one planned order; raise VenueError when the venue refuses."""

    @abc.abstractmethod
    async def find(self, client_order_id: str, symbol: str | None = None) -> Report | None:
        """What the venue did for this client order id; some venues need the symbol."""


ACTIONS_NEEDING_REF = frozenset(
    {
        OrderAction.CLOSE,
        OrderAction.REDUCE,
        OrderAction.MODIFY,
        OrderAction.MODIFY_PENDING,
        OrderAction.CANCEL_PENDING,
        OrderAction.FILL_PENDING,
    }
)
