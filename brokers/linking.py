"""Linking an exchange account: check it for real before it exists.

`validate_link_request` runs in the Celery worker. It connects with the
credentials, loads the markets, reads the balance and, where the exchange
says so, the API key's permissions. Only when all of that works is the
`BrokerAccount` created; either way the request's copy of the credentials
is wiped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from brokers.models import BrokerAccount, LinkRequest, Role, Venue
from brokers.venues.base import (
    CredentialsRejected,
    PermissionRefused,
    VenueError,
    VenueUnavailable,
)
from brokers.venues.ccxt.capabilities import capabilities
from brokers.venues.ccxt.venue import CcxtVenue

log = logging.getLogger(__name__)


class LinkRefused(Exception):
    """A reason, for the trader, why the account cannot be linked."""


def exchange_name(exchange_id: str) -> str:
    import ccxt

    return str(getattr(ccxt, exchange_id)().name) if exchange_id in ccxt.exchanges else exchange_id


def _progress(request: LinkRequest, text: str) -> None:
    LinkRequest.objects.filter(pk=request.pk).update(
        status=LinkRequest.Status.RUNNING, progress=text
    )


def _explain(error: VenueError, request: LinkRequest, name: str) -> str:
    if isinstance(error, CredentialsRejected):
        if capabilities(request.exchange).needs_passphrase:
            return (
                f"{name} refused the API key, secret or passphrase. Check all three, "
                "and that the key is enabled."
            )
        return f"{name} refused the API key or secret. Check both, and that the key is enabled."
    if isinstance(error, PermissionRefused):
        return f"{name} says this API key lacks a permission: {error.message}"
    if isinstance(error, VenueUnavailable) or not error.permanent:
        return f"{name} could not be reached ({error.message}). Try again in a few minutes."
    return f"{name} answered with an error: {error.message}"


async def _check(request: LinkRequest, credentials: dict[str, str]) -> tuple[int, list[str]]:
    """Markets, balance, permissions; returns the market count and warnings."""
    name = exchange_name(request.exchange)
    venue = CcxtVenue(
        request.exchange,
        credentials,
        request.market_type,
        request.sandbox,
        api_host=settings.CCXT_API_HOSTS.get(request.exchange),
    )
    warnings: list[str] = []
    try:
        await asyncio.to_thread(_progress, request, f"Loading {name}'s markets…")
        await venue.connect()
        markets = len(venue.exchange.markets or {})
        await asyncio.to_thread(_progress, request, "Reading the balance with your key…")
        await venue.free_balance(refresh=True)
        if capabilities(request.exchange).reports_permissions:
            await asyncio.to_thread(_progress, request, "Checking the key's permissions…")
            permissions: dict[str, Any] = await venue.call("sapi_get_account_apirestrictions")
            can_trade = bool(permissions.get("enableSpotAndMarginTrading"))
            if request.role != Role.MASTER and not can_trade:
                raise LinkRefused(
                    "This API key cannot trade, and a follower must: enable spot trading for "
                    f"the key on {name}, or link the account as a master."
                )
            if permissions.get("enableWithdrawals"):
                warnings.append(
                    "Withdrawals are enabled for this API key. TradoSphere never withdraws; "
                    f"disable withdrawals for the key on {name} to be safe."
                )
        return markets, warnings
    except VenueError as e:
        raise LinkRefused(_explain(e, request, name)) from e
    finally:
        await venue.close()


def validate_link_request(request_id: int) -> None:
    request = LinkRequest.objects.get(pk=request_id)
    if request.done:
        return
    credentials = json.loads(request.credentials or "{}")
    try:
        markets, warnings = asyncio.run(_check(request, credentials))
    except LinkRefused as e:
        fail_link(request, str(e))
        return
    except Exception:
        log.exception("checking link request %s failed", request.pk)
        fail_link(request, "An unexpected error stopped the check; nothing was linked. Try again.")
        return
    try:
        account = _create_account(request, credentials, markets, warnings)
    except IntegrityError:
        fail_link(request, f"You already have an account labelled “{request.label}”.")
        return
    log.info("linked %s account %s for user %s", request.exchange, account.pk, request.owner_id)


def fail_link(request: LinkRequest, message: str) -> None:
    """A link request refused: say why, and wipe the credentials it held."""
    LinkRequest.objects.filter(pk=request.pk).update(
        status=LinkRequest.Status.FAILED, message=message, credentials="", progress=""
    )


@transaction.atomic
def _create_account(
    request: LinkRequest, credentials: dict[str, str], markets: int, warnings: list[str]
) -> BrokerAccount:
    account = BrokerAccount.objects.create(
        owner_id=request.owner_id,
        venue=Venue.CCXT,
        label=request.label,
        role=request.role,
        currency="",
        exchange=request.exchange,
        market_type=request.market_type,
        sandbox=request.sandbox,
        credentials=request.credentials,
        credentials_hint=credentials.get("apiKey", "")[-4:],
    )
    LinkRequest.objects.filter(pk=request.pk).update(
        status=LinkRequest.Status.SUCCEEDED,
        account=account,
        credentials="",
        progress="",
        message=f"Linked, with {markets} markets.",
        warnings="\n".join(warnings),
    )
    return account
