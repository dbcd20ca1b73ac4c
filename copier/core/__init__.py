"""The pure copier core: values in, values out.

Nothing here imports Django, touches I/O, reads a clock or the environment,
so every decision the copier makes can be tested in microseconds.
"""

from copier.core.events import EventKind, MasterEvent, Side
from copier.core.ids import client_order_id
from copier.core.instruments import Instrument
from copier.core.plan import (
    CopyRules,
    FollowerOrder,
    FollowerPosition,
    FollowerState,
    OrderAction,
    Skip,
    plan,
)

__all__ = [
    "CopyRules",
    "EventKind",
    "FollowerOrder",
    "FollowerPosition",
    "FollowerState",
    "Instrument",
    "MasterEvent",
    "OrderAction",
    "Side",
    "Skip",
    "client_order_id",
    "plan",
]
