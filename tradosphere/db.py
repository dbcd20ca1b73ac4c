"""Database helpers for long-running processes."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import InterfaceError, OperationalError, connection

P = ParamSpec("P")
R = TypeVar("R")


def drop_broken_connection(fn: Callable[P, R]) -> Callable[P, R]:
    """Close this thread's connection when a call fails on it.

    Daemons keep connections for their lifetime; after the database restarts
    or drops a connection, the next call must open a fresh one instead of
    failing forever on the dead one.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (InterfaceError, OperationalError):
            connection.close()
            raise

    return wrapper
