"""Exchange markets kept in the database and refreshed by Celery beat."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from brokers.models import BrokerAccount, ExchangeMarkets, Venue

log = logging.getLogger(__name__)

MAX_AGE = dt.timedelta(hours=24)


def cached_markets(exchange: str, market_type: str, sandbox: bool) -> dict[str, Any] | None:
    """Markets refreshed within a day, or None.

    Called once per connector from a worker thread; the thread's connection is
    closed afterwards rather than left open for the life of the thread.
    """
    try:
        row = ExchangeMarkets.objects.filter(
            exchange=exchange,
            market_type=market_type,
            sandbox=sandbox,
            refreshed_at__gte=timezone.now() - MAX_AGE,
        ).first()
    finally:
        connection.close()
    return None if row is None else dict(row.markets)


async def _download(exchange: str, market_type: str, sandbox: bool) -> dict[str, Any]:
    from brokers.venues.ccxt.venue import CcxtVenue

    # Markets are public: no credentials are used or needed.
    venue = CcxtVenue(
        exchange, {}, market_type, sandbox, api_host=settings.CCXT_API_HOSTS.get(exchange)
    )
    try:
        await venue.call("load_markets")
        # Through JSON once, so what is stored is exactly what is read back.
        return dict(json.loads(json.dumps(venue.exchange.markets, default=str)))
    finally:
        await venue.close()


def refresh(exchange: str, market_type: str, sandbox: bool) -> int:
    markets = asyncio.run(_download(exchange, market_type, sandbox))
    ExchangeMarkets.objects.update_or_create(
        exchange=exchange,
        market_type=market_type,
        sandbox=sandbox,
        defaults={"markets": markets, "refreshed_at": timezone.now()},
    )
    return len(markets)


def refresh_all() -> dict[str, int]:
    """Refresh the markets of every exchange venue an account uses."""
    venues = (
        BrokerAccount.objects.filter(venue=Venue.CCXT)
        .values_list("exchange", "market_type", "sandbox")
        .distinct()
    )
    counts = {}
    for exchange, market_type, sandbox in venues:
        name = f"{exchange}:{market_type}{':testnet' if sandbox else ''}"
        try:
            counts[name] = refresh(exchange, market_type, sandbox)
        except Exception as e:  # one exchange being down must not stop the others
            log.warning("could not refresh %s markets: %s", name, e)
    return counts
