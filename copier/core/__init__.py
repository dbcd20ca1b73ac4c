"""The pure copier core: values in, values out.

Nothing here imports Django, touches I/O, reads a clock or the environment,
so every decision the copier makes can be tested in microseconds.
"""

from copier.core.events import EventKind, MasterEvent, OrderType, Side
from copier.core.ids import client_order_id
from copier.core.instruments import Instrument
from copier.core.plan import (
    CopyState,
    FollowerOrder,
    FollowerState,
    OrderAction,
    Skip,
    plan,
)
from copier.core.risk import RiskBreach, check_risk
from copier.core.rules import (
    CopyRules,
    DeviationUnit,
    LimitUnit,
    RiskAction,
    RiskLimit,
    RiskMode,
    Sizing,
    TimeWindow,
)

__all__ = [
    "CopyRules",
    "CopyState",
    "DeviationUnit",
    "EventKind",
    "FollowerOrder",
    "FollowerState",
    "Instrument",
    "LimitUnit",
    "MasterEvent",
    "OrderAction",
    "OrderType",
    "RiskAction",
    "RiskBreach",
    "RiskLimit",
    "RiskMode",
    "Side",
    "Sizing",
    "Skip",
    "TimeWindow",
    "check_risk",
    "client_order_id",
    "plan",
]
